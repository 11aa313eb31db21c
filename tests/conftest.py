"""Every test session gets its own ZenML store and MLflow database.

Set before anything imports ZenML: ZENML_CONFIG_PATH moves the global config,
the SQLite store and the local artifact store (which holds the MLflow DB), so
tests never touch the user's runs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ZENML_TEST_HOME = Path(tempfile.mkdtemp(prefix="radreport-zenml-tests-"))
os.environ["ZENML_CONFIG_PATH"] = str(ZENML_TEST_HOME / "config")
os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
os.environ["ZENML_LOGGING_VERBOSITY"] = "WARN"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def radreport_stack() -> str:
    """The project's stack, set up once in the isolated store."""
    from pipelines.stack import STACK_NAME, ensure_stack

    ensure_stack()
    return STACK_NAME
