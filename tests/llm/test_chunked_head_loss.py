"""The chunked LM-head loss equals the plain one: loss, gradients and token metrics."""

import pytest
import torch

from radreport.llm import chunked_head_loss as chunked
from radreport.llm import training_kernels


def _plain(hidden, weight, targets, dtype):
    logits = (hidden.to(dtype) @ weight.to(dtype).T).float()
    return chunked.materialized_head_loss(logits, targets)


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("weight_trained", [False, True])
@pytest.mark.parametrize("fused", [False, True], ids=["torch", "kernel"])
def test_matches_the_materialized_loss_across_chunk_boundaries(
    monkeypatch, dtype, tolerance, weight_trained, fused
):
    vocab, width, tokens = 97, 16, 23
    # 5 tokens per chunk: the last chunk is partial
    monkeypatch.setattr(chunked, "CHUNK_ELEMENTS", 5 * vocab)
    monkeypatch.setattr(chunked, "KERNEL_CHUNK_ROWS", 5)
    scorers = []
    for scorer in (chunked._TorchScorer, chunked._KernelScorer):
        monkeypatch.setattr(scorer, "score", _recording(scorer.score, scorers))
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(tokens, width, generator=generator, dtype=dtype)
    weight = torch.randn(vocab, width, generator=generator, dtype=dtype)
    targets = torch.randint(vocab, (tokens,), generator=generator)
    upstream = torch.tensor(0.37)

    results = {}

    def ours(h, w, t, d):
        return chunked.chunked_head_loss(h, w, t, d, fused=fused)

    for name, loss_fn in (("chunked", ours), ("plain", _plain)):
        h = hidden.clone().requires_grad_()
        w = weight.clone().requires_grad_(weight_trained)
        scored = loss_fn(h, w, targets, dtype)
        (scored.loss_sum * upstream).backward()
        results[name] = (scored, h.grad, w.grad)

    (ours, grad_h, grad_w), (plain, plain_grad_h, plain_grad_w) = (
        results["chunked"],
        results["plain"],
    )
    assert chunked.chunk_tokens(vocab) == 5
    # 5 chunks, each scored by the path asked for (the kernel builds on this machine)
    expected = chunked._KernelScorer if fused else chunked._TorchScorer
    assert scorers == [expected] * 5
    assert ours.loss_sum.dtype == torch.float32
    torch.testing.assert_close(ours.loss_sum, plain.loss_sum, rtol=1e-5, atol=1e-4)
    assert ours.correct == plain.correct
    assert ours.entropy_sum == pytest.approx(plain.entropy_sum, rel=1e-5)
    assert grad_h.dtype == dtype
    torch.testing.assert_close(grad_h, plain_grad_h, rtol=tolerance, atol=tolerance)
    if weight_trained:
        torch.testing.assert_close(grad_w, plain_grad_w, rtol=tolerance, atol=tolerance)
    else:
        assert grad_w is None


def _recording(score, calls):
    def recorded(self, *args, **kwargs):
        calls.append(type(self))
        return score(self, *args, **kwargs)

    return recorded


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernel_scores_a_real_vocabulary_as_pytorch_does(dtype):
    """SmolLM2's 49,152 words, logits spread as a trained head's, extremes included: the
    kernel's loss, metrics and gradient against the PyTorch scorer's."""
    generator = torch.Generator().manual_seed(1)
    vocab, width, tokens = 49152, 64, 12
    hidden = (torch.randn(tokens, width, generator=generator) * 3).to(dtype)
    weight = torch.randn(vocab, width, generator=generator).to(dtype)
    hidden[0] *= 40  # a row whose softmax is one-hot: exp underflows for all but one word
    targets = torch.randint(vocab, (tokens,), generator=generator)
    targets[1] = (hidden[1].float() @ weight.float().T).argmax()  # a confident right answer
    results = []
    for fused in (False, True):
        h = hidden.clone().requires_grad_()
        scored = chunked.chunked_head_loss(h, weight, targets, dtype, fused=fused)
        scored.loss_sum.backward()
        results.append((scored, h.grad))
    (torch_scored, torch_grad), (kernel_scored, kernel_grad) = results
    torch.testing.assert_close(kernel_scored.loss_sum, torch_scored.loss_sum, rtol=1e-5, atol=0)
    assert kernel_scored.correct == torch_scored.correct
    assert kernel_scored.entropy_sum == pytest.approx(torch_scored.entropy_sum, rel=1e-4)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(kernel_grad, torch_grad, rtol=tolerance, atol=tolerance * 1e-2)


def test_kernel_gives_nan_for_a_row_with_nan_as_pytorch_does():
    hidden = torch.randn(3, 8, generator=torch.Generator().manual_seed(2))
    weight = torch.randn(50, 8, generator=torch.Generator().manual_seed(3))
    hidden[1, 0] = float("nan")
    targets = torch.tensor([4, 5, 6])
    for fused in (False, True):
        scored = chunked.chunked_head_loss(hidden, weight, targets, torch.float32, fused=fused)
        assert torch.isnan(scored.loss_sum)


def test_without_a_kernel_build_pytorch_scores(monkeypatch):
    monkeypatch.setattr(training_kernels, "load_training_kernels", lambda: None)
    calls = []
    monkeypatch.setattr(
        chunked._TorchScorer, "score", _recording(chunked._TorchScorer.score, calls)
    )
    hidden, weight = torch.randn(4, 8), torch.randn(30, 8)
    chunked.chunked_head_loss(hidden, weight, torch.tensor([1, 2, 3, 4]), torch.float32)
    assert calls == [chunked._TorchScorer]


def test_loss_value_is_the_summed_negative_log_likelihood():
    hidden = torch.eye(3)
    weight = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    targets = torch.tensor([0, 2, 1])
    scored = chunked.chunked_head_loss(hidden, weight, targets, torch.float32)
    logits = hidden @ weight.T
    expected = -logits.log_softmax(-1)[torch.arange(3), targets].sum()
    assert scored.loss_sum.item() == pytest.approx(expected.item(), rel=1e-6)
    # token 0 predicts 0 (right), token 1 predicts 1 (wrong), token 2 ties (argmax 0, wrong)
    assert scored.correct == 1
