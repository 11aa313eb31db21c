"""Decode steps of the PyTorch decoder: grouped key/value heads attended as they are
(radreport.llm.grouped_decode_attention) against transformers' SDPA attention, which copies
each key/value head for every query head sharing it when a padded batch needs a mask.

The prompts are benchmarks/generation_batch_memory.py's (IU X-Ray train impressions with 3
retrieved studies whose findings are repeated `--repeat` times), MBR over 8 candidates on
the bundled SmolLM2-135M (9 query heads sharing 3 key/value heads), the stop tokens biased
by -20 so that every row decodes to the budget; fp32 and bfloat16 weights. Each attention
decodes the same prompts with `--short` and `--long` new tokens, each in a process of its
own; the time of a step is the difference over the difference in steps. Run:
nice .venv/bin/python benchmarks/decode_attention.py [--prompts 4] [--repeat 8]
  [--short 10] [--long 30]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time

from generation_batch_memory import MBR_CANDIDATES, long_prompts, result_of

ATTENTIONS = ("sdpa_grouped_decode", "sdpa")


def measure_one(attention: str, dtype: str, new_tokens: int, args: argparse.Namespace) -> dict:
    import torch

    from radreport.llm import generate as generate_module
    from radreport.llm.bundled import bundled_model_dir
    from radreport.llm.generate import ReportGenerator

    if attention == "sdpa":
        generate_module.register_sdpa_grouped_decode = lambda: "sdpa"
    generator = ReportGenerator(
        bundled_model_dir(),
        dtype=getattr(torch, dtype),
        max_new_tokens=new_tokens,
        mbr_candidates=MBR_CANDIDATES,
        stop_logit_bias=-20.0,
        batch_size=args.prompts,
        batch_tokens=None,
    )
    assert generator.model.config._attn_implementation == attention
    impressions, examples = long_prompts(args.prompts, args.repeat)
    start = time.perf_counter()
    groups = generator.candidate_groups(impressions, examples, progress=False)
    seconds = time.perf_counter() - start
    lengths = generator._token_counts(generator._prompts(impressions, examples))
    return {
        "attention": attention,
        "dtype": dtype,
        "new_tokens": new_tokens,
        "prompt_tokens": [min(lengths), max(lengths)],
        "seconds": seconds,
        "candidates_digest": hashlib.sha256(json.dumps(groups).encode()).hexdigest()[:16],
    }


def run_one(attention: str, dtype: str, new_tokens: int, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--one", attention, dtype, str(new_tokens)]
    command += ["--prompts", str(args.prompts), "--repeat", str(args.repeat)]
    return result_of(command)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=8)
    parser.add_argument("--short", type=int, default=10)
    parser.add_argument("--long", type=int, default=30)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        attention, dtype, new_tokens = args.one
        print(json.dumps(measure_one(attention, dtype, int(new_tokens), args)))
        return
    for dtype in args.dtypes:
        step, digests = {}, {}
        for attention in ATTENTIONS:
            short, long = (run_one(attention, dtype, n, args) for n in (args.short, args.long))
            step[attention] = (long["seconds"] - short["seconds"]) / (args.long - args.short)
            digests[attention] = (short["candidates_digest"], long["candidates_digest"])
            for result in (short, long):
                print(
                    f"{dtype:8} {attention:19} {result['new_tokens']:3} new tokens, prompts "
                    f"{result['prompt_tokens'][0]}-{result['prompt_tokens'][1]} tokens: "
                    f"{result['seconds']:.1f} s, candidates {result['candidates_digest']}",
                    flush=True,
                )
            print(f"{dtype:8} {attention:19} a decode step: {step[attention]:.2f} s", flush=True)
        same = digests["sdpa_grouped_decode"] == digests["sdpa"]
        print(
            f"{dtype:8} steps per second, grouped / sdpa: "
            f"{step['sdpa'] / step['sdpa_grouped_decode']:.2f}x; "
            f"candidates {'identical' if same else 'differ'}",
            flush=True,
        )


if __name__ == "__main__":
    main()
