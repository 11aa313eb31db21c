"""What capping a decode batch's cache positions (`llm.generation_batch_tokens`) does to
generation's memory and time, and how close the generator's count of positions comes to
the memory a batch really takes.

Long prompts are the case the cap is for: CT findings run to hundreds of tokens, and with
retrieval each prompt shows several of them. Here each prompt is an IU X-Ray train
impression with 3 retrieved train studies whose findings are repeated `--repeat` times
(about 1,100 tokens a prompt at 4), so the bundled SmolLM2-135M sees CT-length prompts from
real report text. MBR over 8 candidates, as configs/iu_xray.yaml decodes; the stop tokens
biased by -20, so every row writes all `--new-tokens` (the most memory a batch can take).

For each decoder (torch, native) one process per setting: no cap (the batch is all
`--prompts` prompts, as before the cap existed), then a cap of a quarter of what that batch
counts. Each prints the peak growth of its resident memory during the one `generate` call
(sampled every 5 ms), the bytes its batches count (positions x bytes per position), their
ratio, and the wall time. Run:
nice .venv/bin/python benchmarks/generation_batch_memory.py [--prompts 8] [--repeat 4]
  [--new-tokens 100] [--decoders native torch] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
IU = REPO.parent / "shared" / "data" / "iu_xray"
MBR_CANDIDATES = 8


def long_prompts(count: int, repeat: int) -> tuple[list[str], list[list[tuple[str, str]]]]:
    """`count` impressions, each with 3 examples whose reports are IU findings repeated."""
    rows = pd.read_csv(IU / "train.csv", dtype=str, keep_default_na=False)
    rows = rows[(rows["impression"].str.strip() != "") & (rows["findings"].str.strip() != "")]
    rows = rows.reset_index(drop=True)
    impressions = list(rows["impression"][1000 : 1000 + count])
    examples = [
        [
            (rows["impression"][row], " ".join([rows["findings"][row]] * repeat))
            for row in range(3 * index, 3 * index + 3)
        ]
        for index in range(count)
    ]
    return impressions, examples


class PeakMemoryGrowth:
    """How far this process's resident memory rose above its level at entry, sampled every
    5 ms by a thread while the block runs: `bytes`, once the block has ended."""

    def __enter__(self) -> PeakMemoryGrowth:
        import psutil

        self._process = psutil.Process()
        self._before = self._peak = self._process.memory_info().rss
        self._done = threading.Event()
        self._watcher = threading.Thread(target=self._watch)
        self._watcher.start()
        return self

    def _watch(self) -> None:
        while not self._done.is_set():
            self._peak = max(self._peak, self._process.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        self._watcher.join()
        self.bytes = self._peak - self._before


def measure_one(decoder: str, cap: int | None, args: argparse.Namespace) -> dict:
    """One generate() call in this process: its peak memory growth and what it counted."""
    from radreport.llm.bundled import bundled_model_dir
    from radreport.llm.generate import ReportGenerator
    from radreport.llm.settings import LLMSettings

    settings = LLMSettings(
        decoder=decoder,
        mbr_candidates=MBR_CANDIDATES,
        max_new_tokens=args.new_tokens,
        stop_logit_bias=-20.0,
        generation_batch_size=args.prompts,
    )
    generator = ReportGenerator.from_settings(settings, bundled_model_dir())
    generator.batch_tokens = cap
    impressions, examples = long_prompts(args.prompts, args.repeat)
    lengths = generator._token_counts(generator._prompts(impressions, examples))
    batches = generator._batches(lengths, args.prompts, args.new_tokens, MBR_CANDIDATES)
    largest = max(
        generator._cache_positions([lengths[i] for i in batch], args.new_tokens, MBR_CANDIDATES, 1)
        for batch in batches
    )
    with PeakMemoryGrowth() as memory:
        start = time.perf_counter()
        generator.generate(impressions, examples, progress=False)
        seconds = time.perf_counter() - start
    counted = largest * generator.cache_bytes_per_position()
    return {
        "decoder": decoder,
        "cap": cap,
        "prompt_tokens": [min(lengths), max(lengths)],
        "batches": [len(batch) for batch in batches],
        "largest_batch_positions": largest,
        "counted_gib": counted / 2**30,
        "peak_growth_gib": memory.bytes / 2**30,
        "growth_over_counted": memory.bytes / counted,
        "seconds": seconds,
    }


def result_of(command: list[str]) -> dict:
    """The JSON object a `--one` run prints last: each setting of these benchmarks runs in
    a process of its own, so that its memory and caches start clean."""
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def run_one(decoder: str, cap: int | None, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        __file__,
        "--one",
        decoder,
        str(cap or 0),
        "--prompts",
        str(args.prompts),
        "--repeat",
        str(args.repeat),
        "--new-tokens",
        str(args.new_tokens),
    ]
    return result_of(command)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=100)
    parser.add_argument("--decoders", nargs="+", default=["native", "torch"])
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "generation_batch_memory.json"
    )
    parser.add_argument("--one", nargs=2, metavar=("DECODER", "CAP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        decoder, cap = args.one[0], int(args.one[1]) or None
        print(json.dumps(measure_one(decoder, cap, args)))
        return
    results = []
    for decoder in args.decoders:
        whole = run_one(decoder, None, args)
        capped = run_one(decoder, math.ceil(whole["largest_batch_positions"] / 4), args)
        for result in (whole, capped):
            results.append(result)
            print(
                f"{decoder:6} cap {str(result['cap']):>7}: batches {result['batches']}, "
                f"prompts {result['prompt_tokens'][0]}-{result['prompt_tokens'][1]} tokens; "
                f"counted {result['counted_gib']:.2f} GiB, peak growth "
                f"{result['peak_growth_gib']:.2f} GiB ({result['growth_over_counted']:.2f}x), "
                f"{result['seconds']:.0f} s",
                flush=True,
            )
        print(
            f"{decoder:6} capped / whole: peak growth "
            f"{capped['peak_growth_gib'] / whole['peak_growth_gib']:.2f}x, "
            f"time {capped['seconds'] / whole['seconds']:.2f}x",
            flush=True,
        )
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
