"""Fine-tuning throughput: unsloth vs hf, and what each CPU lever gives.

Every variant trains the bundled SmolLM2-135M-Instruct (LoRA r=16 on all linear layers)
on the IU X-Ray training reports (<= 256 tokens, Alpaca format, response-only loss) for the
same number of steps of the same batch size, each in a fresh process (clean peak memory,
unsloth's patches kept away from the hf runs). Measured per variant:

- training tokens/s: real tokens (padding not counted) over the timed steps (the first
  step, which pays one-off allocations, is not timed); every variant runs once per round
  and its fastest round is kept, since other processes can only slow a run down;
- peak RSS during training; the unsloth / hf ratios;
- achieved FLOP/s as a fraction of the matmul peak (2048^3 torch.matmul) measured in the
  same run, right before and after every timed step, in the faster of the CPU's two dtypes:
  bf16 where it has AVX-512 BF16 or AMX, fp32 where bf16 is emulated (both are also taken
  once in the parent). The median of the per-step fractions is reported. On a shared
  machine the load of other processes changes by the minute; a peak taken around each step
  tracks it, so the fraction compares variants more fairly than tokens/s.
- padding waste of each batching strategy over a whole epoch (from the sampler alone).

FLOPs per step, two ways:
- nominal:  6 * N * T, with N = every matmul parameter (decoder linears + LM head) and T =
  real tokens: the usual training estimate, which assumes every weight gets a gradient;
- executed: 4 * N_dec * T + 4 * N_head * T_head + 6 * N_lora * T + 6 * L * H * sum(s^2): a
  frozen base needs activation gradients (2N) but no weight gradients; only the LoRA
  weights get both; the LM head runs on T_head positions (the labelled ones for the hf
  backend, all of them for unsloth); the last term is causal attention (QK^T and AV over
  half the s x s square, forward + backward). Padding and recomputation from gradient
  checkpointing are overhead, not counted. The >= 35 % goal is judged on executed FLOPs.

    nice .venv/bin/python benchmarks/train_throughput.py [--steps 4] [--batch 8] [--rounds 2]
        [--retrieval-k 3]  # the IU config's prompts, up to 736 tokens
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
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

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "iu_xray" / "train.csv"
RESULTS = Path(__file__).resolve().parent / "results" / "train_throughput.md"
MAX_TOKENS = 256
UNTIMED_STEPS = 1
CORE = dict(load_in_4bit=False, gradient_checkpointing=False, batching="length_grouped")

# Each lever changes one thing against the first row; the references are the first tries
# recorded in stack.md. Ordered so that an interrupted run has measured what decides the
# defaults first.
VARIANTS: dict[str, dict] = {
    "hf, unquantized base, length-grouped": dict(backend="hf", **CORE),
    "unsloth, unquantized base, length-grouped": dict(backend="unsloth", **CORE),
    "hf, ... padding-free batches": dict(backend="hf", **{**CORE, "batching": "padding_free"}),
    "hf, ... random padded batches": dict(backend="hf", **{**CORE, "batching": "padded"}),
    "hf, ... gradient checkpointing on": dict(
        backend="hf", **{**CORE, "gradient_checkpointing": True}
    ),
    "hf, ... 1 thread": dict(backend="hf", num_threads=1, **CORE),
    "hf, ... 4-bit NF4 base": dict(backend="hf", **{**CORE, "load_in_4bit": True}),
    "hf reference (4-bit, padded)": dict(
        backend="hf", load_in_4bit=True, gradient_checkpointing=False, batching="padded"
    ),
    "unsloth reference (4-bit, unsloth checkpointing, padded)": dict(
        backend="unsloth", load_in_4bit=True, gradient_checkpointing=True, batching="padded"
    ),
    "hf, ... bf16 compute": dict(backend="hf", compute_dtype="bfloat16", **CORE),
    "hf, ... fp32 compute": dict(backend="hf", compute_dtype="float32", **CORE),
    # On CPU the default attention is grouped eager up to 416 tokens per batch and SDPA
    # beyond (radreport/llm/grouped_attention.py); these force one kernel for every batch.
    "hf, ... SDPA attention": dict(backend="hf", attention="sdpa", **CORE),
    "hf, ... eager attention": dict(backend="hf", attention="eager", **CORE),
    # The default runs plain LoRA layers as one fused function (radreport.llm.fused_lora).
    "hf, ... PEFT's LoRA forward": dict(backend="hf", fused_lora=False, **CORE),
    # The default runs RMSNorm, the MLP's SiLU-gated product and the head's softmax
    # cross-entropy as compiled kernels (radreport.llm.fused_rms_norm, fused_swiglu,
    # chunked_head_loss).
    "hf, ... PyTorch's RMSNorm, MLP and head loss": dict(
        backend="hf", fused_elementwise=False, **CORE
    ),
    # The default rounds padded batches up to 16 tokens on CPU, so product shapes repeat.
    "hf, ... lengths not rounded": dict(backend="hf", pad_to_multiple_of=1, **CORE),
}
# Emulated bf16 is so slow on a CPU without AVX512-BF16/AMX that it gets one timed step.
SHORT_ON_EMULATED_BF16 = {"hf, ... bf16 compute"}
COMPARED = [
    ("unsloth reference (4-bit, unsloth checkpointing, padded)", "hf reference (4-bit, padded)"),
    ("unsloth, unquantized base, length-grouped", "hf, unquantized base, length-grouped"),
]


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 2) -> float:
    """Best FLOP/s of a square GEMM: a ceiling for what the training matmuls can reach."""
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    out = torch.empty(size, size, dtype=dtype)
    # Warm-up at full size: oneDNN builds its AMX kernel for the shape on first use, and the
    # output's pages are faulted in once, outside the timing.
    torch.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def iu_rows(data: Path, retrieval_k: int = 0) -> list[dict]:
    """Impression -> findings pairs; with retrieval_k, each prompt also shows the k training
    pairs with the nearest impressions (never the study itself), as the IU config trains."""
    from radreport.llm.prompt_table import build_prompt_table, split_rows

    table = pd.read_csv(data).dropna(subset=["impression", "findings"])
    table = table.rename(columns={"findings": "report"}).assign(split="train")
    return split_rows(build_prompt_table(table, retrieval_k), "train")


def max_tokens(retrieval_k: int) -> int:
    """The IU X-Ray benchmark's length limit: each example adds up to 160 tokens."""
    return MAX_TOKENS + 160 * retrieval_k


