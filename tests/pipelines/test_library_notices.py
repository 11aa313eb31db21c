"""Unactionable library notices are dropped; anything else their loggers say still shows."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from pipelines.library_notices import UNACTIONABLE, drop_unactionable_notices

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_only_the_listed_notices_are_dropped(caplog):
    drop_unactionable_notices()
    drop_unactionable_notices()  # a second call adds no second filter
    tracker = "zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker"
    assert len(logging.getLogger(tracker).filters) == 1
    with caplog.at_level(logging.WARNING):
        logging.getLogger(tracker).warning(
            "Failed to disable MLflow autologging for the following frameworks: %s.", ["fastai"]
        )
        logging.getLogger(tracker).warning(
            "Failed to disable MLflow autologging for the following frameworks: %s.",
            ["fastai", "sklearn"],
        )
        logging.getLogger("torch.utils._pytree").warning(
            "%s is an Enum subclass and is now natively supported by torch.compile as an "
            "opaque value type.",
            "<enum 'KernelPreference'>",
        )
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning(
            "Failed to load CPU gemm_4bit_forward from kernels-community: %s.", "no module"
        )
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning("something else")
    assert [record.getMessage() for record in caplog.records] == [
        "Failed to disable MLflow autologging for the following frameworks: ['fastai', 'sklearn'].",
        "something else",
    ]


def _stderr_of_importing_the_libraries(drop: bool) -> str:
    program = (
        "from pipelines.library_notices import drop_unactionable_notices\n"
        + ("drop_unactionable_notices()\n" if drop else "")
        + "import bitsandbytes, peft, torchao, zenml.integrations.mlflow.experiment_trackers\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stderr
    return result.stderr + result.stdout


def test_the_libraries_speak_at_import_and_say_none_of_them_once_dropped():
    assert "is an Enum subclass" in _stderr_of_importing_the_libraries(drop=False)
    printed = _stderr_of_importing_the_libraries(drop=True)
    for phrases in UNACTIONABLE.values():
        for phrase in phrases:
            assert phrase not in printed
