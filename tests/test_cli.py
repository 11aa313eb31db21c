import json
import subprocess
import sys
from pathlib import Path

import pytest

from radreport.config import load_run_config
from radreport.config_loading import ConfigError

REPO = Path(__file__).resolve().parents[1]
HEAVY_MODULES = ("torch", "transformers", "unsloth", "zenml", "mlflow", "pandas")
SUBCOMMANDS = ("setup", "demo", "data", "baselines", "train", "generate", "evaluate")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "run.py"), *args], capture_output=True, text=True, cwd=REPO
    )


def test_help_lists_every_subcommand_without_heavy_imports():
    result = run_cli("--help")
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert f"  {name} " in result.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import run, sys; print([m for m in {HEAVY_MODULES!r} if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert probe.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["demo", "iu_xray", "llama3_8b_single_gpu"])
def test_shipped_configs_validate(name):
    config = load_run_config(REPO / "configs" / f"{name}.yaml")
    assert config.model_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model_name: x\nllm:\n  lora_rank: 8\n", "llm.lora_rank: unknown key"),
        ("model_name: x\nllm:\n  lora_r: eight\n", "llm.lora_r:"),
        ("model_name: x\ndata:\n  dicom:\n    workers: -1\n", "data.dicom.workers:"),
        ("llm: {}\n", "model_name: required key is missing"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_run_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and expected in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model_name: x\nunknown_section: 1\n", "unknown_section: unknown key"),
        (None, "config file not found"),
    ],
)
def test_cli_exits_2_with_one_line_on_bad_config(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    if text is not None:
        path.write_text(text)
    result = run_cli("data", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert expected in result.stderr and "Traceback" not in result.stderr


def write_manifest(folder: Path, rows: list[str]) -> Path:
    manifest = folder / "manifest.csv"
    manifest.write_text("study_id,patient_id,impression,report,dicom_dir\n" + "\n".join(rows))
    return manifest


def test_data_manifest_quarantines_broken_files_and_writes_report(tmp_path):
    broken = tmp_path / "study1"
    broken.mkdir()
    (broken / "empty.dcm").write_bytes(b"")
    (broken / "notes.dcm").write_text("not a DICOM file")
    manifest = write_manifest(
        tmp_path,
        [
            "s1,p1,Small effusion.,Small right pleural effusion.,study1",
            "s2,p2,Normal.,,",
        ],
    )
    out = tmp_path / "report"
    result = run_cli("data", "--manifest", str(manifest), "--out", str(out))
    assert result.returncode == 0, result.stderr
    quarantine = (out / "quarantine.csv").read_text().splitlines()
    assert quarantine[0] == "path,study_id,series_uid,reason_code,message"
    assert len(quarantine) >= 3  # two broken files and the row without a report
    summary = json.loads((out / "summary.json").read_text())
    assert summary["studies_in"] == 2 and summary["studies_accepted"] == 1


def test_data_manifest_with_nothing_usable_exits_1_with_one_line(tmp_path):
    manifest = write_manifest(tmp_path, ["s1,p1,Normal.,,", "s1,p1,Normal.,Clear lungs.,"])
    result = run_cli("data", "--manifest", str(manifest))
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: ") and result.stderr.strip().count("\n") == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"study_id,impression\na,caf\xe9\n", "not UTF-8 text"),
        (b"id,text\na,b\n", "missing column 'study_id'"),
    ],
)
def test_evaluate_refuses_an_unreadable_reports_csv_before_loading_a_model(
    tmp_path, content, expected
):
    reports = tmp_path / "reports.csv"
    reports.write_bytes(content)
    result = run_cli("evaluate", "--reports", str(reports), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
