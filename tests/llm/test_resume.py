"""Checkpoint and resume: a killed run goes on from its last checkpoint; a changed one restarts."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import TrainerCallback

from radreport.llm.finetune import finetune
from radreport.llm.resume import (
    FINGERPRINT_FILE,
    checkpoint_dirs,
    checkpoint_step,
    prepare_output_dir,
    run_fingerprint,
)
from radreport.llm.settings import LLMSettings
from tests.llm.tiny_training import ROWS, tiny_settings

WORKER = Path(__file__).with_name("finetune_worker.py")
MAX_STEPS = 12


class StepRecorder(TrainerCallback):
    def __init__(self):
        self.steps: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def run_folders(output_dir: Path) -> list[Path]:
    """The runs' own folders under a finetune output_dir (radreport.llm.run_folder)."""
    return (
        sorted(path for path in output_dir.iterdir() if path.is_dir())
        if output_dir.is_dir()
        else []
    )


def wait_for_checkpoint(output_dir: Path, process: subprocess.Popen, timeout_s: float) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for folder in run_folders(output_dir):
            if checkpoint_dirs(folder):
                return checkpoint_dirs(folder)[-1]
        assert process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(0.05)
    raise TimeoutError("no checkpoint appeared")


def start_worker(tmp_path: Path, name: str, output_dir: Path, fields: dict) -> subprocess.Popen:
    job = tmp_path / f"{name}.json"
    job.write_text(json.dumps({"rows": ROWS, "output_dir": str(output_dir), "settings": fields}))
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(job)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def killable_run_fields(model_dir: Path) -> dict:
    """A MAX_STEPS run checkpointing every 2 steps, long enough to be caught mid-way."""
    return tiny_settings(
        model_dir, max_steps=MAX_STEPS, eval_steps=100, early_stopping_patience=None
    )


def worker_result(process: subprocess.Popen, output: tuple[str, str]) -> dict:
    """The result line of a finetune_worker.py run that ended with `output` (its
    communicate()), once it has ended well."""
    stdout, stderr = output
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


def test_killed_run_resumes_from_its_last_checkpoint(tiny_llama_dir, tmp_path):
    output_dir = tmp_path / "run"
    fields = killable_run_fields(tiny_llama_dir)
    process = start_worker(tmp_path, "job", output_dir, fields)
    try:
        wait_for_checkpoint(output_dir, process, timeout_s=240)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    [folder] = run_folders(output_dir)
    saved_step = checkpoint_step(checkpoint_dirs(folder)[-1])
    assert saved_step < MAX_STEPS and not (folder / "adapter").exists()

    recorder = StepRecorder()
    result = finetune(ROWS, ROWS[:4], LLMSettings(**fields), output_dir, callbacks=[recorder])

    assert result.resumed_from_step == saved_step and not result.restored
    assert recorder.steps == list(range(saved_step + 1, MAX_STEPS + 1))
    assert result.metrics["train_steps"] == MAX_STEPS
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()


@pytest.fixture
def settings() -> LLMSettings:
    return LLMSettings(base_model="org/model", early_stopping_patience=None)


def test_fingerprint_follows_config_and_data_not_generation_knobs(settings):
    base = run_fingerprint(settings, ROWS, ROWS[:4])
    assert run_fingerprint(settings, ROWS, ROWS[:4]) == base
    assert run_fingerprint(settings.model_copy(update={"lora_r": 8}), ROWS, ROWS[:4]) != base
    assert run_fingerprint(settings, ROWS[1:], ROWS[:4]) != base
    assert run_fingerprint(settings, ROWS, ROWS[:3]) != base
    generation_only = settings.model_copy(
        update={"max_new_tokens": 7, "num_beams": 4, "mbr_example_references": True}
    )
    assert run_fingerprint(generation_only, ROWS, ROWS[:4]) == base


