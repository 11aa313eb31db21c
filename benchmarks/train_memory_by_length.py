"""CPU training memory by example length, with gradient checkpointing off, on, or left to
`gradient_checkpointing: auto` (radreport.llm.training_memory decides by the memory available).

CT findings run to hundreds of tokens, and with retrieval a training example holds several
of them, so how training memory grows with the example length says where a CPU machine
needs checkpointing. Each setting runs 2 training steps of the bundled SmolLM2-135M with the
IU X-Ray config's LoRA (rank 64 on all linear layers) and `--batch` examples of exactly
`tokens` tokens (IU X-Ray train findings run together and cut there), in a process of its
own, and prints its peak resident memory (the kernel's high-water mark: model, optimizer and
activations) and the time of the two steps. The main process prints, per setting, the
growth per 1,000 tokens of a batch row between the shortest and each longer length.
Run: nice .venv/bin/python benchmarks/train_memory_by_length.py [--tokens 512 1024 2048]
  [--batch 8] [--compute-dtype auto|bfloat16|float32] [--checkpointing off on auto] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from generation_batch_memory import IU, result_of

BASE_MODEL = "bundled:smollm2-135m-instruct"


def rows_of_length(tokens: int, count: int) -> list[dict]:
    """`count` examples whose prompt and report (end-of-sequence token included) are `tokens`
    long: a short impression and a report cut from IU X-Ray train findings run together."""
    from transformers import AutoTokenizer

    from radreport.data.alpaca import tokenize_example
    from radreport.llm.base_model import resolve_base_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(BASE_MODEL))
    text = " ".join(pd.read_csv(IU / "train.csv", keep_default_na=False)["findings"])
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    impression = "Findings as below."
    overhead = len(tokenize_example(tokenizer, impression, "x", tokens).input_ids) - 1
    length = tokens - overhead
    if length * count > len(ids):
        raise SystemExit(f"IU X-Ray train has too few tokens for {count} rows of {tokens}")
    rows = []
    for row in range(count):
        report = tokenizer.decode(ids[row * length : (row + 1) * length])
        rows.append({"impression": impression, "report": report})
    return rows


def train_once(tokens: int, batch: int, checkpointing: str, compute_dtype: str) -> dict:
    from radreport.llm.device import resolve_for_device
    from radreport.llm.finetune import finetune
    from radreport.llm.settings import LLMSettings

    rows = rows_of_length(tokens, batch * 2)
    settings = LLMSettings(
        base_model=BASE_MODEL,
        max_seq_length=tokens + 16,  # room for a decode/encode round trip's extra token
        lora_r=64,
        lora_alpha=64,
        per_device_batch_size=batch,
        max_steps=2,
        warmup_ratio=0.0,
        eval_steps=100,
        save_steps=100,
        early_stopping_patience=None,
        eval_samples=0,
        gradient_checkpointing={"off": False, "on": True}.get(checkpointing, checkpointing),
        compute_dtype=compute_dtype,
    )
    # What `auto` comes to here, from the memory available now, as finetune resolves it.
    used = resolve_for_device(settings).gradient_checkpointing
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = finetune(rows, rows[:2], settings, folder, report_to=[])
        seconds = time.perf_counter() - started
    return {
        "tokens": tokens,
        "longest_example": int(result.metrics.get("train_tokens_max", 0)),
        "batch": batch,
        "checkpointing": checkpointing,
        "checkpointing_used": used,
        "compute_dtype": compute_dtype,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--compute-dtype", default="auto", help="auto, bfloat16 or float32")
    parser.add_argument(
        "--checkpointing", nargs="+", default=["off", "on"], choices=["off", "on", "auto"]
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--one", nargs=2, metavar=("TOKENS", "CHECKPOINTING"), help="internal")
    args = parser.parse_args()
    if args.one:
        result = train_once(int(args.one[0]), args.batch, args.one[1], args.compute_dtype)
        print(json.dumps(result))
        return
    results = []
    for checkpointing in args.checkpointing:
        for tokens in sorted(args.tokens):
            command = [sys.executable, __file__, "--one", str(tokens), checkpointing]
            options = ["--batch", str(args.batch), "--compute-dtype", args.compute_dtype]
            result = result_of([*command, *options])
            results.append(result)
            # Growth compares runs that kept (or recomputed) alike, which `auto` may not.
            first = next(
                r
                for r in results
                if (r["checkpointing"], r["checkpointing_used"])
                == (checkpointing, result["checkpointing_used"])
            )
            growth = ""
            if result is not first:
                per_row = (result["peak_rss_gib"] - first["peak_rss_gib"]) / (
                    (result["tokens"] - first["tokens"]) / 1000
                )
                growth = f", {per_row / args.batch:.2f} GiB per 1,000 tokens of a row"
            used = "on" if result["checkpointing_used"] else "off"
            print(
                f"checkpointing {checkpointing:4s} ({used}) "
                f"{tokens:5d} tokens x "
                f"{args.batch}, {result['compute_dtype']}: peak {result['peak_rss_gib']:.2f} GiB, "
                f"{result['seconds']:.0f} s{growth}",
                flush=True,
            )
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"written: {args.out}")


if __name__ == "__main__":
    main()
