"""Fine-tuning throughput: unsloth vs hf, and what each CPU lever gives.

Every variant trains the bundled SmolLM2-135M-Instruct (LoRA r=16 on all linear layers)
on the same IU X-Ray reports (<= 256 tokens, Alpaca format, response-only loss) for the
same number of steps, each in a fresh process (clean peak memory, unsloth's patches kept
away from the hf runs). It prints and writes:

- training tokens/s (real tokens, padding not counted; warm-up steps excluded),
- peak RSS during training, the unsloth/hf ratios,
- achieved FLOP/s as a fraction of the matmul peak measured in the same run (2048^3
  torch.matmul, bf16 and fp32; the fraction is taken against the faster of the two).

FLOPs are counted two ways, per step:
- nominal:  6 * N * T, with N = every matmul parameter (decoder linears + LM head) and
  T = real tokens: the usual training estimate, which assumes every weight gets a gradient;
- executed: 4 * N_dec * T + 4 * N_head * T_head + 6 * N_lora * T + 6 * L * H * sum(s^2):
  a frozen base needs activation gradients (2N) but no weight gradients, only the LoRA
  weights get both; the LM head runs only on T_head positions (the labelled ones for the
  hf backend, all for unsloth); the last term is causal attention (QK^T and AV, half the
  s x s square, forward + backward). Recomputation from gradient checkpointing is overhead
  and not counted. The goal (>= 35 % of peak) is judged on executed FLOPs.

    nice .venv/bin/python benchmarks/train_throughput.py [--steps 20] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import pandas as pd
import psutil
import torch

IU_XRAY_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "iu_xray" / "train.csv"
RESULTS = Path(__file__).resolve().parent / "results" / "train_throughput.md"
WARMUP_STEPS = 1
MAX_TOKENS = 256

# The levers, one at a time against the first row; the references are the first tries in
# stack.md. Ordered so that an interrupted run has measured the choices that matter first.
VARIANTS: dict[str, dict] = {
    "hf + unquantized base + length-grouped batches": dict(
        backend="hf", load_in_4bit=False, gradient_checkpointing=False, batching="length_grouped"
    ),
    "unsloth + unquantized base + length-grouped, no checkpointing": dict(
        backend="unsloth",
        load_in_4bit=False,
        gradient_checkpointing=False,
        batching="length_grouped",
    ),
    "hf + unquantized base + padding-free batches": dict(
        backend="hf", load_in_4bit=False, gradient_checkpointing=False, batching="padding_free"
    ),
    "hf + unquantized base (no NF4), padded": dict(
        backend="hf", load_in_4bit=False, gradient_checkpointing=False, batching="padded"
    ),
    "hf + unquantized base + length-grouped, checkpointing on": dict(
        backend="hf", load_in_4bit=False, gradient_checkpointing=True, batching="length_grouped"
    ),
    "hf + unquantized base + length-grouped, 1 thread": dict(
        backend="hf",
        load_in_4bit=False,
        gradient_checkpointing=False,
        batching="length_grouped",
        num_threads=1,
    ),
    "hf reference (4-bit, no checkpointing, padded)": dict(
        backend="hf", load_in_4bit=True, gradient_checkpointing=False, batching="padded"
    ),
    "unsloth reference (4-bit, unsloth checkpointing, padded)": dict(
        backend="unsloth", load_in_4bit=True, gradient_checkpointing=True, batching="padded"
    ),
    "hf + unquantized base + length-grouped, bf16 compute": dict(
        backend="hf",
        load_in_4bit=False,
        gradient_checkpointing=False,
        batching="length_grouped",
        compute_dtype="bfloat16",
    ),
}
# Variants too slow on a CPU without native bf16 to run every step: timed on fewer steps.
SHORT_VARIANTS = {"hf + unquantized base + length-grouped, bf16 compute"}
SHORT_STEPS = WARMUP_STEPS + 1


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 3) -> float:
    """Best FLOP/s of a square GEMM, a ceiling for what training matmuls can reach."""
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    torch.matmul(a[:256, :256], b[:256, :256])  # warm-up of the kernel choice
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def iu_rows(count: int) -> list[dict]:
    table = pd.read_csv(IU_XRAY_TRAIN).dropna(subset=["impression", "findings"])
    return [
        {"impression": row.impression, "report": row.findings}
        for row in table.head(count).itertuples()
    ]


class StepTimer:
    """Wall time of every optimizer step, taken from Trainer callbacks."""

    def __init__(self):
        from transformers import TrainerCallback

        timer = self

        class _Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                timer._start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                timer.durations.append(time.perf_counter() - timer._start)

        self.durations: list[float] = []
        self.callback = _Callback()


class CountingCollator:
    """Wraps the run's collator to record, per batch, real and labelled tokens and lengths."""

    def __init__(self, collator):
        self.collator = collator
        self.batches: list[dict] = []

    def __call__(self, features):
        lengths = [len(feature["input_ids"]) for feature in features]
        labelled = sum(sum(label != -100 for label in feature["labels"]) for feature in features)
        self.batches.append({"lengths": lengths, "labelled": labelled})
        return self.collator(features)


