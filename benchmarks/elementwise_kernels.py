"""RMSNorm and the MLP's SiLU-gated product for training on this CPU: eager vs our kernels.

The numbers behind `llm.fused_elementwise` (radreport/llm/fused_rms_norm.py and
fused_swiglu.py). Shapes of the bundled SmolLM2-135M at batch 8 (hidden 576, MLP 1536),
bf16 where the CPU has it natively (else fp32), for several sequence lengths; each op's
forward and backward as training calls it (the norm's weight frozen, as under LoRA):

- eager: transformers' LlamaRMSNorm, and `F.silu(gate) * up`;
- fused: the compiled kernels of radreport/llm/training_kernels.c.

Best of `--repeats` rounds of 20 calls after warm-up, milliseconds per call, with the
ratio measured in the same run.

    nice .venv/bin/python benchmarks/elementwise_kernels.py [--lengths 162 256 512 736]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from radreport.llm.device import cpu_has_bf16
from radreport.llm.fused_rms_norm import install_fused_rms_norm
from radreport.llm.fused_swiglu import silu_gated
from radreport.llm.training_kernels import load_training_kernels

BATCH, HIDDEN, INTERMEDIATE = 8, 576, 1536


def best_ms(call, repeats: int, calls: int = 20) -> float:
    for _ in range(3):
        call()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e3


def norms(dtype: torch.dtype) -> tuple[LlamaRMSNorm, LlamaRMSNorm]:
    eager = LlamaRMSNorm(HIDDEN, eps=1e-5).to(dtype).requires_grad_(False)
    fused = LlamaRMSNorm(HIDDEN, eps=1e-5).to(dtype).requires_grad_(False)
    install_fused_rms_norm(fused)
    return eager, fused


def measure(length: int, dtype, eager_norm, fused_norm, repeats: int) -> list[float]:
    """ms for: eager RMSNorm, fused RMSNorm, eager SiLU-gated product, fused."""
    generator = torch.Generator().manual_seed(length)
    x = torch.randn(BATCH, length, HIDDEN, generator=generator).to(dtype).requires_grad_()
    dy = torch.randn(x.shape, generator=generator).to(dtype)
    gate, up = (
        torch.randn(BATCH, length, INTERMEDIATE, generator=generator).to(dtype).requires_grad_()
        for _ in range(2)
    )
    dh = torch.randn(gate.shape, generator=generator).to(dtype)
    return [
        best_ms(lambda: eager_norm(x).backward(dy), repeats),
        best_ms(lambda: fused_norm(x).backward(dy), repeats),
        best_ms(lambda: (F.silu(gate) * up).backward(dh), repeats),
        best_ms(lambda: silu_gated(gate, up).backward(dh), repeats),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[162, 256, 512, 736])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if load_training_kernels() is None:
        raise SystemExit("the training kernels could not be built here (see the warning above)")
    dtype = torch.bfloat16 if cpu_has_bf16() else torch.float32
    eager_norm, fused_norm = norms(dtype)
    print(f"{dtype}, batch {BATCH}, {torch.get_num_threads()} threads; forward + backward, ms")
    print("| tokens | RMSNorm eager | RMSNorm fused | ratio | SiLU-gated eager | fused | ratio |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for length in args.lengths:
        timings = measure(length, dtype, eager_norm, fused_norm, args.repeats)
        print(
            f"| {length} | {timings[0]:.2f} | {timings[1]:.2f} | {timings[0] / timings[1]:.2f}x "
            f"| {timings[2]:.2f} | {timings[3]:.2f} | {timings[2] / timings[3]:.2f}x |"
        )


if __name__ == "__main__":
    main()
