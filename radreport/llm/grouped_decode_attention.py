"""Attention for decode steps of grouped-query models without copying the cache per head.

In a decode step each row has one query position. transformers' SDPA attention passes
grouped key/value heads to PyTorch as they are only where no mask is needed (and on CUDA);
a batch of prompts of different lengths needs one, and then it first repeats every
key/value head for each query head that shares it (`repeat_kv`): a copy of the whole cache,
3x its size for SmolLM2 and 4x for Llama 3 8B, at every layer of every step. Here the query
heads that share a key/value head become that head's query rows instead (a step's queries
are one position each, so they are independent rows), and SDPA attends them to the cache
as it is. The same arithmetic: with fp32 weights the same tokens; with bfloat16 a kernel of
another shape may round a near tie the other way. Prompts (more than one query position)
keep transformers' SDPA.

Measured on the CPU with MBR over 8 on prompts of 1,016-2,033 tokens (SmolLM2, 9 query heads
on 3 key/value heads): 7.3x the decode steps per second with fp32 weights, the same
candidates; 9.4x with bfloat16 (benchmarks/decode_attention.py, BENCHMARKS.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

ATTENTION_NAME = "sdpa_grouped_decode"


def sdpa_grouped_decode_attention(
    module: torch.nn.Module,
    query: torch.Tensor,  # [batch, heads, q_len, dim]
    key: torch.Tensor,  # [batch, kv_heads, kv_len, dim]
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """(output [batch, q_len, heads, dim], None), as transformers' attention functions."""
    batch, heads, q_len, dim = query.shape
    kv_heads = key.shape[1]
    if q_len != 1 or kv_heads == heads or dropout > 0.0 or kwargs.get("position_bias") is not None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    # Heads h = k * groups + g share key/value head k (transformers' repeat_kv order), so
    # the groups of head k become its query rows; no causal mask: they are one position.
    rows = query.reshape(batch, kv_heads, heads // kv_heads, dim)
    mask = attention_mask[:, :, :, : key.shape[-2]] if attention_mask is not None else None
    output = F.scaled_dot_product_attention(
        rows, key, value, attn_mask=mask, is_causal=False, scale=scaling
    )
    return output.reshape(batch, heads, 1, dim).transpose(1, 2).contiguous(), None


def register_sdpa_grouped_decode() -> str:
    """Make ATTENTION_NAME loadable through `attn_implementation` (with SDPA's masks);
    returns the name."""
    AttentionInterface.register(ATTENTION_NAME, sdpa_grouped_decode_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)
    return ATTENTION_NAME
