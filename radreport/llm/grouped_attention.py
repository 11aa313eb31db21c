"""Attention for training grouped-query models on CPU: a lean eager kernel, SDPA for long inputs.

transformers' eager attention repeats each key/value head for every query head that shares
it (`repeat_kv`: a copy of keys and values, summed back over the copies in the backward),
scales and masks the scores in two passes, and takes the softmax of an fp32 copy of them
before casting back. `grouped_eager_attention` stacks the query heads that share a
key/value head into one product instead (a copy of the queries only, smaller than the
scores at these lengths), scales and masks in one pass (`mask + scaling * scores`), and
takes the softmax of the scores in their own dtype (PyTorch's CPU softmax accumulates bf16
in fp32). Same arithmetic, fewer passes over memory.

Per layer on a 2-core CPU (benchmarks/attention_kernels.py; BENCHMARKS.md, "Seventeenth
session"), forward + backward: 4.2 ms at 162 tokens against eager's 10.9 and SDPA's 17.7
(PyTorch's CPU flash-attention backward has a large fixed cost); 22.3 against SDPA's 32.1
at 416 tokens; about level at 448; from 512 tokens, where a batch's score tensor passes
32 MB (glibc's largest mmap threshold: fresh pages for every allocation), SDPA, which never
materialises it, is 2x faster. So the kernel registered here,
ATTENTION_NAME, takes the grouped eager path for up to GROUPED_EAGER_MAX_TOKENS query
tokens and transformers' SDPA beyond, batch by batch: length-grouped batches of one run
span both sides.

Registered with transformers' attention and mask interfaces, so a model loaded with
`attn_implementation=ATTENTION_NAME` gets SDPA's masks (None for plain causal batches).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

ATTENTION_NAME = "grouped_eager_or_sdpa"
GROUPED_EAGER_MAX_TOKENS = 416


def _additive_mask(
    mask: torch.Tensor | None, causal: bool, q_len: int, kv_len: int, like: torch.Tensor
) -> torch.Tensor | None:
    """SDPA's mask (boolean, True = attend; or None for plain causal) as eager's additive one."""
    if mask is not None and mask.dtype != torch.bool:
        return mask[:, :, :, :kv_len]  # already additive
    if mask is None:
        if not causal or q_len == 1:
            return None
        # The last query sees every key: with a cache, queries are the last q_len positions.
        mask = torch.ones(q_len, kv_len, dtype=torch.bool, device=like.device)
        mask = mask.tril(kv_len - q_len)[None, None]
    zero = torch.zeros((), dtype=like.dtype, device=like.device)
    return torch.where(mask[:, :, :, :kv_len], zero, torch.finfo(like.dtype).min)


def grouped_eager_attention(
    module: torch.nn.Module,
    query: torch.Tensor,  # [batch, heads, q_len, dim]
    key: torch.Tensor,  # [batch, kv_heads, kv_len, dim]
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager attention's result, (output [batch, q_len, heads, dim], weights)."""
    batch, heads, q_len, dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    causal = getattr(module, "is_causal", True)
    mask = _additive_mask(attention_mask, causal, q_len, kv_len, query)
    # Heads h = k * groups + g share key/value head k (transformers' repeat_kv order).
    stacked = query.reshape(batch, kv_heads, groups * q_len, dim)
    scores = torch.matmul(stacked, key.transpose(2, 3))
    scores = scores.view(batch, kv_heads, groups, q_len, kv_len)
    if mask is None:
        scores = scores * scaling
    else:
        scores = torch.add(mask.unsqueeze(2), scores, alpha=scaling)
    # A mask in another dtype promotes the scores; the softmax is cast back as eager's is.
    weights = torch.softmax(scores, dim=-1).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights.view(batch, kv_heads, groups * q_len, kv_len), value)
    output = output.view(batch, heads, q_len, dim).transpose(1, 2).contiguous()
    return output, weights.view(batch, heads, q_len, kv_len)


def grouped_eager_or_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    if query.shape[2] > GROUPED_EAGER_MAX_TOKENS:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    return grouped_eager_attention(
        module, query, key, value, attention_mask, scaling=scaling, dropout=dropout
    )


def register_grouped_eager_or_sdpa() -> str:
    """Make ATTENTION_NAME loadable through `attn_implementation`; returns the name."""
    AttentionInterface.register(ATTENTION_NAME, grouped_eager_or_sdpa_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)
    return ATTENTION_NAME
