"""A training run that fails at a step ends the command with one line naming the run, the
step and the step's error, and exit status 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml
from zenml.client import Client

REPO = Path(__file__).resolve().parents[2]


def test_train_names_the_failed_step_and_its_error_in_one_line(
    radreport_stack, tiny_llama_dir, tmp_path
):
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(
        {
            "study_id": ["a", "b", "c"],
            "patient_id": ["p1", "p2", "p3"],
            "impression": ["No acute disease.", "Small effusion.", "Cardiomegaly."],
            "report": ["Lungs clear.", "Small left effusion.", "The heart is enlarged."],
        }
    ).to_csv(manifest, index=False)
    config = tmp_path / "no_val.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model_name": "radreport-no-val",
                "data": {
                    "source": "manifest",
                    "manifest": {"path": str(manifest)},
                    "split": {"train": 1.0, "val": 0.0, "test": 0.0},
                },
                "llm": {"base_model": str(tiny_llama_dir), "max_steps": 1},
            }
        )
    )
    result = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "train", "--config", str(config)],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    run = Client().get_pipeline("training_pipeline").last_run
    assert last_line == (
        f"error: ZenML run {run.name} failed at step finetune_llm: ValueError: the val split "
        "has no study: add studies or raise data.split.val"
    )
    assert run.steps["ingest_studies"].status.value == "completed"
