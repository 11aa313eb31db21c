"""Attention kernels for training on this CPU: forward and backward time per layer.

The numbers behind `CPU_EAGER_ATTENTION_MAX_TOKENS` in radreport/llm/device.py. One
layer of the bundled SmolLM2-135M (9 heads of 64) at batch 8, bf16 where the CPU has it
natively (else fp32), causal with a padded row, for several sequence lengths:

- SDPA with the padding mask (what transformers passes for a padded batch);
- SDPA with is_causal (a batch without padding, or right padding with the mask dropped);
- eager: two products and an fp32 softmax, as transformers' eager attention computes it.

Best of `--repeats` after one warm-up call, milliseconds.

    nice .venv/bin/python benchmarks/attention_kernels.py [--lengths 162 256 512 736]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from radreport.llm.device import cpu_has_bf16

BATCH, HEADS, HEAD_DIM, PADDED = 8, 9, 64, 10


def causal_mask_with_padding(length: int) -> torch.Tensor:
    """(batch, 1, length, length) boolean mask; the first row's last PADDED positions are
    padding, which every query may skip (each still sees itself, as in transformers)."""
    mask = torch.ones(length, length, dtype=torch.bool).tril()[None, None]
    mask = mask.expand(BATCH, 1, length, length).clone()
    mask[0, :, :, length - PADDED :] = False
    padding = torch.arange(length - PADDED, length)
    mask[0, :, padding, padding] = True
    return mask


def sdpa_masked(q, k, v, mask):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def sdpa_causal(q, k, v, mask):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def eager(q, k, v, mask):
    scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    weights = scores.masked_fill(~mask, float("-inf")).float().softmax(-1).to(q.dtype)
    return weights @ v


KERNELS = {"SDPA, mask": sdpa_masked, "SDPA, is_causal": sdpa_causal, "eager": eager}


def time_kernel(kernel, length: int, dtype: torch.dtype, repeats: int) -> tuple[float, float]:
    """Best forward and backward milliseconds."""
    generator = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(
            BATCH, HEADS, length, HEAD_DIM, generator=generator, dtype=dtype
        ).requires_grad_()
        for _ in range(3)
    )
    mask = causal_mask_with_padding(length)
    upstream = torch.randn(BATCH, HEADS, length, HEAD_DIM, generator=generator, dtype=dtype)
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
    parser.add_argument("--lengths", type=int, nargs="+", default=[162, 256, 512, 736])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    dtype = torch.bfloat16 if cpu_has_bf16() else torch.float32
    print(f"batch {BATCH}, {HEADS} heads of {HEAD_DIM}, {dtype}, {torch.get_num_threads()} threads")
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
