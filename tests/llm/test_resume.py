"""Checkpoint and resume: a killed run goes on from its last checkpoint; a changed one restarts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
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


def wait_for_checkpoint(output_dir: Path, process: subprocess.Popen, timeout_s: float) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if output_dir.is_dir() and checkpoint_dirs(output_dir):
            return checkpoint_dirs(output_dir)[-1]
        assert process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(0.05)
    raise TimeoutError("no checkpoint appeared")


def test_killed_run_resumes_from_its_last_checkpoint(tiny_llama_dir, tmp_path):
    output_dir = tmp_path / "run"
    fields = tiny_settings(
        tiny_llama_dir, max_steps=MAX_STEPS, eval_steps=100, early_stopping_patience=None
    )
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"rows": ROWS, "output_dir": str(output_dir), "settings": fields}))
    process = subprocess.Popen(
        [sys.executable, str(WORKER), str(job)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_checkpoint(output_dir, process, timeout_s=240)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    saved_step = checkpoint_step(checkpoint_dirs(output_dir)[-1])
    assert saved_step < MAX_STEPS and not (output_dir / "adapter").exists()

    recorder = StepRecorder()
    result = finetune(ROWS, ROWS[:4], LLMSettings(**fields), output_dir, callbacks=[recorder])

    assert result.resumed_from_step == saved_step
    assert recorder.steps == list(range(saved_step + 1, MAX_STEPS + 1))
    assert result.metrics["train_steps"] == MAX_STEPS
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()


@pytest.fixture
def settings() -> LLMSettings:
    return LLMSettings(base_model="/models/x", early_stopping_patience=None)


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


def fake_checkpoint(output_dir: Path, step: int, complete: bool = True) -> Path:
    checkpoint = output_dir / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
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
