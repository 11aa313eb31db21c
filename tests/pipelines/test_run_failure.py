"""A training run that fails at a step ends the command with one line naming the run, the
step and the step's error, and exit status 1."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import yaml
from zenml import pipeline, step
from zenml.client import Client
from zenml.exceptions import RunInterruptedException

REPO = Path(__file__).resolve().parents[2]


def _text_only_config(
    tmp_path: Path, model_name: str, reports: dict, split: dict, llm: dict, copies: int = 1
) -> dict:
    """A run config of a manifest of text-only studies, one patient each: every impression
    (with its report) `copies` times."""
    pairs = list(reports.items()) * copies
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(
        {
            "study_id": [f"s{i}" for i in range(len(pairs))],
            "patient_id": [f"p{i}" for i in range(len(pairs))],
            "impression": [impression for impression, _ in pairs],
            "report": [report for _, report in pairs],
        }
    ).to_csv(manifest, index=False)
    source = {"source": "manifest", "manifest": {"path": str(manifest)}, "split": split}
    return {"model_name": model_name, "data": source, "llm": llm}


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
    config = _text_only_config(
        tmp_path,
        "radreport-no-val",
        {
            "No acute disease.": "Lungs clear.",
            "Small effusion.": "Small left effusion.",
            "Cardiomegaly.": "The heart is enlarged.",
        },
        {"train": 1.0, "val": 0.0, "test": 0.0},
        {"base_model": str(tiny_llama_dir), "max_steps": 1},
    )
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


ANSI = re.compile(r"\x1b\[[0-9;]*m")


@contextmanager
def _training(config_path: Path, log: Path):
    """`run.py train` in its own process group, killed with it when the test ends however
    it ends: the run trains for far longer than any test waits."""
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "run.py"), "train", "--config", str(config_path)],
            stdout=subprocess.DEVNULL, stderr=stderr, cwd=REPO, start_new_session=True,
        )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)


def _wait_until_training(process: subprocess.Popen, log: Path, earlier: set) -> None:
    """Until a run that is not in `earlier` (run ids) is in its finetune_llm step."""
    deadline = time.monotonic() + 300
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "finetune_llm never started"
        try:
            run = Client().get_pipeline("training_pipeline").last_run
        except KeyError:  # no run yet
            run = None
        if run is not None and run.id not in earlier:
            step = run.steps.get("finetune_llm")
            if step is not None and step.status.value == "running":
                break
        time.sleep(0.5)
    time.sleep(2)  # inside the step, past ZenML's start-up of it


def _run_ids() -> set:
    try:
        return {run.id for run in Client().get_pipeline("training_pipeline").runs}
    except KeyError:
        return set()


@contextmanager
def _lock_held_by_another_process(holder: str, **env: str):
    """While `holder` (Python that takes a launch lock, prints 'held', then waits) runs in
    another process: yields the time before it started."""
    before = time.time()
    process = subprocess.Popen(
        [sys.executable, "-c", f"{holder}\nprint('held', flush=True)\ninput()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
    )  # fmt: skip
    try:
        while (line := process.stdout.readline()) != "held\n":  # ZenML may say things first
            assert line, "the holder ended"
        yield before
    finally:
        process.communicate("\n", timeout=60)


def test_a_launch_lock_is_seen_by_every_process_on_the_store_whatever_its_cache(tmp_path):
    """A process with another cache folder on the same store: its runs are live too."""
    from pipelines.orphaned_runs import _live_launch_times

    holder = "from pipelines.orphaned_runs import hold_launch_lock\nhold_launch_lock()"
    with _lock_held_by_another_process(holder, RADREPORT_CACHE_DIR=str(tmp_path)) as before:
        assert any(started >= before for started in _live_launch_times())
    assert not any(started >= before for started in _live_launch_times())


def test_a_launch_lock_an_earlier_version_holds_in_the_cache_is_seen():
    """A run of the version before an update, still going: its lock is in the cache."""
    from pipelines.orphaned_runs import CACHE_LAUNCHES, _live_launch_times
    from radreport.llm.bundled import cache_dir

    folder = cache_dir() / CACHE_LAUNCHES
    folder.mkdir(parents=True, exist_ok=True)
    holder = (
        "import os, time\n"
        "from radreport.folder_lock import try_lock\n"
        f"path = os.path.join({str(folder)!r}, f'{{time.time():.6f}}-{{os.getpid()}}.lock')\n"
        "assert try_lock(os.open(path, os.O_RDWR | os.O_CREAT, 0o644))"
    )
    with _lock_held_by_another_process(holder) as before:
        assert any(started >= before for started in _live_launch_times())
    assert not any(started >= before for started in _live_launch_times())
    assert not list(folder.glob("*.lock"))  # an ended holder's file is removed


def test_ctrl_c_says_so_in_one_line_and_a_killed_run_is_marked_failed_by_the_next(
    radreport_stack, tiny_llama_dir, tmp_path
):
    import mlflow

    from pipelines.orphaned_runs import ORPHANED, mark_orphaned_runs_failed
    from pipelines.stack import mlflow_tracking_uri

    config = _text_only_config(
        tmp_path,
        "radreport-interrupted",
        {"No acute disease.": "Lungs clear.", "Small effusion.": "Small left effusion."},
        {"train": 0.5, "val": 0.5, "test": 0.0},
        # Far more steps than the test waits for: the run is always caught training.
        {
            "base_model": str(tiny_llama_dir),
            "max_steps": 100_000,
            "eval_steps": 100_000,
            "save_steps": 100_000,
        },
        copies=4,
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))

    # Ctrl-C: one line and exit 130; ZenML marks the run failed.
    log = tmp_path / "interrupted.log"
    earlier = _run_ids()
    with _training(path, log) as process:
        _wait_until_training(process, log, earlier)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 130
    said = [line.strip() for line in ANSI.sub("", log.read_text()).splitlines()]
    # ZenML's handler raises its own exception in the step, then calls Python's, which
    # raises KeyboardInterrupt: which one is raised last differs between runs. Either way,
    # one line (a progress bar closing may write after it).
    errors = [line for line in said if line.startswith("error: ")]
    run = Client().get_pipeline("training_pipeline").last_run
    assert errors in (
        [
            "error: interrupted: the run stops here, marked failed; the same command again "
            "reuses the steps that finished and resumes training from its last checkpoint"
        ],
        [
            f"error: interrupted: ZenML run {run.name} stopped at step finetune_llm, marked "
            "failed; the same command again reuses the steps that finished and resumes "
            "training from its last checkpoint"
        ],
    )
    assert "Aborted!" not in said
    assert run.status.value == "failed"

    # SIGKILL: nothing of the process is left to say so, and the run stays running...
    log = tmp_path / "killed.log"
    earlier = _run_ids()
    with _training(path, log) as process:
        _wait_until_training(process, log, earlier)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    killed = Client().get_pipeline("training_pipeline").last_run
    assert killed.status.value == "running"
    # ... until the next command that starts a run finds no live process it can belong to.
    assert mark_orphaned_runs_failed() == [killed.name]
    again = Client().get_pipeline_run(killed.id)
    assert again.status.value == "failed" and again.body.status_reason == ORPHANED
    assert again.steps["finetune_llm"].status.value == "failed"
    mlflow.set_tracking_uri(mlflow_tracking_uri())
    [tracked] = mlflow.search_runs(
        experiment_names=["radreport-interrupted"],
        filter_string=f"attributes.run_name = '{killed.name}'",
        output_format="list",
    )
    assert tracked.info.status == "KILLED"
    assert mark_orphaned_runs_failed() == []  # once


@step(enable_cache=False)
def signalled() -> None:
    """What ZenML's signal handler raises in a step that a signal stops."""
    raise RunInterruptedException("The execution was interrupted.")


@pipeline(enable_cache=False)
def signalled_pipeline():
    signalled()


def test_a_step_a_signal_stopped_is_told_as_an_interruption(radreport_stack):
    """Where Python's own SIGINT handler does not raise KeyboardInterrupt after ZenML's
    (it did not in one of two clones here), the run fails with ZenML's exception."""
    from pipelines.run_failure import PipelineRunInterrupted, raise_if_a_step_failed

    with pytest.raises(RuntimeError) as raised:
        signalled_pipeline()
    with pytest.raises(PipelineRunInterrupted, match=" stopped at step signalled$"):
        raise_if_a_step_failed("signalled_pipeline", raised.value)
