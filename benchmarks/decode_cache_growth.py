"""The PyTorch decode loop's cache: positions allocated once (radreport.llm.preallocated_cache)
against transformers' DynamicCache, which copies each layer's cache at every step to append
one position. Same prompts, same tokens; the time of a decode step and the peak memory.

The prompts are benchmarks/generation_batch_memory.py's: IU X-Ray train impressions, each
with 3 retrieved studies whose findings are repeated `--repeat` times (long, CT-length
prompts from real report text), MBR over 8 candidates on the bundled SmolLM2-135M, the stop
tokens biased by -20 so that every row decodes to the budget. Each cache decodes the same
prompts twice, with `--short` and `--long` new tokens, each in a process of its own; the
time of a step is the difference over the difference in steps (the prompts' encoding
cancels out). Run:
nice .venv/bin/python benchmarks/decode_cache_growth.py [--prompts 8] [--repeat 8]
  [--short 20] [--long 60]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time

from generation_batch_memory import MBR_CANDIDATES, PeakMemoryGrowth, long_prompts, result_of

CACHES = ("preallocated", "dynamic")


def measure_one(cache: str, new_tokens: int, args: argparse.Namespace) -> dict:
    from transformers import DynamicCache

    from radreport.llm import generate as generate_module
    from radreport.llm.bundled import bundled_model_dir
    from radreport.llm.generate import ReportGenerator

    if cache == "dynamic":
        generate_module.preallocated_cache = lambda config, capacity: DynamicCache(config=config)
    generator = ReportGenerator(
        bundled_model_dir(),
        max_new_tokens=new_tokens,
        mbr_candidates=MBR_CANDIDATES,
        stop_logit_bias=-20.0,
        batch_size=args.prompts,
        batch_tokens=None,
    )
    impressions, examples = long_prompts(args.prompts, args.repeat)
    with PeakMemoryGrowth() as memory:
        start = time.perf_counter()
        groups = generator.candidate_groups(impressions, examples, progress=False)
        seconds = time.perf_counter() - start
    lengths = generator._token_counts(generator._prompts(impressions, examples))
    return {
        "cache": cache,
        "new_tokens": new_tokens,
        "prompt_tokens": [min(lengths), max(lengths)],
        "seconds": seconds,
        "peak_growth_gib": memory.bytes / 2**30,
        "candidates_digest": hashlib.sha256(json.dumps(groups).encode()).hexdigest()[:16],
    }


def run_one(cache: str, new_tokens: int, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--one", cache, str(new_tokens)]
    command += ["--prompts", str(args.prompts), "--repeat", str(args.repeat)]
    return result_of(command)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=8)
    parser.add_argument("--short", type=int, default=20)
    parser.add_argument("--long", type=int, default=60)
    parser.add_argument("--one", nargs=2, metavar=("CACHE", "NEW_TOKENS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one[0], int(args.one[1]), args)))
        return
    step = {}
    for cache in CACHES:
        short, long = (run_one(cache, tokens, args) for tokens in (args.short, args.long))
        step[cache] = (long["seconds"] - short["seconds"]) / (args.long - args.short)
        for result in (short, long):
            print(
                f"{cache:12} {result['new_tokens']:3} new tokens, prompts "
                f"{result['prompt_tokens'][0]}-{result['prompt_tokens'][1]} tokens: "
                f"{result['seconds']:.1f} s, peak growth {result['peak_growth_gib']:.2f} GiB, "
                f"candidates {result['candidates_digest']}",
                flush=True,
            )
        print(f"{cache:12} a decode step: {step[cache]:.2f} s", flush=True)
    ratio = step["dynamic"] / step["preallocated"]
    print(f"steps per second, preallocated / dynamic: {ratio:.2f}x")


if __name__ == "__main__":
    main()