def peak_dtype() -> torch.dtype:
    """The dtype whose matmuls this CPU runs fastest: bf16 where it is native, else fp32."""
    from radreport.llm.device import cpu_has_bf16

    return torch.bfloat16 if cpu_has_bf16() else torch.float32


def peak_dtype_name() -> str:
    return str(peak_dtype()).removeprefix("torch.")


class StepProbe:
    """Times every optimizer step and measures the matmul peak around it."""

    def __init__(self):
        from transformers import TrainerCallback

        probe = self
        dtype = peak_dtype()
        self.steps: list[dict] = []

        class _Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                probe._peak_before = matmul_peak(dtype)
                probe._start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                seconds = time.perf_counter() - probe._start
                peak_after = matmul_peak(dtype)
                probe.steps.append(
                    {"seconds": seconds, "peak": max(probe._peak_before, peak_after)}
                )

        self.callback = _Callback()


class TrainedBatches:
    """Real tokens, row lengths and labelled tokens of every batch the trainer trains on,
    grouped by optimizer step.

    Counted where the Trainer hands a batch to `training_step`, not in the collator: the
    collator also builds the evaluation batches (one before training) and accelerate's
    loader collates one batch ahead, so pairing collated batches with steps in order put
    each timed step beside the batch before it. The length-grouped sampler puts the
    longest batch first, so that pairing over-counted the timed tokens (until the
    nineteenth session).
    """

    def __init__(self, trainer):
        self.steps: dict[int, dict] = {}
        train_one = trainer.training_step

        def training_step(model, inputs, *args, **kwargs):
            self._record(trainer.state.global_step, inputs)
            return train_one(model, inputs, *args, **kwargs)

        trainer.training_step = training_step

    def _record(self, step: int, inputs: dict) -> None:
        step_batches = self.steps.setdefault(step, {"lengths": [], "labelled": 0, "padded": 0})
        step_batches["lengths"] += row_lengths(inputs)
        step_batches["labelled"] += int((inputs["labels"] != -100).sum())
        step_batches["padded"] += inputs["input_ids"].numel()

    def of_step(self, step: int) -> dict:
        """What optimizer step `step` (0-based) trained on, over all its accumulated batches."""
        return self.steps[step]


