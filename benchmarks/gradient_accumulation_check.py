"""Gradient accumulation against the whole batch: one optimizer step, computed both ways.

With gradient accumulation a step's loss must be divided by all labelled tokens of the
step. Averaging each micro-batch's loss instead weighs the tokens of short reports more
than those of long ones. unsloth logs on CUDA that `num_items_in_batch` "could not be
counted ..., so each micro-batch loss is a mean"; this script measures whether training
is affected, on whichever device it runs.

For each backend, in fresh processes, with configs/llama3_8b_single_gpu.yaml's llm settings
(4-bit NF4 base on CUDA, LoRA r=16 on all linear layers, bf16, gradient checkpointing) on a
random-weight Llama: one optimizer step over the same reports, once as one batch and once
as accumulated micro-batches. The reports are real IU X-Ray findings spread over the range
of lengths, so the micro-batches carry different numbers of labelled tokens. Compared:
- the adapters' gradients just before the optimizer applies them (relative L2 distance
  over all of them, and the worst single tensor);
- the logged training loss;
- for scale, the gradient that averaging per micro-batch would have given, rebuilt from
  each micro-batch's contribution to the accumulated gradient.

    python benchmarks/gradient_accumulation_check.py [--shape tiny] [--batch 8]
        [--accumulation 4] [--backends unsloth hf] [--tokenizer DIR] [--data CSV] [--out DIR]

The tests assert the same equality on CPU in float32 (tests/llm/test_gradient_accumulation.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import pandas as pd
import torch
from gpu_train_throughput import (
    SHAPES,
    bundled_tokenizer_dir,
    device_name,
    talk_settings,
    versions,
    write_random_model,
)
from train_throughput import DEFAULT_DATA

REPO = Path(__file__).resolve().parents[1]


def spread_rows(data: Path, count: int) -> list[dict]:
    """`count` IU X-Ray pairs whose findings are evenly spaced in length, shortest to longest."""
    table = pd.read_csv(data).dropna(subset=["impression", "findings"])
    table = table.assign(length=table["findings"].str.len()).sort_values(["length", "study_id"])
    picks = [round(i * (len(table) - 1) / (count - 1)) for i in range(count)]
    chosen = table.iloc[picks]
    return [{"impression": row.impression, "report": row.findings} for row in chosen.itertuples()]


def one_step(backend: str, model_dir: Path, rows: list[dict], batch: int, accumulation: int):
    """Train one optimizer step in this process; the accumulated gradient and its parts."""
    from radreport.llm.finetune import import_backend

    settings = talk_settings(backend, model_dir, steps=1).model_copy(
        update={
            "per_device_batch_size": batch,
            "gradient_accumulation_steps": accumulation,
            "logging_steps": 1,
        }
    )
    import_backend(settings)  # unsloth before transformers, as in a real training process
    from transformers import TrainerCallback

    from radreport.llm.finetune import prepare_training

    def adapter_gradients(model) -> dict[str, torch.Tensor]:
        return {
            name: parameter.grad.detach().float().cpu().clone()
            for name, parameter in model.named_parameters()
            if parameter.requires_grad and parameter.grad is not None
        }

    class Snapshots(TrainerCallback):
        """The accumulated gradient after every micro-batch of the first step."""

        def __init__(self):
            self.after_each: list[dict[str, torch.Tensor]] = []

        def on_substep_end(self, args, state, control, model=None, **kwargs):
            if state.global_step == 0:
                self.after_each.append(adapter_gradients(model))

        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            if state.global_step == 0:
                self.after_each.append(adapter_gradients(model))

    snapshots = Snapshots()
    with tempfile.TemporaryDirectory() as output_dir:
        run = prepare_training(rows, rows, settings, output_dir, callbacks=[snapshots])
        # Clipping would rescale the total before the last snapshot and hide each
        # micro-batch's share (the runs recorded in BENCHMARKS.md had grad norm 0.127,
        # under the default 1.0, so it did not act there either).
        run.trainer.args.max_grad_norm = 0.0
        labelled: list[int] = []
        training_step = run.trainer.training_step

        def counting_step(model, inputs, *args, **kwargs):
            labelled.append(int((inputs["labels"][:, 1:] != -100).sum()))
            return training_step(model, inputs, *args, **kwargs)

        run.trainer.training_step = counting_step
        run.trainer.train()
    parts, before = [], None
    for after in snapshots.after_each:
        parts.append(after if before is None else {k: after[k] - before[k] for k in after})
        before = after
    loss = next(entry["loss"] for entry in run.trainer.state.log_history if "loss" in entry)
    return {
        "parts": parts,
        "labelled": labelled,
        "loss": loss,
        "settings": run.settings.model_dump(),
    }


def save_step(step: dict, path: Path) -> None:
    """Tensors as safetensors, the rest as JSON beside them (no pickles, even in scratch)."""
    from safetensors.torch import save_file

    tensors = {}  # the gradient is the sum of the parts, so only the parts are kept
    for index, part in enumerate(step["parts"]):
        tensors.update({f"part{index}/{k}": v.contiguous() for k, v in part.items()})
    save_file(tensors, path)
    meta = {key: step[key] for key in ("labelled", "loss", "settings")}
    path.with_suffix(".json").write_text(json.dumps({**meta, "parts": len(step["parts"])}))


def load_step(path: Path) -> dict:
    from safetensors.torch import load_file

    tensors = load_file(path)
    meta = json.loads(path.with_suffix(".json").read_text())

    def group(prefix: str) -> dict:
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    parts = [group(f"part{index}/") for index in range(meta.pop("parts"))]
    gradient = {k: sum(part[k] for part in parts) for k in parts[0]}
    return {**meta, "gradient": gradient, "parts": parts}


def distance(a: dict, b: dict) -> float:
    """||a - b|| / ||b|| over all tensors together."""
    difference = sum(float((a[k] - b[k]).double().pow(2).sum()) for k in b)
    return (difference / sum(float(b[k].double().pow(2).sum()) for k in b)) ** 0.5


def worst_tensor(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).norm() / b[k].norm()) for k in b if float(b[k].norm()) > 0)


def per_micro_batch_mean(parts: list[dict], labelled: list[int]) -> dict:
    """The gradient had each micro-batch's loss been its own mean, divided by the steps."""
    total, steps = sum(labelled), len(labelled)
    return {
        k: sum(
            part[k] * (total / (steps * count)) for part, count in zip(parts, labelled, strict=True)
        )
        for k in parts[0]
    }


