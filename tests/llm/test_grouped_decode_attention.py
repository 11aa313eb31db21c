"""Decode steps attend grouped key/value heads as they are: transformers' SDPA result, and
the same tokens, without a copy of the cache per query head."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from radreport.llm.generate import ReportGenerator, load_generation_model
from radreport.llm.grouped_decode_attention import ATTENTION_NAME, sdpa_grouped_decode_attention
from tests.llm.impressions import IMPRESSIONS

# 8 query heads sharing 2 key/value heads, as a Llama attention module says it.
MODULE = SimpleNamespace(is_causal=True, num_key_value_groups=4, training=False)


def _tensors(q_len: int, kv_len: int = 7):
    draw = torch.Generator().manual_seed(0)
    query = torch.randn(3, 8, q_len, 16, generator=draw)
    key, value = (torch.randn(3, 2, kv_len, 16, generator=draw) for _ in range(2))
    return query, key, value


def test_a_decode_step_attends_as_transformers_sdpa_with_and_without_padding():
    query, key, value = _tensors(q_len=1)
    padding = torch.ones(3, 1, 1, 7, dtype=torch.bool)
    padding[0, :, :, :3] = False  # the first row's prompt is 3 tokens shorter: left padding
    for mask in (padding, None):
        ours, _ = sdpa_grouped_decode_attention(MODULE, query, key, value, mask, scaling=0.25)
        theirs, _ = sdpa_attention_forward(MODULE, query, key, value, mask, scaling=0.25)
        assert ours.shape == theirs.shape == (3, 1, 8, 16)
        torch.testing.assert_close(ours, theirs)
    masked, _ = sdpa_grouped_decode_attention(MODULE, query, key, value, padding, scaling=0.25)
    unmasked, _ = sdpa_grouped_decode_attention(MODULE, query, key, value, None, scaling=0.25)
    assert not torch.allclose(masked[0], unmasked[0])  # the mask is applied
    torch.testing.assert_close(masked[1:], unmasked[1:])


def test_prompts_keep_transformers_sdpa():
    query, key, value = _tensors(q_len=7)
    ours, _ = sdpa_grouped_decode_attention(MODULE, query, key, value, None, scaling=0.25)
    theirs, _ = sdpa_attention_forward(MODULE, query, key, value, None, scaling=0.25)
    assert torch.equal(ours, theirs)


def test_generation_models_load_with_it_and_write_the_reports_of_sdpa(tiny_llama_dir):
    model, tokenizer = load_generation_model(tiny_llama_dir, dtype=torch.float32)
    assert model.config._attn_implementation == ATTENTION_NAME
    ours = ReportGenerator.for_loaded_model(model, tokenizer, max_new_tokens=16)
    sdpa = ReportGenerator.for_loaded_model(model, tokenizer, max_new_tokens=16)
    sdpa.model = (
        type(model)
        .from_pretrained(tiny_llama_dir, dtype=torch.float32, attn_implementation="sdpa")
        .eval()
    )
    # The prompts differ in length: the batch is padded, the case that copied the cache.
    assert ours.generate(IMPRESSIONS, progress=False) == sdpa.generate(IMPRESSIONS, progress=False)
    ours.mbr_candidates = sdpa.mbr_candidates = 3
    assert ours.candidate_groups(IMPRESSIONS, progress=False) == sdpa.candidate_groups(
        IMPRESSIONS, progress=False
    )