def row_lengths(inputs: dict) -> list[int]:
    """Real tokens of each sequence in a batch: padded rows (attention mask), packed rows
    (position ids restart at 0 for every sequence), or unpadded rows."""
    if "attention_mask" in inputs:
        return inputs["attention_mask"].sum(dim=1).tolist()
    if "position_ids" in inputs:
        starts = (inputs["position_ids"].flatten() == 0).nonzero().flatten().tolist()
        return [
            end - start
            for start, end in zip(
                starts, [*starts[1:], inputs["position_ids"].numel()], strict=True
            )
        ]
    rows, width = inputs["input_ids"].shape
    return [width] * rows


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


def model_shape(config) -> dict[str, int]:
    """Matmul parameter counts and attention width of a Llama-style config."""
    hidden = config.hidden_size
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    query = config.num_attention_heads * head_dim
    key_value = config.num_key_value_heads * head_dim
    per_layer = hidden * (2 * query + 2 * key_value) + 3 * hidden * config.intermediate_size
    return {
        "decoder_linear": config.num_hidden_layers * per_layer,
        "lm_head": config.vocab_size * hidden,
        "layers": config.num_hidden_layers,
        "attention_width": query,
    }


def step_flops(batch: dict, shape: dict, lora: int, head_on_labelled_only: bool) -> dict:
    tokens = sum(batch["lengths"])
    head_tokens = batch["labelled"] if head_on_labelled_only else tokens
    attention = (
        6 * shape["layers"] * shape["attention_width"] * sum(s * s for s in batch["lengths"])
    )
    executed = (
        4 * shape["decoder_linear"] * tokens
        + 4 * shape["lm_head"] * head_tokens
        + 6 * lora * tokens
        + attention
    )
    nominal = 6 * (shape["decoder_linear"] + shape["lm_head"]) * tokens
    return {"tokens": tokens, "executed": executed, "nominal": nominal, "attention": attention}


# Settings only the hf backend reads; unsloth brings its own attention and fused kernels.
HF_ONLY_SETTINGS = {"attention", "fused_lora", "fused_elementwise"}


def resolved_setting(settings, name: str):
    if settings.backend == "unsloth" and name in HF_ONLY_SETTINGS:
        return "n/a"
    return getattr(settings, name)


def run_variant(overrides: dict, steps: int, batch: int, data: Path, retrieval_k: int) -> dict:
    """Train one variant in this process and measure it."""
    from radreport.llm.finetune import prepare_training
    from radreport.llm.settings import LLMSettings

    settings = LLMSettings(
        max_seq_length=max_tokens(retrieval_k),
        max_steps=steps,
        per_device_batch_size=batch,
        eval_steps=10**6,
        save_steps=10**6,
        logging_steps=10**6,
        early_stopping_patience=None,
        **overrides,
    )
    rows = iu_rows(data, retrieval_k)
    with tempfile.TemporaryDirectory() as output_dir:
        run = prepare_training(rows, rows[:batch], settings, output_dir)
        probe = StepProbe()
        batches = TrainedBatches(run.trainer)
        run.trainer.add_callback(probe.callback)
        with PeakRss() as rss:
            run.trainer.train()
    shape = model_shape(run.trainer.model.config)
    lora = sum(p.numel() for p in run.trainer.model.parameters() if p.requires_grad)
    timed = []
    for index, step in enumerate(probe.steps[UNTIMED_STEPS:], start=UNTIMED_STEPS):
        trained = batches.of_step(index)
        flops = step_flops(trained, shape, lora, run.settings.backend == "hf")
        timed.append({**step, **flops, "padded_tokens": trained["padded"]})
    seconds = sum(step["seconds"] for step in timed)
    # In the order of the table's setup column.
    fields = (
        "backend",
        "load_in_4bit",
        "compute_dtype",
        "attention",
        "fused_lora",
        "fused_elementwise",
        "gradient_checkpointing",
        "batching",
        "pad_to_multiple_of",
    )
    return {
        "resolved": {
            **{name: resolved_setting(run.settings, name) for name in fields},
            "threads": torch.get_num_threads(),
        },
        "steps": timed,
        "tokens_per_s": sum(step["tokens"] for step in timed) / seconds,
        "padding": 1 - sum(s["tokens"] for s in timed) / sum(s["padded_tokens"] for s in timed),
        "peak_rss_gib": rss.peak / 2**30,
        "parameters": {**shape, "lora": lora},
    }