def run_child(backend: str, batch: int, accumulation: int, args, scratch: Path) -> dict:
    result = scratch / f"{backend}_{batch}x{accumulation}.safetensors"
    log = args.out / f"gradient_accumulation_{backend}_{batch}x{accumulation}.log"
    command = [sys.executable, __file__, "--child", backend, "--child-result", str(result)]
    command += ["--child-shape", f"{batch}x{accumulation}", "--model-dir", str(args.model_dir)]
    command += ["--rows", str(scratch / "rows.json")]
    with log.open("w") as output:
        subprocess.run(command, check=True, stdout=output, stderr=subprocess.STDOUT)
    return load_step(result)


def compare(backend: str, args, scratch: Path) -> dict:
    whole = run_child(backend, args.batch * args.accumulation, 1, args, scratch)
    accumulated = run_child(backend, args.batch, args.accumulation, args, scratch)
    averaged = per_micro_batch_mean(accumulated["parts"], accumulated["labelled"])
    return {
        "backend": backend,
        "labelled_per_micro_batch": accumulated["labelled"],
        "loss_whole": whole["loss"],
        "loss_accumulated": accumulated["loss"],
        "distance": distance(accumulated["gradient"], whole["gradient"]),
        "worst_tensor": worst_tensor(accumulated["gradient"], whole["gradient"]),
        "micro_batch_mean_distance": distance(averaged, whole["gradient"]),
        "compute_dtype": accumulated["settings"]["compute_dtype"],
        "load_in_4bit": accumulated["settings"]["load_in_4bit"],
    }


def write_report(args, results: list[dict]) -> None:
    lines = [
        "# Gradient accumulation against the whole batch "
        "(benchmarks/gradient_accumulation_check.py)",
        "",
        f"- command: `python benchmarks/gradient_accumulation_check.py --shape {args.shape} "
        f"--batch {args.batch} --accumulation {args.accumulation} "
        f"--backends {' '.join(args.backends)}`",
        f"- date: {date.today().isoformat()}; device: {device_name()}; {versions()}",
        f"- one optimizer step over {args.batch * args.accumulation} IU X-Ray reports: one "
        f"batch of {args.batch * args.accumulation} against {args.accumulation} accumulated "
        f"micro-batches of {args.batch}; random {args.shape} Llama, the talk config's llm "
        "settings",
        "- distance: ||accumulated - whole|| / ||whole|| over all adapter gradients; "
        "'if averaged per micro-batch': the same for the gradient that averaging each "
        "micro-batch's loss would give",
        "",
        "| backend | dtype, 4-bit | labelled tokens per micro-batch | loss whole / accumulated "
        "| distance | worst tensor | if averaged per micro-batch |",
        "| --- | --- | --- | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['backend']} | {r['compute_dtype']}, {r['load_in_4bit']} | "
            f"{', '.join(map(str, r['labelled_per_micro_batch']))} | "
            f"{r['loss_whole']:.5f} / {r['loss_accumulated']:.5f} | {r['distance']:.2e} | "
            f"{r['worst_tensor']:.2e} | {r['micro_batch_mean_distance']:.2e} |"
        )
    (args.out / "gradient_accumulation.md").write_text("\n".join(lines) + "\n")
    (args.out / "gradient_accumulation.json").write_text(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--batch", type=int, default=2, help="micro-batch size")
    parser.add_argument("--accumulation", type=int, default=4)
    parser.add_argument("--backends", nargs="+", default=["unsloth", "hf"])
    parser.add_argument("--tokenizer", type=Path, help="default: the bundled model's folder")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model-dir", type=Path, help="where the random model is written")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-result", help=argparse.SUPPRESS)
    parser.add_argument("--child-shape", help=argparse.SUPPRESS)
    parser.add_argument("--rows", dest="rows_file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        batch, accumulation = map(int, args.child_shape.split("x"))
        rows = json.loads(args.rows_file.read_text())
        save_step(
            one_step(args.child, args.model_dir, rows, batch, accumulation), Path(args.child_result)
        )
        return

    if args.shape == "llama3-8b" and not torch.cuda.is_available():
        parser.error("the llama3-8b shape needs a CUDA GPU; the tiny shape runs anywhere")
    args.tokenizer = args.tokenizer or bundled_tokenizer_dir()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gradient_accumulation_") as scratch:
        scratch = Path(scratch)
        args.model_dir = args.model_dir or scratch / "model"
        if not (args.model_dir / "config.json").exists():
            write_random_model(args.model_dir, args.shape, args.tokenizer, seed=0)
        rows = spread_rows(args.data, args.batch * args.accumulation)
        (scratch / "rows.json").write_text(json.dumps(rows))
        results = []
        for backend in args.backends:
            results.append(compare(backend, args, scratch))
            write_report(args, results)
    print((args.out / "gradient_accumulation.md").read_text())


if __name__ == "__main__":
    os.environ.setdefault("UNSLOTH_DISABLE_STATISTICS", "1")
    main()