class PeakRss:
    """Highest resident memory of this process while the block runs (sampled every 20 ms)."""

    def __enter__(self):
        self.peak = psutil.Process().memory_info().rss
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        process = psutil.Process()
        while self._running:
            self.peak = max(self.peak, process.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()


def matmul_parameters(model_config) -> tuple[int, int]:
    """(decoder linear parameters, LM head parameters) of a Llama-style config."""
    hidden = model_config.hidden_size
    head_dim = getattr(model_config, "head_dim", None) or hidden // model_config.num_attention_heads
    query = model_config.num_attention_heads * head_dim
    key_value = model_config.num_key_value_heads * head_dim
    per_layer = hidden * (2 * query + 2 * key_value) + 3 * hidden * model_config.intermediate_size
    return model_config.num_hidden_layers * per_layer, model_config.vocab_size * hidden


def run_variant(overrides: dict, steps: int, batch: int) -> dict:
    """Train one variant in this process and measure it."""
    from radreport.llm.finetune import prepare_training
    from radreport.llm.settings import LLMSettings

    settings = LLMSettings(
        max_seq_length=MAX_TOKENS,
        max_steps=steps,
        per_device_batch_size=batch,
        eval_steps=10**6,
        save_steps=10**6,
        logging_steps=10**6,
        early_stopping_patience=None,
        **overrides,
    )
    rows = iu_rows(steps * batch)  # one epoch of exactly `steps` batches, same rows for all
    with tempfile.TemporaryDirectory() as output_dir:
        run = prepare_training(rows, rows[:batch], settings, output_dir)
        timer = StepTimer()
        counter = CountingCollator(run.trainer.data_collator)
        run.trainer.data_collator = counter
        run.trainer.add_callback(timer.callback)
        fp32_peak_before = matmul_peak(torch.float32)
        with PeakRss() as rss:
            run.trainer.train()
        fp32_peak_after = matmul_peak(torch.float32)
    model_config = run.trainer.model.config
    decoder, head = matmul_parameters(model_config)
    lora = sum(p.numel() for p in run.trainer.model.parameters() if p.requires_grad)
    timed = counter.batches[WARMUP_STEPS:steps]
    lengths = [length for batch_ in timed for length in batch_["lengths"]]
    tokens = sum(lengths)
    labelled = sum(batch_["labelled"] for batch_ in timed)
    head_tokens = labelled if run.settings.backend == "hf" else tokens
    attention_dim = model_config.num_attention_heads * (
        getattr(model_config, "head_dim", None)
        or model_config.hidden_size // model_config.num_attention_heads
    )
    attention = 6 * model_config.num_hidden_layers * attention_dim * sum(s * s for s in lengths)
    seconds = sum(timer.durations[WARMUP_STEPS:])
    return {
        "resolved": run.settings.model_dump(
            include={
                "backend",
                "load_in_4bit",
                "compute_dtype",
                "gradient_checkpointing",
                "batching",
                "num_threads",
            }
        ),
        "timed_steps": len(timer.durations) - WARMUP_STEPS,
        "seconds": seconds,
        "tokens": tokens,
        "tokens_per_s": tokens / seconds,
        "padded_tokens": sum(max(b["lengths"]) * len(b["lengths"]) for b in timed),
        "peak_rss_gib": rss.peak / 2**30,
        "nominal_flops": 6 * (decoder + head) * tokens,
        "executed_flops": 4 * decoder * tokens
        + 4 * head * head_tokens
        + 6 * lora * tokens
        + attention,
        "fp32_peak": (fp32_peak_before + fp32_peak_after) / 2,
        "parameters": {"decoder_linear": decoder, "lm_head": head, "lora": lora},
    }


def run_in_subprocess(name: str, steps: int, batch: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        command = [
            sys.executable,
            __file__,
            "--child",
            name,
            "--steps",
            str(steps),
            "--batch",
            str(batch),
            "--child-result",
            result.name,
        ]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        measured = json.loads(Path(result.name).read_text())
    measured["process_seconds"] = time.perf_counter() - started
    return measured


def table(results: dict[str, dict], bf16_peak: float) -> str:
    lines = [
        "| variant | backend, 4-bit, dtype, ckpt, batching, threads | tok/s | s/step "
        "| peak RSS GiB | padding % | nominal GFLOP/s | executed GFLOP/s "
        "| fp32 peak GFLOP/s | executed / peak |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        seconds = r["seconds"]
        peak = max(r["fp32_peak"], bf16_peak)
        resolved = r["resolved"]
        setup = ", ".join(
            str(resolved[key])
            for key in (
                "backend",
                "load_in_4bit",
                "compute_dtype",
                "gradient_checkpointing",
                "batching",
                "num_threads",
            )
        )
        lines.append(
            f"| {name} | {setup} | {r['tokens_per_s']:.0f} | {seconds / r['timed_steps']:.2f} "
            f"| {r['peak_rss_gib']:.2f} | {100 * (1 - r['tokens'] / r['padded_tokens']):.0f} "
            f"| {r['nominal_flops'] / seconds / 1e9:.1f} "
            f"| {r['executed_flops'] / seconds / 1e9:.1f} "
            f"| {r['fp32_peak'] / 1e9:.1f} | {100 * r['executed_flops'] / seconds / peak:.0f} % |"
        )
    return "\n".join(lines)


def ratio_line(results: dict[str, dict], unsloth: str, hf: str) -> str:
    if unsloth not in results or hf not in results:
        return ""
    speed = results[unsloth]["tokens_per_s"] / results[hf]["tokens_per_s"]
    memory = results[unsloth]["peak_rss_gib"] / results[hf]["peak_rss_gib"]
    return f"- unsloth / hf ({unsloth} vs {hf}): tokens/s x{speed:.2f}, peak RSS x{memory:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measured = run_variant(VARIANTS[args.child], args.steps, args.batch)
        Path(args.child_result).write_text(json.dumps(measured))
        return
    bf16_peak = matmul_peak(torch.bfloat16, repeats=1)
    fp32_peak = matmul_peak(torch.float32)
    print(f"matmul peak 2048^3: bf16 {bf16_peak / 1e9:.1f} GFLOP/s, fp32 {fp32_peak / 1e9:.1f}")
    results = {}
    for name in args.variants:
        steps = min(args.steps, SHORT_STEPS) if name in SHORT_VARIANTS else args.steps
        results[name] = run_in_subprocess(name, steps, args.batch)
        print(f"{name}: {results[name]['tokens_per_s']:.1f} tok/s", flush=True)
        # Written after every variant, so a long run interrupted still leaves its figures.
        write_report(results, args, bf16_peak, fp32_peak)
    print(args.out.read_text())


def write_report(results: dict[str, dict], args, bf16_peak: float, fp32_peak: float) -> None:
    report = "\n".join(
        [
            "# Training throughput (benchmarks/train_throughput.py)",
            "",
            f"- command: `nice .venv/bin/python benchmarks/train_throughput.py "
            f"--steps {args.steps} --batch {args.batch}`",
            f"- date: {date.today().isoformat()}; machine: {cpu_name()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__}, "
            f"CPU capability {torch.backends.cpu.get_cpu_capability()}",
            f"- matmul peak (2048^3, parent process): bf16 {bf16_peak / 1e9:.1f} GFLOP/s, "
            f"fp32 {fp32_peak / 1e9:.1f} GFLOP/s; each row's fraction uses the larger of the bf16 "
            "peak and that run's own fp32 peak (measured just before and after its training)",
            f"- {args.steps} steps of batch {args.batch} (bf16-compute row: {SHORT_STEPS}), "
            f"first {WARMUP_STEPS} excluded from timing",
            ratio_line(
                results,
                "unsloth reference (4-bit, unsloth checkpointing, padded)",
                "hf reference (4-bit, no checkpointing, padded)",
            ),
            ratio_line(
                results,
                "unsloth + unquantized base + length-grouped, no checkpointing",
                "hf + unquantized base + length-grouped batches",
            ),
            "",
            table(results, bf16_peak),
            "",
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
