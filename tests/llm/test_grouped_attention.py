"""The grouped eager kernel computes transformers' eager attention; long batches go to SDPA."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.models.llama.modeling_llama import eager_attention_forward

from radreport.llm import grouped_attention
from radreport.llm.grouped_attention import (
    ATTENTION_NAME,
    grouped_eager_attention,
    grouped_eager_or_sdpa_attention,
    register_grouped_eager_or_sdpa,
)

HEADS, KV_HEADS, DIM = 6, 2, 8


class Layer(torch.nn.Module):
    num_key_value_groups = HEADS // KV_HEADS
    is_causal = True


def projections(batch, q_len, kv_len, dtype=torch.float32):
    """Queries, keys and values as transformers hands them over: transposed views."""
    generator = torch.Generator().manual_seed(0)
    return tuple(
        torch.randn(batch, length, heads, DIM, generator=generator)
        .to(dtype)
        .transpose(1, 2)
        .requires_grad_()
        for heads, length in ((HEADS, q_len), (KV_HEADS, kv_len), (KV_HEADS, kv_len))
    )


def causal_mask(batch, q_len, kv_len, padded=True):
    """SDPA's boolean mask for a causal batch (the last q_len of kv_len positions), whose
    first row ends in 3 padding positions when `padded`."""
    mask = torch.ones(q_len, kv_len, dtype=torch.bool).tril(kv_len - q_len)
    mask = mask[None, None].repeat(batch, 1, 1, 1)
    if padded:
        mask[0, :, :, kv_len - 3 :] = False
    return mask


def additive(mask, dtype):
    return torch.where(mask, torch.zeros((), dtype=dtype), torch.finfo(dtype).min)


def run(kernel, q, k, v, mask, upstream):
    for tensor in (q, k, v):
        tensor.grad = None
    output, weights = kernel(Layer(), q, k, v, mask, scaling=DIM**-0.5)
    output.backward(upstream)
    return output.detach(), weights, q.grad, k.grad, v.grad


@pytest.mark.parametrize(
    "q_len, kv_len, padded",
    [(7, 7, False), (7, 7, True), (1, 9, False), (3, 9, True)],  # training, then with a cache
)
def test_fp32_equals_transformers_eager_attention(q_len, kv_len, padded):
    q, k, v = projections(2, q_len, kv_len)
    upstream = torch.randn(2, q_len, HEADS, DIM, generator=torch.Generator().manual_seed(1))
    mask = causal_mask(2, q_len, kv_len, padded)
    given = mask if padded else None  # SDPA's mask function leaves plain causal batches None
    ours = run(grouped_eager_attention, q, k, v, given, upstream)
    eager_mask = additive(mask, torch.float32)
    theirs = run(eager_attention_forward, q, k, v, eager_mask, upstream)
    assert ours[0].shape == (2, q_len, HEADS, DIM)
    for mine, reference in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-5, atol=1e-6)


def test_bf16_is_as_accurate_as_eager():
    q, k, v = projections(2, 40, 40, torch.bfloat16)
    upstream = torch.randn(2, 40, HEADS, DIM, generator=torch.Generator().manual_seed(1))
    mask = causal_mask(2, 40, 40)
    truth = run(
        eager_attention_forward,
        *(t.detach().float().requires_grad_() for t in (q, k, v)),
        additive(mask, torch.float32),
        upstream,
    )
    ours = run(grouped_eager_attention, q, k, v, mask, upstream.bfloat16())
    eager = run(
        eager_attention_forward, q, k, v, additive(mask, torch.bfloat16), upstream.bfloat16()
    )
    for mine, reference, true in zip(ours, eager, truth, strict=True):
        assert mine.dtype == torch.bfloat16

        def error(tensor, true=true):
            return float((tensor.detach().float() - true.detach()).norm() / true.detach().norm())

        assert error(mine) < 0.02
        assert error(mine) <= 1.5 * error(reference) + 1e-3


def test_batches_longer_than_the_crossover_run_sdpa(monkeypatch):
    monkeypatch.setattr(grouped_attention, "GROUPED_EAGER_MAX_TOKENS", 6)
    upstream = torch.randn(2, 7, HEADS, DIM, generator=torch.Generator().manual_seed(1))
    q, k, v = projections(2, 7, 7)
    ours = run(grouped_eager_or_sdpa_attention, q, k, v, None, upstream)
    sdpa = run(sdpa_attention_forward, q, k, v, None, upstream)
    assert ours[1] is None  # SDPA keeps no weights
    torch.testing.assert_close(ours[0], sdpa[0])
    q, k, v = projections(2, 6, 6)
    upstream = upstream[:, :6]
    short = run(grouped_eager_or_sdpa_attention, q, k, v, None, upstream)
    assert short[1] is not None
    causal = additive(causal_mask(2, 6, 6, padded=False), torch.float32)
    reference = run(eager_attention_forward, q, k, v, causal, upstream)
    torch.testing.assert_close(short[0], reference[0], rtol=1e-5, atol=1e-6)


def test_a_model_loaded_with_it_scores_and_generates_as_eager(tiny_llama_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    register_grouped_eager_or_sdpa()
    models = {
        name: AutoModelForCausalLM.from_pretrained(
            tiny_llama_dir, dtype=torch.float32, attn_implementation=name
        ).eval()
        for name in ("eager", ATTENTION_NAME)
    }
    assert models[ATTENTION_NAME].config._attn_implementation == ATTENTION_NAME
    tokenizer.padding_side = "left"
    batch = tokenizer(
        ["The heart is", "No acute cardiopulmonary abnormality. The"],
        return_tensors="pt",
        padding=True,
    )
    with torch.no_grad():
        logits = {name: model(**batch).logits for name, model in models.items()}
        tokens = {
            name: model.generate(**batch, max_new_tokens=6, do_sample=False)
            for name, model in models.items()
        }
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(
        logits[ATTENTION_NAME][real], logits["eager"][real], rtol=1e-4, atol=1e-4
    )
    assert torch.equal(tokens[ATTENTION_NAME], tokens["eager"])
