"""Attention kernels for training on this CPU: forward and backward time per layer.

The numbers behind `GROUPED_EAGER_MAX_TOKENS` in radreport/llm/grouped_attention.py. One
layer of the bundled SmolLM2-135M (9 query heads of 64 sharing 3 key/value heads) at batch
8, bf16 where the CPU has it natively (else fp32), causal with a padded row, for several
sequence lengths, each kernel called as transformers calls it (queries, keys and values
transposed out of the projections' [batch, tokens, heads, dim] layout):

- SDPA with the padding mask (transformers' sdpa attention for a padded batch);
- SDPA with is_causal (a batch without padding, or right padding with the mask dropped);
- eager: transformers' eager attention (keys and values repeated per query head, an fp32
  softmax);
- grouped eager: radreport.llm.grouped_attention (query heads stacked per key/value head).

Best of `--repeats` after one warm-up call, milliseconds.

    nice .venv/bin/python benchmarks/attention_kernels.py [--lengths 162 256 416 512 736]
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.models.llama.modeling_llama import eager_attention_forward

from radreport.llm.device import cpu_has_bf16
from radreport.llm.grouped_attention import grouped_eager_attention

BATCH, HEADS, KV_HEADS, HEAD_DIM, PADDED = 8, 9, 3, 64, 10


class Layer(torch.nn.Module):
    """What the attention functions read from a Llama attention module."""

    num_key_value_groups = HEADS // KV_HEADS
    is_causal = True


def causal_mask_with_padding(length: int) -> torch.Tensor:
    """(batch, 1, length, length) boolean mask; the first row's last PADDED positions are
    padding, which every query may skip (each still sees itself, as in transformers)."""
    mask = torch.ones(length, length, dtype=torch.bool).tril()[None, None]
    mask = mask.expand(BATCH, 1, length, length).clone()
    mask[0, :, :, length - PADDED :] = False
    padding = torch.arange(length - PADDED, length)
    mask[0, :, padding, padding] = True
    return mask


def additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The float mask transformers builds for eager attention: 0 or the dtype's minimum."""
    zero = torch.zeros((), dtype=dtype)
    return torch.where(mask, zero, torch.finfo(dtype).min)


SCALE = HEAD_DIM**-0.5
KERNELS = {
    "SDPA, mask": lambda q, k, v, mask: sdpa_attention_forward(Layer(), q, k, v, mask)[0],
    "SDPA, is_causal": lambda q, k, v, mask: sdpa_attention_forward(Layer(), q, k, v, None)[0],
    "eager": lambda q, k, v, mask: eager_attention_forward(
        Layer(), q, k, v, additive(mask, q.dtype), scaling=SCALE
    )[0],
    # Given SDPA's boolean mask, as the registered kernel is.
    "grouped eager": lambda q, k, v, mask: grouped_eager_attention(
        Layer(), q, k, v, mask, scaling=SCALE
    )[0],
}


def time_kernel(kernel, length: int, dtype: torch.dtype, repeats: int) -> tuple[float, float]:
    """Best forward and backward milliseconds."""
    generator = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(BATCH, length, heads, HEAD_DIM, generator=generator, dtype=dtype)
        .transpose(1, 2)
        .requires_grad_()
        for heads in (HEADS, KV_HEADS, KV_HEADS)
    )
    mask = causal_mask_with_padding(length)
    upstream = torch.randn(BATCH, length, HEADS, HEAD_DIM, generator=generator, dtype=dtype)
    forward = backward = float("inf")
    for attempt in range(repeats + 1):
        start = time.perf_counter()
        out = kernel(q, k, v, mask)
        middle = time.perf_counter()
        out.backward(upstream)
        end = time.perf_counter()
        q.grad = k.grad = v.grad = None
        if attempt:  # the first call is a warm-up
            forward, backward = min(forward, middle - start), min(backward, end - middle)
    return 1e3 * forward, 1e3 * backward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lengths", type=int, nargs="+", default=[162, 256, 320, 384, 416, 448, 512, 736]
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    dtype = torch.bfloat16 if cpu_has_bf16() else torch.float32
    print(
        f"batch {BATCH}, {HEADS} query heads of {HEAD_DIM} over {KV_HEADS} key/value heads, "
        f"{dtype}, {torch.get_num_threads()} threads"
    )
    print("| tokens | " + " | ".join(f"{name}: fwd + bwd ms" for name in KERNELS) + " |")
    print("| ---: |" + " ---: |" * len(KERNELS))
    for length in args.lengths:
        cells = []
        for kernel in KERNELS.values():
            forward, backward = time_kernel(kernel, length, dtype, args.repeats)
            cells.append(f"{forward:.1f} + {backward:.1f} = {forward + backward:.1f}")
        print(f"| {length} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
