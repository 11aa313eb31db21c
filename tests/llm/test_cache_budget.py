"""What a key/value cache position costs, and how many fit when the cap is "auto"."""

from __future__ import annotations

import psutil
import pytest
import torch
from transformers import LlamaConfig

from radreport.llm.cache_budget import (
    AUTO_MEMORY_SHARE,
    auto_batch_tokens,
    available_memory_bytes,
    cache_bytes_per_position,
)


def test_a_position_costs_keys_and_values_of_every_layer_and_kv_head():
    # SmolLM2-135M: 30 layers, 9 query heads of 64 dimensions sharing 3 key/value heads.
    smollm2 = LlamaConfig(
        num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, hidden_size=576
    )
    assert cache_bytes_per_position(smollm2, 4) == 30 * 2 * 3 * 64 * 4 == 46_080
    assert cache_bytes_per_position(smollm2, 2) == 23_040
    # Llama 3 8B in bfloat16: 32 layers, 8 key/value heads of 128: 128 KiB a position.
    llama3 = LlamaConfig(
        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, hidden_size=4096
    )
    assert cache_bytes_per_position(llama3, 2) == 131_072


def test_a_config_without_grouped_heads_or_head_dim_counts_every_head():
    class Plain:  # a GPT-style config: no num_key_value_heads, no head_dim
        num_hidden_layers, num_attention_heads, hidden_size = 2, 4, 64

    assert cache_bytes_per_position(Plain(), 4) == 2 * 2 * 4 * 16 * 4


def test_auto_takes_its_share_of_the_available_memory():
    assert AUTO_MEMORY_SHARE == 0.5
    # A 16 GiB GPU with 10 GiB free after Llama 3 8B loaded: 40,960 positions of 128 KiB.
    assert auto_batch_tokens(10 * 2**30, 131_072) == 40_960
    assert auto_batch_tokens(1000, 46_080) == 1  # never zero: one prompt always decodes
    with pytest.raises(ValueError, match="bytes_per_position"):
        auto_batch_tokens(2**30, 0)


def test_available_memory_on_the_cpu_is_the_systems():
    available = available_memory_bytes(torch.device("cpu"))
    assert 0 < available <= psutil.virtual_memory().total


def test_available_memory_on_cuda_counts_what_pytorch_holds_unused(monkeypatch):
    gib = 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (6 * gib, 16 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: 9 * gib)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: 7 * gib)
    assert available_memory_bytes(torch.device("cuda", 0)) == 8 * gib
