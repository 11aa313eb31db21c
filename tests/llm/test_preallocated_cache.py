"""The decode loop's cache allocates every position once and decodes exactly as
transformers' DynamicCache, which copies each layer's cache at every step."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache, LlamaConfig, MistralConfig
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

from radreport.llm import generate as generate_module
from radreport.llm.decode_rules import DecodeRules
from radreport.llm.generate import ReportGenerator, greedy_decode, sample_candidates
from radreport.llm.preallocated_cache import PreallocatedLayer, preallocated_cache
from tests.llm.impressions import IMPRESSIONS


def _states(rows: int, positions: int, seed: int) -> torch.Tensor:
    return torch.randn(rows, 2, positions, 4, generator=torch.Generator().manual_seed(seed))


def test_the_layer_holds_what_dynamic_cache_holds_through_repeats_and_selections():
    ours, theirs = PreallocatedLayer(capacity=9), DynamicLayer()
    for layer in (ours, theirs):
        layer.update(_states(2, 5, 0), _states(2, 5, 1))  # the prompts
        layer.batch_repeat_interleave(3)  # MBR's candidates
        layer.update(_states(6, 1, 2), _states(6, 1, 3))
        layer.batch_select_indices(torch.tensor([0, 2, 5]))  # rows that stopped leave
        keys, values = layer.update(_states(3, 1, 4), _states(3, 1, 5))
    assert torch.equal(keys, theirs.keys) and torch.equal(values, theirs.values)
    assert ours.get_seq_length() == 7
    assert ours._keys.shape == (3, 2, 9, 4)  # allocated once, at capacity


def test_writing_past_the_capacity_is_refused():
    layer = PreallocatedLayer(capacity=4)
    layer.update(_states(1, 3, 0), _states(1, 3, 1))
    with pytest.raises(ValueError, match="holds 4 positions; 5 were written"):
        layer.update(_states(1, 2, 2), _states(1, 2, 3))


def test_sliding_window_layers_stay_transformers_own():
    llama = LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4)
    assert all(type(layer) is PreallocatedLayer for layer in preallocated_cache(llama, 8).layers)
    mistral = MistralConfig(
        num_hidden_layers=2, hidden_size=64, num_attention_heads=4, sliding_window=16
    )
    layers = preallocated_cache(mistral, 8).layers
    assert [type(layer) for layer in layers] == [DynamicSlidingWindowLayer] * 2


def test_greedy_and_sampled_decoding_write_the_tokens_of_dynamic_cache(tiny_llama_dir, monkeypatch):
    generator = ReportGenerator(tiny_llama_dir, dtype=torch.float32)
    prompts = [f"### Instruction:\n{text}" for text in IMPRESSIONS]
    encoded = generator.tokenizer(prompts, padding=True, return_tensors="pt")
    args = (generator.model, encoded["input_ids"], encoded["attention_mask"], 12)
    free = greedy_decode(*args, DecodeRules([], generator.rules.pad_id))
    # A stop token that ends some rows early, so that rows leave the batch.
    rules = DecodeRules([int(free[1, 3])], generator.rules.pad_id, 2)

    def decode() -> tuple[torch.Tensor, torch.Tensor]:
        draws = [torch.Generator().manual_seed(seed) for seed in range(len(prompts))]
        return greedy_decode(*args, rules), sample_candidates(*args, rules, 3, 0.2, draws)

    ours = decode()
    monkeypatch.setattr(
        generate_module, "preallocated_cache", lambda config, capacity: DynamicCache(config=config)
    )
    theirs = decode()
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])
    assert (ours[0] == generator.rules.pad_id).any()  # some rows stopped early
