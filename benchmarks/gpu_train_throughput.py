"""GPU fine-tuning throughput: unsloth vs hf on a random-weight Llama 3 8B at 5,000 tokens.

The issue's optional GPU comparison. Both backends train through the project's own entry
point (radreport.llm.finetune.prepare_training) with configs/llama3_8b_single_gpu.yaml's llm
settings: 4-bit NF4 base, LoRA r=16 on all linear layers, batch 2 x accumulation 4,
gradient checkpointing, bf16, max sequence length 5,000. Only two things differ from the
talk's run:
- the base model is a folder of random weights in Llama-3-8B's shape (its config numbers,
  written once by this script in bf16 and quantized by each backend's loader), so no hub
  download is needed; the tokenizer is the bundled SmolLM2 one (its ids fit Llama 3's
  vocabulary, which sets the embedding and head sizes);
- the data are reports of 5,000 tokens (the talk's average report length) made by joining
  real IU X-Ray findings, so every sequence is full and speed does not hang on padding.

Measured per backend, each in a fresh process:
- training tokens/s over the timed optimizer steps (the first step is untimed; the device
  is synchronised around every step);
- peak GPU memory allocated and reserved by PyTorch during training (model included);
- FLOP/s against the bf16 matmul peak measured in the same run (cuBLAS, 8192^3, median of
  timed products on random data). Formulas as in benchmarks/train_throughput.py: nominal
  6 N T; executed 4 N_dec T + 4 N_head T_head + 6 N_lora T + attention; with gradient
  checkpointing every decoder layer's forward runs twice, so "executed + recomputation"
  adds 2 N_dec T + the attention forward.

    python benchmarks/gpu_train_throughput.py [--steps 4] [--tokenizer DIR] [--data CSV]
        [--model-dir DIR] [--out DIR] [--backends unsloth hf]

`--shape tiny` builds a two-layer model of the same kind instead, to check the script on a
CPU (figures then mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd
import torch
import yaml
from train_throughput import (
    DEFAULT_DATA,
    TrainedBatches,
    matmul_peak,
    model_shape,
    step_flops,
)

REPO = Path(__file__).resolve().parents[1]
TALK_CONFIG = REPO / "configs" / "llama3_8b_single_gpu.yaml"
UNTIMED_STEPS = 1
# Meta-Llama-3-8B-Instruct's config.json (the numbers that set the work of a step).
LLAMA3_8B = dict(
    vocab_size=128256,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=8192,
    rms_norm_eps=1e-5,
    rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
    tie_word_embeddings=False,
)
TINY = {
    **LLAMA3_8B,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
SHAPES = {"llama3-8b": LLAMA3_8B, "tiny": TINY}


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return "CPU (no CUDA device)"


def cuda_matmul_peak(size: int = 8192, repeats: int = 20) -> float:
    """Median FLOP/s of a bf16 square product through cuBLAS, timed with CUDA events."""
    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    out = torch.empty(size, size, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        torch.matmul(a, b, out=out)
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.matmul(a, b, out=out)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    del a, b, out
    torch.cuda.empty_cache()
    return 2 * size**3 / statistics.median(times)


def bf16_peak() -> float:
    if torch.cuda.is_available():
        return cuda_matmul_peak()
    return matmul_peak(torch.bfloat16, size=1024)


def bundled_tokenizer_dir() -> Path:
    """The bundled SmolLM2 model's folder: its tokenizer's ids fit Llama 3's vocabulary."""
    from radreport.llm.base_model import resolve_base_model

    return Path(resolve_base_model("bundled:smollm2-135m-instruct"))