def epoch_padding(data: Path, batch: int, retrieval_k: int) -> dict[str, float]:
    """Padding share of one epoch under each batching strategy, from the samplers alone,
    with batch lengths rounded up to the CPU default multiple."""
    from transformers import AutoTokenizer
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from radreport.data.alpaca import build_alpaca_dataset
    from radreport.llm.base_model import resolve_base_model
    from radreport.llm.collator import padded_width
    from radreport.llm.device import CPU_PAD_TO_MULTIPLE_OF

    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model("bundled:smollm2-135m-instruct"))
    lengths = [
        len(example.input_ids)
        for example in build_alpaca_dataset(
            iu_rows(data, retrieval_k), tokenizer, max_tokens(retrieval_k)
        ).examples
    ]
    generator = torch.Generator().manual_seed(0)
    orders = {
        "padded": torch.randperm(len(lengths), generator=generator).tolist(),
        "length_grouped": list(LengthGroupedSampler(batch, lengths=lengths, generator=generator)),
    }
    shares = {}
    for name, order in orders.items():
        padded = sum(
            batch
            * padded_width(
                max(lengths[i] for i in order[start : start + batch]), CPU_PAD_TO_MULTIPLE_OF
            )
            for start in range(0, len(order), batch)
        )
        shares[name] = 1 - sum(lengths) / padded
    shares["padding_free"] = 0.0
    return shares


