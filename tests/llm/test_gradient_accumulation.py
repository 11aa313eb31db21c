"""Gradient accumulation changes how a step is computed, not what it computes.

One optimizer step over 8 reports of different lengths, taken as one batch of 8 and as
4 accumulated micro-batches of 2, must give the same adapter gradients and the same logged
loss: the loss is divided by all labelled tokens of the step, not averaged per
micro-batch (which would weigh a short report's tokens more than a long one's).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.llm.tiny_training import FINDINGS, tiny_settings

WORKER = Path(__file__).with_name("accumulation_worker.py")
# Reports from 10 to about 60 tokens, so the micro-batches carry different numbers of
# labelled tokens.
ROWS = [
    {"impression": impression, "report": report + " The lungs are clear." * extra}
    for extra in (0, 5)
    for impression, report in FINDINGS
]


def one_step(model_dir, tmp_path, backend, batch_size, accumulation):
    name = f"{backend}_{batch_size}x{accumulation}"
    job = tmp_path / f"{name}.json"
    gradients = tmp_path / f"{name}.safetensors"
    settings = tiny_settings(
        model_dir,
        backend=backend,
        compute_dtype="float32",
        per_device_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        early_stopping_patience=None,
    )
    job.write_text(
        json.dumps(
            {
                "rows": ROWS,
                "settings": settings,
                "output_dir": str(tmp_path / name),
                "gradients": str(gradients),
            }
        )
    )
    completed = subprocess.run(
        [sys.executable, str(WORKER), str(job)], capture_output=True, text=True, check=True
    )
    loss = json.loads(completed.stdout.strip().splitlines()[-1])["loss"]
    return loss, load_file(gradients)


@pytest.mark.parametrize("backend", ["hf", "unsloth"])
def test_accumulated_step_equals_the_whole_batch(tiny_llama_dir, tmp_path, backend):
    whole_loss, whole = one_step(tiny_llama_dir, tmp_path, backend, 8, 1)
    accumulated_loss, accumulated = one_step(tiny_llama_dir, tmp_path, backend, 2, 4)

    assert whole.keys() == accumulated.keys()
    assert len(whole) == 2 * 7 * 2  # A and B of every projection of both layers
    # PEFT starts B at zero, so only B has a gradient at the first step; it must be there.
    assert any(gradient.abs().sum() > 0 for gradient in whole.values())
    for name, gradient in whole.items():
        torch.testing.assert_close(accumulated[name], gradient, rtol=1e-4, atol=1e-7, msg=name)
    assert accumulated_loss == pytest.approx(whole_loss, rel=1e-5)
