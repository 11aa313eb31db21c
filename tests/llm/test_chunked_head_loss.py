"""The chunked LM-head loss equals the plain one: loss, gradients and token metrics."""

import pytest
import torch

from radreport.llm import chunked_head_loss as chunked


def _plain(hidden, weight, targets, dtype):
    logits = (hidden.to(dtype) @ weight.to(dtype).T).float()
    return chunked.materialized_head_loss(logits, targets)


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("weight_trained", [False, True])
def test_matches_the_materialized_loss_across_chunk_boundaries(
    monkeypatch, dtype, tolerance, weight_trained
):
    vocab, width, tokens = 97, 16, 23
    # 5 tokens per chunk: the last chunk is partial
    monkeypatch.setattr(chunked, "CHUNK_ELEMENTS", 5 * vocab)
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(tokens, width, generator=generator, dtype=dtype)
    weight = torch.randn(vocab, width, generator=generator, dtype=dtype)
    targets = torch.randint(vocab, (tokens,), generator=generator)
    upstream = torch.tensor(0.37)

    results = {}
    for name, loss_fn in (("chunked", chunked.chunked_head_loss), ("plain", _plain)):
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