def write_random_model(model_dir: Path, shape: str, tokenizer_dir: Path, seed: int) -> dict:
    """A Llama checkpoint of random bf16 weights (std 0.02, as transformers initialises)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        **SHAPES[shape],
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16)
    parameters = sum(p.numel() for p in model.parameters())
    model.save_pretrained(model_dir, max_shard_size="5GB")
    tokenizer.save_pretrained(model_dir)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {"parameters": parameters, "seconds": time.perf_counter() - started}


def long_rows(data: Path, tokenizer_dir: Path, tokens: int, count: int, seed: int) -> list[dict]:
    """`count` impression -> report pairs whose reports join shuffled IU X-Ray findings up to
    at least `tokens` tokens (the trainer truncates each example to max_seq_length)."""
    from transformers import AutoTokenizer

    table = pd.read_csv(data).dropna(subset=["impression", "findings"])
    findings = table["findings"].tolist()
    impressions = table["impression"].tolist()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    lengths = [len(ids) for ids in tokenizer(findings, add_special_tokens=False).input_ids]
    generator = random.Random(seed)
    rows = []
    for _ in range(count):
        order = generator.sample(range(len(findings)), len(findings))
        parts, total = [], 0
        for index in order:
            parts.append(findings[index])
            total += lengths[index] + 1
            if total >= tokens * 1.05:  # joined text tokenizes a little shorter
                break
        rows.append({"impression": impressions[order[0]], "report": " ".join(parts)})
    return rows


class StepClock:
    """Seconds of every optimizer step, the device synchronised at both ends."""

    def __init__(self):
        from transformers import TrainerCallback

        clock = self
        self.seconds: list[float] = []

        def synchronize():
            if torch.cuda.is_available():
                torch.cuda.synchronize()

        class _Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                synchronize()
                clock._start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                synchronize()
                clock.seconds.append(time.perf_counter() - clock._start)

        self.callback = _Callback()


def talk_settings(backend: str, model_dir: Path, steps: int):
    """configs/llama3_8b_single_gpu.yaml's llm section, on the random model, capped in steps,
    without evaluations or checkpoints during the run."""
    from radreport.llm.settings import LLMSettings

    llm = yaml.safe_load(TALK_CONFIG.read_text())["llm"]
    return LLMSettings(
        **{
            **llm,
            "backend": backend,
            "base_model": str(model_dir),
            "max_steps": steps,
            "eval_steps": 10**6,
            "save_steps": 10**6,
            "logging_steps": 10**6,
            "early_stopping_patience": None,
        }
    )


def run_backend(backend: str, model_dir: Path, rows: list[dict], steps: int) -> dict:
    """Train one backend in this process and measure it."""
    from radreport.llm.finetune import prepare_training

    settings = talk_settings(backend, model_dir, steps)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as output_dir:
        run = prepare_training(rows, rows[:1], settings, output_dir)
        loaded_seconds = time.perf_counter() - started
        on_cuda = torch.cuda.is_available()
        loaded_bytes = torch.cuda.memory_allocated() if on_cuda else 0
        clock = StepClock()
        batches = TrainedBatches(run.trainer)
        run.trainer.add_callback(clock.callback)
        if on_cuda:
            torch.cuda.reset_peak_memory_stats()
        run.trainer.train()
        peak_allocated = torch.cuda.max_memory_allocated() if on_cuda else 0
        peak_reserved = torch.cuda.max_memory_reserved() if on_cuda else 0
    config = run.trainer.model.config
    shape = model_shape(config)
    lora = sum(p.numel() for p in run.trainer.model.parameters() if p.requires_grad)
    timed = []
    for index, seconds in enumerate(clock.seconds[UNTIMED_STEPS:], start=UNTIMED_STEPS):
        trained = batches.of_step(index)
        flops = step_flops(trained, shape, lora, run.settings.backend == "hf")
        recomputed = 0
        if run.settings.gradient_checkpointing:
            # The decoder's forward again: its products (2N per token) and the attention's
            # forward, a third of step_flops' forward + backward attention term.
            recomputed = 2 * shape["decoder_linear"] * flops["tokens"] + flops["attention"] / 3
        timed.append(
            {"seconds": seconds, **flops, "recomputed": recomputed, "lengths": trained["lengths"]}
        )
    seconds = sum(step["seconds"] for step in timed)
    return {
        "backend": backend,
        "settings": run.settings.model_dump(),
        "load_seconds": loaded_seconds,
        "loaded_gib": loaded_bytes / 2**30,
        "peak_allocated_gib": peak_allocated / 2**30,
        "peak_reserved_gib": peak_reserved / 2**30,
        "first_step_seconds": clock.seconds[0],
        "steps": timed,
        "tokens_per_s": sum(step["tokens"] for step in timed) / seconds,
        "parameters": {**shape, "lora": lora},
    }


def run_in_subprocess(backend: str, args, log: Path) -> dict:
    """One backend in a fresh process (clean peak memory; unsloth's patches stay there)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        command = [sys.executable, __file__, "--child", backend, "--child-result", result.name]
        command += ["--model-dir", str(args.model_dir), "--steps", str(args.steps)]
        command += ["--rows", str(args.rows_file)]
        with log.open("w") as output:
            try:
                subprocess.run(
                    command,
                    check=True,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    timeout=args.child_timeout,
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as failure:
                tail = log.read_text()[-3000:]
                return {"backend": backend, "error": f"{failure}", "log_tail": tail}
        return json.loads(Path(result.name).read_text())


def table(results: list[dict], peak: float) -> list[str]:
    lines = [
        "| backend | tok/s | s/step (timed) | first step s | load s | peak allocated GiB "
        "| peak reserved GiB | executed TFLOP/s | executed / peak | + recomputation / peak "
        "| nominal / peak |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        if "error" in result:
            lines.append(f"| {result['backend']} | failed: {result['error'][:200]} |")
            continue
        steps = result["steps"]
        seconds = sum(step["seconds"] for step in steps)
        executed = sum(step["executed"] for step in steps) / seconds
        recomputed = sum(step["recomputed"] for step in steps) / seconds
        nominal = sum(step["nominal"] for step in steps) / seconds
        lines.append(
            f"| {result['backend']} | {result['tokens_per_s']:.0f} | {seconds / len(steps):.2f} "
            f"| {result['first_step_seconds']:.1f} | {result['load_seconds']:.0f} "
            f"| {result['peak_allocated_gib']:.1f} | {result['peak_reserved_gib']:.1f} "
            f"| {executed / 1e12:.1f} | {100 * executed / peak:.1f} % "
            f"| {100 * (executed + recomputed) / peak:.1f} % | {100 * nominal / peak:.1f} % |"
        )
    return lines


def comparison(results: list[dict]) -> list[str]:
    measured = {r["backend"]: r for r in results if "error" not in r}
    if not {"unsloth", "hf"} <= measured.keys():
        return []
    u, h = measured["unsloth"], measured["hf"]
    ratios = [f"tokens/s x{u['tokens_per_s'] / h['tokens_per_s']:.2f}"]
    for memory in ("peak_allocated_gib", "peak_reserved_gib"):
        if h[memory]:  # 0 without a CUDA device
            ratios.append(
                f"{memory.removesuffix('_gib').replace('_', ' ')} x{u[memory] / h[memory]:.2f}"
            )
    return [f"- unsloth / hf: {', '.join(ratios)}"]


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    names = ("torch", "transformers", "peft", "trl", "bitsandbytes", "unsloth", "unsloth_zoo")
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} missing")
    return ", ".join(found)


def write_report(args, settings, written: dict, peak: float, results: list[dict]) -> None:
    report = [
        "# Fine-tuning throughput on a GPU (benchmarks/gpu_train_throughput.py)",
        "",
        f"- command: `python benchmarks/gpu_train_throughput.py --steps {args.steps} "
        f"--shape {args.shape} --backends {' '.join(args.backends)}`",
        f"- date: {date.today().isoformat()}; device: {device_name()}; {versions()}",
        f"- model: random weights in the {args.shape} shape "
        f"({written['parameters'] / 1e9:.2f} B parameters); "
        "configs/llama3_8b_single_gpu.yaml's llm settings: "
        f"{settings.per_device_batch_size} x {settings.gradient_accumulation_steps} "
        f"sequences of {settings.max_seq_length} tokens per step, 4-bit "
        f"{settings.load_in_4bit}, gradient checkpointing {settings.gradient_checkpointing}; "
        f"{args.steps} optimizer steps, first {UNTIMED_STEPS} untimed; each backend in a "
        "fresh process",
        f"- bf16 matmul peak measured in this run: {peak / 1e12:.1f} TFLOP/s",
        *comparison(results),
        "",
        *table(results, peak),
        "",
    ]
    (args.out / "gpu_train_throughput.md").write_text("\n".join(report))
    (args.out / "gpu_train_throughput.json").write_text(
        json.dumps({"peak": peak, "model": written, "results": results}, indent=2)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps, first untimed")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama3-8b")
    parser.add_argument("--tokenizer", type=Path, help="default: the bundled model's folder")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model-dir", type=Path, help="where the random model is written")
    parser.add_argument("--backends", nargs="+", default=["unsloth", "hf"])
    parser.add_argument("--child-timeout", type=int, default=300)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-result", help=argparse.SUPPRESS)
    parser.add_argument("--rows", dest="rows_file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        rows = json.loads(args.rows_file.read_text())
        measured = run_backend(args.child, args.model_dir, rows, args.steps)
        Path(args.child_result).write_text(json.dumps(measured))
        return

    if args.shape == "llama3-8b" and not torch.cuda.is_available():
        parser.error("the llama3-8b shape needs a CUDA GPU; --shape tiny checks the script on CPU")
    args.tokenizer = args.tokenizer or bundled_tokenizer_dir()
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="gpu_train_throughput_"))
    args.model_dir = args.model_dir or scratch / "model"
    print(f"{device_name()}; {versions()}", flush=True)
    peak = bf16_peak()
    print(f"bf16 matmul peak {peak / 1e12:.1f} TFLOP/s", flush=True)
    written = write_random_model(args.model_dir, args.shape, args.tokenizer, args.seed)
    print(
        f"random model: {written['parameters'] / 1e9:.2f} B parameters written in "
        f"{written['seconds']:.0f} s",
        flush=True,
    )
    settings = talk_settings("hf", args.model_dir, args.steps)
    per_step = settings.per_device_batch_size * settings.gradient_accumulation_steps
    rows = long_rows(
        args.data, args.tokenizer, settings.max_seq_length, args.steps * per_step, args.seed
    )
    args.rows_file = scratch / "rows.json"
    args.rows_file.write_text(json.dumps(rows))
    results = []
    for backend in args.backends:
        result = run_in_subprocess(backend, args, args.out / f"gpu_train_{backend}.log")
        results.append(result)
        print(f"{backend}: {result.get('tokens_per_s', result.get('error'))}", flush=True)
        # Rewritten after every backend, so a later failure keeps the earlier figures.
        write_report(args, settings, written, peak, results)
    shutil.rmtree(scratch, ignore_errors=True)
    print((args.out / "gpu_train_throughput.md").read_text())


if __name__ == "__main__":
    # unsloth otherwise asks the hub for usage statistics at import, in every child too.
    os.environ.setdefault("UNSLOTH_DISABLE_STATISTICS", "1")
    main()
