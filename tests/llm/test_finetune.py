"""A tiny fine-tuning run per backend: validation loss measured before and after, adapter saved."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from radreport.llm.finetune import finetune
from radreport.llm.settings import LLMSettings
from tests.llm.tiny_training import ROWS, tiny_settings

WORKER = Path(__file__).with_name("finetune_worker.py")


def assert_adapter_directory(adapter_dir: Path) -> None:
    names = {path.name for path in adapter_dir.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json"} <= names
    assert not [name for name in names if name.endswith((".bin", ".pt", ".pth"))], names


def test_hf_backend_trains_and_lowers_validation_loss(tiny_llama_dir, tmp_path):
    settings = LLMSettings(**tiny_settings(tiny_llama_dir, eval_samples=2))
    streamed = []
    result = finetune(
        ROWS,
        ROWS[:4],
        settings,
        tmp_path / "run",
        report_to=[],
        on_samples=lambda step, rows: streamed.append((step, rows)),
    )

    assert_adapter_directory(result.adapter_dir)
    assert result.resumed_from_step is None
    assert result.metrics["train_steps"] == 4
    assert result.metrics["eval_loss"] < result.metrics["eval_loss_before_training"]
    evaluated_at = [entry["step"] for entry in result.log_history if "eval_loss" in entry]
    assert evaluated_at[:3] == [0, 2, 4]
    assert {"mean_token_accuracy", "entropy"} <= {
        key for entry in result.log_history for key in entry
    }
    # Sample generations: the first 2 validation rows at every evaluation, the final
    # evaluate() of step 4 not repeated.
    assert [step for step, _ in streamed] == [0, 2, 4]
    assert result.samples == [row for _, rows in streamed for row in rows]
    assert [row["impression"] for row in result.samples[:2]] == [
        row["impression"] for row in ROWS[:2]
    ]
    assert all(isinstance(row["generated"], str) for row in result.samples)
    assert result.samples[0]["reference"] == ROWS[0]["report"]


def test_unsloth_backend_trains_and_lowers_validation_loss(tiny_llama_dir, tmp_path):
    # Its own process: importing unsloth patches transformers for everything run after it.
    job = tmp_path / "job.json"
    job.write_text(
        json.dumps(
            {
                "rows": ROWS,
                "output_dir": str(tmp_path / "run"),
                "settings": tiny_settings(tiny_llama_dir, backend="unsloth"),
            }
        )
    )
    completed = subprocess.run(
        [sys.executable, str(WORKER), str(job)], capture_output=True, text=True, check=True
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])

    assert_adapter_directory(Path(result["adapter_dir"]))
    assert result["metrics"]["eval_loss"] < result["metrics"]["eval_loss_before_training"]
    # The worker imports radreport.llm.finetune first, as the CLI does: unsloth must still
    # load before transformers, or it warns that training may be slower.
    assert "Unsloth should be imported before" not in completed.stderr
    # Run again, the run is restored from its last checkpoint, not trained on.
    weights = (Path(result["adapter_dir"]) / "adapter_model.safetensors").read_bytes()
    again = subprocess.run(
        [sys.executable, str(WORKER), str(job)], capture_output=True, text=True, check=True
    )
    rerun = json.loads(again.stdout.strip().splitlines()[-1])
    assert rerun["metrics"]["train_steps"] == result["metrics"]["train_steps"]
    assert rerun["metrics"]["eval_loss"] == pytest.approx(result["metrics"]["eval_loss"])
    assert (Path(rerun["adapter_dir"]) / "adapter_model.safetensors").read_bytes() == weights


def test_importing_finetune_leaves_transformers_unloaded():
    # So a training process can import the backend (unsloth patches transformers) after it.
    code = (
        "import sys, radreport.llm.finetune; "
        "print([m for m in ('transformers', 'peft', 'trl', 'unsloth') if m in sys.modules])"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip().splitlines()[-1] == "[]"


def test_the_training_loss_is_logged_at_every_evaluation_and_the_last_step(
    tiny_llama_dir, tmp_path
):
    """logging_steps beyond the run: before, nothing was logged and train_loss was NaN."""
    fields = tiny_settings(tiny_llama_dir, max_steps=3, logging_steps=100)  # eval_steps 2
    result = finetune(ROWS, ROWS[:4], LLMSettings(**fields), tmp_path / "run")
    logged = {entry["step"]: entry["loss"] for entry in result.log_history if "loss" in entry}
    assert list(logged) == [2, 3]
    # Each logged loss is the mean over the steps since the one before: 2 steps, then 1.
    assert result.metrics["train_loss"] == pytest.approx((2 * logged[2] + logged[3]) / 3)
    assert result.metrics["train_loss_last"] == logged[3]


def test_the_validation_loss_does_not_depend_on_the_evaluation_batch_size(tiny_llama_dir, tmp_path):
    """Four validation rows of different lengths, the same untrained model: batches of 4
    and of 1 must give the same loss per labelled token."""
    losses = []
    for batch in (4, 1):
        fields = tiny_settings(
            tiny_llama_dir,
            compute_dtype="float32",
            batching="padded",
            per_device_batch_size=batch,
            max_steps=1,
            learning_rate=1e-9,
        )
        result = finetune(ROWS, ROWS[:4], LLMSettings(**fields), tmp_path / f"batch{batch}")
        losses.append(result.metrics["eval_loss_before_training"])
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)


@pytest.mark.parametrize("scheduler", ["cosine", "linear"])
def test_a_one_step_run_with_warmup_trains(tiny_llama_dir, tmp_path, scheduler):
    """transformers' warmup covered the only step, taken at learning rate 0: the adapter
    stored was the untrained one (every LoRA B matrix still zero)."""
    from safetensors.torch import load_file

    fields = tiny_settings(tiny_llama_dir, max_steps=1, warmup_ratio=0.05, lr_scheduler=scheduler)
    result = finetune(ROWS, ROWS[:4], LLMSettings(**fields), tmp_path / "run", report_to=[])
    weights = load_file(result.adapter_dir / "adapter_model.safetensors")
    lora_b = [tensor for name, tensor in weights.items() if "lora_B" in name]
    assert lora_b and any(bool(tensor.abs().sum() > 0) for tensor in lora_b)


def test_every_steps_learning_rate_is_recorded_and_agrees_with_the_logged_ones(
    tiny_llama_dir, tmp_path
):
    """The trainer logs the rate every logging_steps: 3 here, which would hide the warmup."""
    fields = tiny_settings(
        tiny_llama_dir, max_steps=8, warmup_ratio=0.25, lr_scheduler="linear", logging_steps=3
    )
    result = finetune(ROWS, ROWS[:4], LLMSettings(**fields), tmp_path / "run", report_to=[])
    steps = [step for step, _ in result.learning_rates]
    rates = [rate for _, rate in result.learning_rates]
    assert steps == list(range(1, 9))
    # Two warmup steps from 0, the full rate at step 3, then linearly down to the last step.
    assert rates[:3] == pytest.approx([0.0, 2.5e-3, 5e-3])
    assert rates[2:] == pytest.approx([5e-3 * (8 - s) / 6 for s in range(2, 8)])
    # The trainer's own logged rates are the same, at the steps it logged.
    logged = {e["step"]: e["learning_rate"] for e in result.log_history if "learning_rate" in e}
    assert len(logged) >= 3
    assert all(rates[step - 1] == pytest.approx(rate) for step, rate in logged.items())


def test_a_constant_schedule_with_warmup_says_the_warmup_is_ignored(tmp_path, caplog):
    from radreport.llm.sft_config import build_sft_config

    settings = LLMSettings(lr_scheduler="constant", warmup_ratio=0.1, compute_dtype="float32")
    with caplog.at_level("WARNING", logger="radreport.llm.sft_config"):
        build_sft_config(settings, tmp_path, report_to=[], eval_on_start=False)
    assert "warmup_ratio 0.1 is ignored" in caplog.text


def test_neftune_noise_reaches_training_steps_not_evaluation(tiny_llama_dir, tmp_path):
    """The same seed and data with and without NEFTune: the validation loss before training
    is the same (no noise at evaluation), the trained adapter is not (noise in training)."""
    from safetensors.torch import load_file

    runs = {}
    for name, alpha in (("plain", None), ("neftune", 50.0)):
        fields = tiny_settings(tiny_llama_dir, max_steps=2, neftune_noise_alpha=alpha)
        runs[name] = finetune(ROWS, ROWS[:4], LLMSettings(**fields), tmp_path / name, report_to=[])
    before = {name: run.metrics["eval_loss_before_training"] for name, run in runs.items()}
    assert before["neftune"] == pytest.approx(before["plain"], rel=1e-6)
    plain, noisy = (
        load_file(runs[name].adapter_dir / "adapter_model.safetensors") for name in runs
    )
    assert plain.keys() == noisy.keys()
    assert any(not torch.equal(plain[key], noisy[key]) for key in plain)


def test_neftune_alpha_must_be_positive():
    with pytest.raises(ValueError, match="neftune_noise_alpha"):
        LLMSettings(neftune_noise_alpha=0)
