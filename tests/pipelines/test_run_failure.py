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


def train_failing(config: dict, tmp_path: Path) -> tuple[str, object]:
    """`run.py train` on `config`, which must fail (exit 1): its last stderr line and the
    pipeline's last run."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "train", "--config", str(path)],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    return last_line, Client().get_pipeline("training_pipeline").last_run


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
    config = {
        "model_name": "radreport-no-val",
        "data": {
            "source": "manifest",
            "manifest": {"path": str(manifest)},
            "split": {"train": 1.0, "val": 0.0, "test": 0.0},
        },
        "llm": {"base_model": str(tiny_llama_dir), "max_steps": 1},
    }
    last_line, run = train_failing(config, tmp_path)
    assert last_line == (
        f"error: ZenML run {run.name} failed at step finetune_llm: ValueError: the val split "
        "has no study: add studies or raise data.split.val"
    )
    assert run.steps["ingest_studies"].status.value == "completed"


def test_a_run_with_no_usable_study_keeps_its_quarantine_as_an_artifact(radreport_stack, tmp_path):
    # Rows that are fine as text, but whose folders hold no DICOM, with image studies only
    # wanted: nothing is left once ingestion has read the folders, inside the run.
    rows = []
    for study in ("s-one", "s-two"):
        folder = tmp_path / study
        folder.mkdir()
        (folder / "notes.txt").write_text("not an image")
        rows.append((study, f"p-{study}", "No acute disease.", "Lungs clear.", str(folder)))
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(
        rows, columns=["study_id", "patient_id", "impression", "report", "dicom_dir"]
    ).to_csv(manifest, index=False)
    config = {
        "model_name": "radreport-nothing",
        "data": {
            "source": "manifest",
            "manifest": {"path": str(manifest)},
            "dicom": {"when_no_usable_series": "reject_study", "workers": 1},
        },
    }
    last_line, run = train_failing(config, tmp_path)
    kept = Client().get_artifact_version("quarantine")  # the latest version
    assert last_line.startswith(f"error: ZenML run {run.name} failed at step ingest_studies: ")
    assert last_line.endswith(
        f"; the rejections are kept as artifact quarantine version {kept.version}"
    )
    quarantine = kept.load()
    # Per study: the file that is not DICOM, and the study left without a usable series.
    assert len(quarantine) == 4
    assert (quarantine["reason_code"] == "not_dicom_text_file").sum() == 2
    assert quarantine["study_id"].nunique() == 2
    # De-identified like every quarantine: the manifest's study ids are not in it.
    assert not set(quarantine["study_id"]) & {"s-one", "s-two"}
