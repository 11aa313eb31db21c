"""The LM head's loss alone: materialised logits vs radreport.llm.chunked_head_loss.

Forward and backward of the summed cross-entropy (with the token metrics TRL logs) for
`--tokens` labelled positions through the bundled SmolLM2-135M's head shape (49,152 x 576),
bf16 where the CPU has it natively (else fp32). Each call gets a fresh hidden-state tensor,
as each training step does; best of `--repeats`, milliseconds, both paths in one process.

    nice .venv/bin/python benchmarks/head_loss_speed.py [--tokens 1000] [--repeats 4]
"""

from __future__ import annotations

import argparse
import time

import torch

from radreport.llm.chunked_head_loss import chunked_head_loss, materialized_head_loss
from radreport.llm.device import cpu_has_bf16

VOCABULARY, WIDTH = 49_152, 576


def materialized(hidden, weight, targets, dtype):
    return materialized_head_loss((hidden @ weight.T).float(), targets)


def best_ms(loss_fn, weight, targets, dtype, repeats: int) -> float:
    generator = torch.Generator().manual_seed(0)
    best = float("inf")
    for _ in range(repeats):
        hidden = torch.randn(len(targets), WIDTH, generator=generator, dtype=dtype)
        hidden.requires_grad_()
        start = time.perf_counter()
        loss_fn(hidden, weight, targets, dtype).loss_sum.backward()
        best = min(best, time.perf_counter() - start)
    return 1e3 * best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    dtype = torch.bfloat16 if cpu_has_bf16() else torch.float32
    generator = torch.Generator().manual_seed(1)
    weight = (0.05 * torch.randn(VOCABULARY, WIDTH, generator=generator)).to(dtype)
    targets = torch.randint(VOCABULARY, (args.tokens,), generator=generator)
    plain = best_ms(materialized, weight, targets, dtype, args.repeats)
    chunked = best_ms(chunked_head_loss, weight, targets, dtype, args.repeats)
    print(
        f"{args.tokens} tokens, {dtype}, {torch.get_num_threads()} threads: materialised "
        f"{plain:.0f} ms, chunked {chunked:.0f} ms (x{plain / chunked:.2f})"
    )


if __name__ == "__main__":
    main()