def test_checkpointing_trains_the_same_adapter_so_a_restart_resumes_either_way(
    tiny_llama_dir, tmp_path, settings
):
    """`gradient_checkpointing: auto` depends on the memory free when a run starts, so a
    restart may decide it the other way; recomputed activations train the same weights."""
    adapters, recomputed = [], []

    class Recomputes(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            recomputed.append(model.is_gradient_checkpointing)

    for checkpointing in (False, True):
        fields = tiny_settings(tiny_llama_dir, max_steps=3, gradient_checkpointing=checkpointing)
        result = finetune(
            ROWS,
            ROWS[:4],
            LLMSettings(**fields),
            tmp_path / str(checkpointing),
            callbacks=[Recomputes()],
        )
        adapters.append(load_file(result.adapter_dir / "adapter_model.safetensors"))
    assert recomputed == [False, True]
    assert adapters[0].keys() == adapters[1].keys()
    assert all(torch.equal(adapters[0][name], adapters[1][name]) for name in adapters[0])
    recomputing = settings.model_copy(update={"gradient_checkpointing": True})
    assert run_fingerprint(recomputing, ROWS, ROWS[:4]) == run_fingerprint(settings, ROWS, ROWS[:4])


def test_fingerprint_follows_the_training_code(settings, monkeypatch):
    import radreport.llm.resume as resume

    base = run_fingerprint(settings, ROWS, ROWS[:4])
    monkeypatch.setattr(resume, "source_digest", lambda *modules: f"changed {modules}")
    assert run_fingerprint(settings, ROWS, ROWS[:4]) != base


def fake_checkpoint(output_dir: Path, step: int, complete: bool = True) -> Path:
    """A checkpoint's files as the Trainer writes them (the state file last)."""
    checkpoint = output_dir / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    save_file({"lora_A": torch.zeros(2, 2)}, checkpoint / "adapter_model.safetensors")
    for name in ("optimizer.pt", "scheduler.pt"):
        (checkpoint / name).write_bytes(b"state")
    if complete:
        (checkpoint / "trainer_state.json").write_text("{}")
    return checkpoint


def test_same_fingerprint_resumes_from_the_newest_complete_checkpoint(tmp_path):
    assert prepare_output_dir(tmp_path, "abc") is None
    fake_checkpoint(tmp_path, 2)
    fake_checkpoint(tmp_path, 10)
    fake_checkpoint(tmp_path, 12, complete=False)  # killed while saving
    assert prepare_output_dir(tmp_path, "abc") == tmp_path / "checkpoint-10"


def test_different_fingerprint_starts_fresh(tmp_path):
    prepare_output_dir(tmp_path, "abc")
    fake_checkpoint(tmp_path, 4)
    assert prepare_output_dir(tmp_path, "changed") is None
    assert list(tmp_path.glob("checkpoint-*")) == []
    assert json.loads((tmp_path / FINGERPRINT_FILE).read_text())["fingerprint"] == "changed"


@pytest.mark.parametrize(
    "damage",
    [
        lambda c: (c / "trainer_state.json").write_text(""),  # killed inside its write
        lambda c: (c / "adapter_model.safetensors").write_bytes(b"\x10\x00"),  # cut short
        lambda c: (c / "optimizer.pt").unlink(),  # would restart the schedule silently
        lambda c: (c / "scheduler.pt").write_bytes(b""),
    ],
)
def test_a_damaged_newest_checkpoint_is_removed_and_the_one_before_resumed(tmp_path, damage):
    prepare_output_dir(tmp_path, "abc")
    fake_checkpoint(tmp_path, 5)
    damage(fake_checkpoint(tmp_path, 10))
    assert prepare_output_dir(tmp_path, "abc") == tmp_path / "checkpoint-5"
    assert checkpoint_dirs(tmp_path) == [tmp_path / "checkpoint-5"]


def test_an_unreadable_fingerprint_starts_fresh_and_clears_the_last_adapter(tmp_path):
    prepare_output_dir(tmp_path, "abc")
    fake_checkpoint(tmp_path, 4)
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "stale.txt").write_text("from the run before")
    (tmp_path / FINGERPRINT_FILE).write_text("garbage{")
    assert prepare_output_dir(tmp_path, "abc") is None
    assert list(tmp_path.glob("checkpoint-*")) == [] and not (tmp_path / "adapter").exists()


class StopAt(TrainerCallback):
    """Ends training at `step`, as early stopping does."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def _adapter_weights(result) -> dict:
    return load_file(result.adapter_dir / "adapter_model.safetensors")


@pytest.mark.parametrize("stop_at", [None, 2])
def test_a_finished_run_started_again_trains_no_further(tiny_llama_dir, tmp_path, stop_at):
    """A rerun after the run ended (at max_steps or stopped early) comes when a later step
    failed, the process died before the adapter was saved, or a generation setting changed
    (not in the fingerprint): it must give the same adapter, not train on."""
    fields = tiny_settings(tiny_llama_dir, max_steps=6, early_stopping_patience=None)
    settings, output_dir = LLMSettings(**fields), tmp_path / "run"
    first = finetune(
        ROWS, ROWS[:4], settings, output_dir, callbacks=[StopAt(stop_at)] * bool(stop_at)
    )
    first_weights = _adapter_weights(first)
    shutil.rmtree(first.adapter_dir)  # as if killed before the adapter was saved

    recorder = StepRecorder()
    again = finetune(ROWS, ROWS[:4], settings, output_dir, callbacks=[recorder])

    assert recorder.steps == []
    assert again.metrics["train_steps"] == first.metrics["train_steps"] == (stop_at or 6)
    assert again.metrics["eval_loss"] == pytest.approx(first.metrics["eval_loss"])
    again_weights = _adapter_weights(again)
    assert again_weights.keys() == first_weights.keys()
    assert all(torch.equal(again_weights[k], first_weights[k]) for k in first_weights)


class FailAfterSaving(TrainerCallback):
    """Ends the run with an error right after the checkpoint of `step` is written."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError(f"failed after saving step {self.step}")


