"""A hub base model is asked for before a run: cached, or the hub answers, or one line why not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _problem(spec: str, tmp_path: Path, **environment: str) -> str:
    """hub_model_problem in a fresh process: huggingface_hub reads its settings at import."""
    env = {
        **os.environ,
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_ENDPOINT": "http://127.0.0.1:9",  # nothing listens: the hub cannot be reached
        "PYTHONPATH": str(REPO),
        **environment,
    }
    code = (
        "import sys; from radreport.llm.hub_model import hub_model_problem; "
        "print(hub_model_problem(sys.argv[1]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, spec], capture_output=True, text=True, env=env, check=True
    )
    return result.stdout.strip()


def test_a_model_in_the_local_cache_needs_no_hub(tmp_path):
    snapshot = tmp_path / "hub" / "models--org--cached" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--org--cached" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--cached" / "refs" / "main").write_text("abc123")
    assert _problem("org/cached", tmp_path) == "None"


def test_an_unreachable_hub_or_offline_mode_is_said_in_one_line(tmp_path):
    cache = tmp_path / "hub"
    assert _problem("org/missing", tmp_path) == (
        f"'org/missing' is not in the Hugging Face cache ({cache}) and the hub cannot be reached "
        "(ConnectError): download it where there is network, or set it to a local folder"
    )
    assert _problem("org/missing", tmp_path, HF_HUB_OFFLINE="1") == (
        f"'org/missing' is not in the Hugging Face cache ({cache}) and HF_HUB_OFFLINE is set: "
        "download it where there is network, or set it to a local folder"
    )
    assert _problem("bundled:smollm2-135m-instruct", tmp_path) == "None"
