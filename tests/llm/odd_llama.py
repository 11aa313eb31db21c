"""A random Llama built to be awkward for the native kernel, shared by its tests."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def odd_llama(tie: bool = True, **overrides) -> LlamaForCausalLM:
    """A random Llama whose sizes are not multiples of the kernel's vector width (40) or row
    block (70), with 5 query heads sharing one KV head and Llama 3's RoPE scaling; any
    config field can be overridden."""
    config = dict(
        vocab_size=97,
        hidden_size=40,
        intermediate_size=70,
        num_hidden_layers=2,
        num_attention_heads=5,
        num_key_value_heads=1,
        max_position_embeddings=256,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 10000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 32,
        },
        initializer_range=0.2,
        tie_word_embeddings=tie,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**{**config, **overrides})).eval()