def _train_losses(result) -> dict[int, float]:
    return {entry["step"]: entry["loss"] for entry in result.log_history if "loss" in entry}


@pytest.mark.parametrize("batching", ["length_grouped", "padded"])
def test_a_run_resumed_mid_epoch_ends_with_the_uninterrupted_runs_adapter(
    tiny_llama_dir, tmp_path, batching
):
    """Same config and data, same model: the steps after a resume see the batches, dropout
    masks and learning rates the uninterrupted run saw. Length-grouped batches used to come
    in another order after a resume inside an epoch."""
    fields = tiny_settings(
        tiny_llama_dir,
        max_steps=MAX_STEPS,
        eval_steps=100,
        early_stopping_patience=None,
        batching=batching,
        lora_dropout=0.1,
    )
    settings = LLMSettings(**fields)
    uninterrupted = finetune(ROWS, ROWS[:4], settings, tmp_path / "uninterrupted")
    # 16 rows in batches of 4 make 4 steps an epoch: step 6 is inside the second epoch.
    with pytest.raises(RuntimeError, match="after saving step 6"):
        finetune(ROWS, ROWS[:4], settings, tmp_path / "resumed", callbacks=[FailAfterSaving(6)])
    resumed = finetune(ROWS, ROWS[:4], settings, tmp_path / "resumed")

    assert resumed.resumed_from_step == 6
    assert _train_losses(resumed) == _train_losses(uninterrupted)
    resumed_weights, whole_weights = _adapter_weights(resumed), _adapter_weights(uninterrupted)
    assert resumed_weights.keys() == whole_weights.keys()
    assert all(torch.equal(resumed_weights[k], whole_weights[k]) for k in whole_weights)


def test_the_same_run_started_while_it_trains_waits_and_restores_what_it_trained(
    tiny_llama_dir, tmp_path
):
    """A scheduled retraining beside the same one started by hand: the second waits for the
    first and takes its result, instead of resuming from its checkpoints while it trains."""
    output_dir = tmp_path / "model"
    fields = killable_run_fields(tiny_llama_dir)
    first = start_worker(tmp_path, "first", output_dir, fields)
    try:
        wait_for_checkpoint(output_dir, first, timeout_s=240)
        recorder = StepRecorder()
        second = finetune(ROWS, ROWS[:4], LLMSettings(**fields), output_dir, callbacks=[recorder])
    finally:
        output = first.communicate(timeout=240)
    first_result = worker_result(first, output)
    assert first_result["resumed_from_step"] is None
    assert recorder.steps == [] and second.resumed_from_step == MAX_STEPS and second.restored
    assert second.metrics["eval_loss"] == pytest.approx(first_result["metrics"]["eval_loss"])


def test_two_configs_of_one_model_train_at_once_without_touching_each_other(
    tiny_llama_dir, tmp_path
):
    output_dir = tmp_path / "model"
    fields = killable_run_fields(tiny_llama_dir)
    first = start_worker(tmp_path, "first", output_dir, fields)
    try:
        wait_for_checkpoint(output_dir, first, timeout_s=240)
        other = LLMSettings(**{**fields, "learning_rate": 1e-3, "max_steps": 4})
        other_result = finetune(ROWS, ROWS[:4], other, output_dir)
    finally:
        output = first.communicate(timeout=240)
    first_result = worker_result(first, output)
    assert first_result["metrics"]["train_steps"] == MAX_STEPS
    assert Path(first_result["adapter_dir"]).parent != other_result.adapter_dir.parent
    # Started again, the first run finds its own finished checkpoint (the other run did
    # not clear it) and restores it; the other run's folder, no longer held, is removed.
    again = finetune(ROWS, ROWS[:4], LLMSettings(**fields), output_dir)
    assert again.resumed_from_step == MAX_STEPS
    assert again.metrics["eval_loss"] == pytest.approx(first_result["metrics"]["eval_loss"])
    assert run_folders(output_dir) == [again.adapter_dir.parent]