def run_in_subprocess(name: str, steps: int, batch: int, data: Path, retrieval_k: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        command = [sys.executable, __file__, "--child", name, "--steps", str(steps)]
        command += ["--batch", str(batch), "--data", str(data), "--child-result", result.name]
        command += ["--retrieval-k", str(retrieval_k)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return json.loads(Path(result.name).read_text())


def best_round(kept: dict | None, measured: dict) -> dict:
    """Other processes only ever slow a run down, so the fastest round is the best estimate."""
    rounds = [*(kept["rounds"] if kept else []), measured["tokens_per_s"]]
    best = measured if kept is None or measured["tokens_per_s"] > kept["tokens_per_s"] else kept
    return {**best, "rounds": rounds}


def efficiency(result: dict) -> float:
    """Median over timed steps of executed FLOP/s / the matmul peak around that step."""
    return statistics.median(
        step["executed"] / step["seconds"] / step["peak"] for step in result["steps"]
    )


def table(results: dict[str, dict]) -> str:
    dtype = peak_dtype_name()
    lines = [
        "| variant | backend, 4-bit, dtype, attention, fused LoRA, fused norm+MLP+head, ckpt, "
        "batching, length multiple, threads "
        "| tok/s "
        "| s/step | peak RSS GiB | padding % | nominal GFLOP/s | executed GFLOP/s "
        f"| {dtype} peak GFLOP/s (median) | executed / peak (median) | tok/s of each round |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, result in results.items():
        steps = result["steps"]
        seconds = sum(step["seconds"] for step in steps)
        setup = ", ".join(str(value) for value in result["resolved"].values())
        nominal = sum(step["nominal"] for step in steps) / seconds
        executed = sum(step["executed"] for step in steps) / seconds
        peak = statistics.median(step["peak"] for step in steps)
        lines.append(
            f"| {name} | {setup} | {result['tokens_per_s']:.0f} | {seconds / len(steps):.1f} "
            f"| {result['peak_rss_gib']:.2f} | {100 * result['padding']:.0f} "
            f"| {nominal / 1e9:.1f} | {executed / 1e9:.1f} | {peak / 1e9:.1f} "
            f"| {100 * efficiency(result):.0f} % "
            f"| {', '.join(f'{value:.0f}' for value in result['rounds'])} |"
        )
    return "\n".join(lines)


def comparison_lines(results: dict[str, dict]) -> list[str]:
    lines = []
    for unsloth, hf in COMPARED:
        if unsloth in results and hf in results:
            u, h = results[unsloth], results[hf]
            lines.append(
                f"- unsloth / hf, {unsloth} vs {hf}: tokens/s x"
                f"{u['tokens_per_s'] / h['tokens_per_s']:.2f}, peak-normalised x"
                f"{efficiency(u) / efficiency(h):.2f}, "
                f"peak RSS x{u['peak_rss_gib'] / h['peak_rss_gib']:.2f}"
            )
    return lines


def parent_peaks() -> dict[str, float]:
    """Both dtypes' matmul peaks, once. Emulated bf16 (hundreds of times slower than fp32)
    is timed on a smaller square, only to show it is no peak."""
    bf16_size = 2048 if peak_dtype() == torch.bfloat16 else 512
    return {
        "float32": matmul_peak(torch.float32, repeats=3),
        "bfloat16": matmul_peak(torch.bfloat16, size=bf16_size, repeats=3),
    }


def write_report(results, args, peaks: dict[str, float], padding: dict[str, float]) -> None:
    short = ""
    if peak_dtype() == torch.float32:
        short = f" (bf16-compute row: {UNTIMED_STEPS + 1}, one round)"
    examples = ""
    if args.retrieval_k:
        examples = f", prompts with the {args.retrieval_k} nearest training pairs"
    report = [
        "# Training throughput (benchmarks/train_throughput.py)",
        "",
        f"- command: `nice .venv/bin/python benchmarks/train_throughput.py "
        f"--steps {args.steps} --batch {args.batch} --rounds {args.rounds}"
        f"{f' --retrieval-k {args.retrieval_k}' if args.retrieval_k else ''}`",
        f"- date: {date.today().isoformat()}; machine: {cpu_name()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}",
        f"- model: bundled SmolLM2-135M-Instruct, LoRA r=16 on all linear layers; data: "
        f"{args.data.name} of IU X-Ray{examples}, <= {max_tokens(args.retrieval_k)} tokens; "
        f"{args.steps} steps of batch "
        f"{args.batch}{short}, first "
        f"{UNTIMED_STEPS} untimed; every variant runs once per round, in a fresh process, and "
        "its fastest round is shown",
        "- matmul peaks (parent process, best of 3): "
        + ", ".join(f"{name} {peak / 1e9:.1f} GFLOP/s" for name, peak in peaks.items())
        + f"; fractions are taken against the {peak_dtype_name()} "
        "peak measured around each step",
        "- padding share over one epoch: "
        + ", ".join(f"{name} {100 * share:.0f} %" for name, share in padding.items()),
        *comparison_lines(results),
        "",
        table(results),
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(report))
    args.out.with_suffix(".json").write_text(
        json.dumps({"peaks": peaks, "padding": padding, "variants": results}, indent=2)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--retrieval-k",
        type=int,
        default=0,
        help="prompts show the k nearest training pairs, as the IU config trains (k=3)",
    )
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measured = run_variant(
            VARIANTS[args.child], args.steps, args.batch, args.data, args.retrieval_k
        )
        Path(args.child_result).write_text(json.dumps(measured))
        return
    peaks = parent_peaks()
    padding = epoch_padding(args.data, args.batch, args.retrieval_k)
    print(f"matmul peaks {peaks}; epoch padding {padding}", flush=True)
    emulated_bf16 = peak_dtype() == torch.float32
    results: dict[str, dict] = {}
    for round_ in range(args.rounds):
        for name in args.variants:
            short = emulated_bf16 and name in SHORT_ON_EMULATED_BF16
            if short and round_ > 0:
                continue
            steps = UNTIMED_STEPS + 1 if short else args.steps
            measured = run_in_subprocess(name, steps, args.batch, args.data, args.retrieval_k)
            print(f"round {round_ + 1}, {name}: {measured['tokens_per_s']:.1f} tok/s", flush=True)
            results[name] = best_round(results.get(name), measured)
            # Rewritten after every variant, so an interrupted run still leaves its figures.
            write_report(results, args, peaks, padding)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
