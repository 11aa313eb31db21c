import json
import os
import sqlite3
import subprocess
import sys

from zenml.client import Client
from zenml.enums import StackComponentType

from pipelines.stack import (
    REGISTRY_NAME,
    REPOSITORY_ROOT,
    STACK_NAME,
    TRACKER_NAME,
    ensure_stack,
)


def test_setup_is_idempotent_and_registers_mlflow_components(radreport_stack):
    assert ensure_stack() == []
    stack = Client().active_stack_model
    assert stack.name == STACK_NAME
    tracker = stack.components[StackComponentType.EXPERIMENT_TRACKER][0]
    registry = stack.components[StackComponentType.MODEL_REGISTRY][0]
    assert (tracker.name, tracker.flavor_name) == (TRACKER_NAME, "mlflow")
    assert (registry.name, registry.flavor_name) == (REGISTRY_NAME, "mlflow")


def run_twice_at_once(tmp_path, *arguments: str) -> list[str]:
    """`run.py ARGUMENTS` in two processes started together on a new ZenML store; both
    must succeed. Their outputs (stdout and stderr)."""
    environment = {
        **os.environ,
        "ZENML_CONFIG_PATH": str(tmp_path / "zenml"),
        "RADREPORT_CACHE_DIR": str(tmp_path / "cache"),
    }
    runs = [
        subprocess.Popen(
            [sys.executable, str(REPOSITORY_ROOT / "run.py"), *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPOSITORY_ROOT,
            env=environment,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    return outputs


def test_two_setups_at_once_on_a_new_store_both_succeed_and_register_the_stack_once(tmp_path):
    """The second used to fail creating the store's tables the first was creating."""
    outputs = run_twice_at_once(tmp_path, "setup")
    assert sum(f"created stack '{STACK_NAME}'" in output for output in outputs) == 1
    assert ".radreport.lock" not in os.listdir(tmp_path / "zenml")
    [mlflow_database] = (tmp_path / "zenml").glob("local_stores/*/mlflow.db")
    tables = sqlite3.connect(mlflow_database).execute("SELECT name FROM sqlite_master")
    assert {"experiments", "runs", "registered_models"} <= {name for (name,) in tables}


def test_two_data_runs_at_once_on_a_new_store_both_complete(tmp_path, tiny_llama_dir):
    """Two scheduled runs on a fresh machine: the second failed at its first step, its
    tracker creating the MLflow database the first's was creating."""
    config = {
        "model_name": "radreport-two-at-once",
        "data": {
            "source": "synthetic",
            "synthetic": {
                "out_dir": str(tmp_path / "studies"),
                "n_studies": 6,
                "min_slices": 4,
                "max_slices": 4,
                "size": 32,
                "workers": 1,
            },
            "dicom": {"depth": 4, "height": 16, "width": 16, "min_slices": 4, "workers": 1},
        },
        "llm": {"base_model": str(tiny_llama_dir)},
    }
    (tmp_path / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    outputs = run_twice_at_once(tmp_path, "data", "--config", str(tmp_path / "config.yaml"))
    assert all("(completed)" in output for output in outputs), outputs


def test_a_configuration_folder_that_cannot_be_locked_is_checked_unlocked(
    radreport_stack, monkeypatch, caplog
):
    """A read-only ZenML configuration (set up beforehand) served runs before the lock."""
    import errno

    from pipelines import stack

    def read_only(folder, on_wait):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(stack, "FolderLock", read_only)
    with caplog.at_level("WARNING", logger="pipelines.stack"):
        assert ensure_stack() == []
    assert "cannot lock it (Read-only file system)" in caplog.text
