"""llama.cpp's batch-1 decode speed on the bundled model against the bandwidth limit.

A reference, not a project dependency: what a mature C++ CPU decoder reaches on this
machine, as a fraction of the same limit as benchmarks/generation_speed.py (copy bandwidth,
read + write counted, measured right before each trial ÷ weight bytes read per token). If
llama.cpp's fraction is also below the issue's 80 %, the gap is the CPU's weight-streaming
rate, not our decoders.

Set-up, once (the llama.cpp sources vendored in llama-cpp-python's sdist; llama-bench alone
builds in about 10 minutes on 2 cores):

    pip download llama-cpp-python==0.3.36 --no-deps --no-binary :all: -d /tmp/llcpp
    tar xzf /tmp/llcpp/llama_cpp_python-0.3.36.tar.gz -C /tmp/llcpp
    cd /tmp/llcpp/llama_cpp_python-0.3.36/vendor/llama.cpp
    cmake -B build -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=ON
    cmake --build build --target llama-bench -j2
    python convert_hf_to_gguf.py ~/.cache/radreport/models/smollm2-135m-instruct \
        --outtype f32 --outfile /tmp/llcpp/smollm2-f32.gguf     # (the project's .venv)
    .venv/bin/pip install gguf==0.19.0                           # to count tensor bytes

Run:

    nice .venv/bin/python benchmarks/llama_cpp_reference.py \
        --llama-bench /tmp/llcpp/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin/llama-bench \
        --gguf /tmp/llcpp/smollm2-f32.gguf
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

import torch
from generation_speed import Measurement, copy_bandwidth, cpu_name, read_bandwidth

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "llama_cpp_reference.md"


def tensor_bytes(gguf_path: Path) -> tuple[int, dict[str, int]]:
    """Bytes of every tensor in the file (what one decode step reads: the tied embedding /
    LM head is stored once) and the count of tensors per storage type."""
    from gguf import GGUFReader

    tensors = GGUFReader(gguf_path).tensors
    return sum(int(t.n_bytes) for t in tensors), dict(Counter(t.tensor_type.name for t in tensors))


def decode_tokens_per_s(llama_bench: Path, gguf: Path, threads: int, args) -> float:
    """One llama-bench text-generation run: `args.new_tokens` tokens at batch 1 after a
    context of `args.depth` tokens (prefilled untimed, like a prompt)."""
    command = [
        str(llama_bench),
        *("-m", str(gguf), "-p", "0", "-n", str(args.new_tokens), "-d", str(args.depth)),
        *("-t", str(threads), "-r", "1", "-o", "json"),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"llama-bench failed ({completed.returncode}): {completed.stderr[-500:]}")
    rows = [row for row in json.loads(completed.stdout) if row["n_gen"] > 0]
    return float(rows[0]["avg_ts"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llama-bench", type=Path, required=True)
    parser.add_argument("--gguf", type=Path, required=True)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--depth", type=int, default=128, help="context tokens before decoding")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    for path in (args.llama_bench, args.gguf):
        if not path.is_file():
            raise SystemExit(f"not a file: {path}")

    weight_bytes, types = tensor_bytes(args.gguf)
    load_at_start = os.getloadavg()[0]
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)  # the copy is measured on as many threads as decode
        decode_tokens_per_s(args.llama_bench, args.gguf, threads, args)  # warm-up: page cache
        speeds, copies, reads = [], [], []
        for _ in range(args.trials):
            copies.append(copy_bandwidth())
            reads.append(read_bandwidth())
            speeds.append(decode_tokens_per_s(args.llama_bench, args.gguf, threads, args))
        # llama-bench reports speed only: its CPU time is not ours to measure.
        measured = Measurement(
            max(speeds), statistics.median(speeds), max(copies), max(reads), float("nan")
        )
        fraction = measured.fraction_of_limit(weight_bytes)
        rows.append(
            f"| llama.cpp llama-bench, {threads} thread(s) | {measured.best_tokens_per_s:.1f} "
            f"| {measured.median_tokens_per_s:.1f} | {measured.best_bandwidth / 1e9:.1f} "
            f"| {measured.best_bandwidth / weight_bytes:.1f} | {fraction:.0%} "
            f"| {measured.fraction_of_read_limit(weight_bytes):.0%} |"
        )
        print(
            f"{threads} thread(s): best {measured.best_tokens_per_s:.1f} tokens/s, "
            f"{fraction:.0%} of the limit"
        )

    command = " ".join(["nice .venv/bin/python benchmarks/llama_cpp_reference.py", *sys.argv[1:]])
    lines = [
        "# llama.cpp reference: batch-1 decode of the bundled SmolLM2-135M-Instruct (CPU)",
        "",
        f"- Command: `{command}`",
        f"- Date: {datetime.date.today().isoformat()}",
        f"- Machine: {cpu_name()} ({platform.machine()}), {os.cpu_count()} CPUs; 1-minute "
        f"load average {load_at_start:.1f} at start, {os.getloadavg()[0]:.1f} at end",
        f"- Weights: {weight_bytes:,} bytes of tensors read per token; tensor types {types}",
        f"- Work: {args.new_tokens} tokens at batch 1 after {args.depth} context tokens, "
        f"{args.trials} trials per row after one warm-up, copy and read-only bandwidth "
        "measured before each trial (as in generation_speed.py)",
        "",
        "| decoder | best tokens/s | median tokens/s | best copy GB/s | limit tokens/s "
        "| fraction of limit | fraction of read-only limit |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
    ]
    args.output.write_text("\n".join(lines))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
