"""Every test session gets its own ZenML store, MLflow database and radreport cache.

Set before anything imports ZenML: ZENML_CONFIG_PATH moves the global config,
the SQLite store and the local artifact store (which holds the MLflow DB), so
tests never touch the user's runs. The folder is removed when every test passed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from radreport.llm.bundled import cache_dir

ZENML_TEST_HOME = Path(tempfile.mkdtemp(prefix="radreport-zenml-tests-"))
os.environ["ZENML_CONFIG_PATH"] = str(ZENML_TEST_HOME / "config")
os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
os.environ["ZENML_LOGGING_VERBOSITY"] = "WARN"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Checkpoints, hand-off folders, ONNX exports and compiled kernels go to the session's own
# cache, not among the user's runs. A training run started again with the same settings and
# data restores the finished run it finds there instead of training: today's tests train
# tiny models kept in per-session folders, whose paths make every session's runs differ, but
# a test with a fixed model would otherwise train only on a fresh machine. The bundled
# model's converted folder (about 20 s to make, the same for every session) is shared.
_USER_CACHE_DIR = cache_dir()
TEST_CACHE_DIR = ZENML_TEST_HOME / "radreport-cache"
TEST_CACHE_DIR.mkdir()
(_USER_CACHE_DIR / "models").mkdir(parents=True, exist_ok=True)
(TEST_CACHE_DIR / "models").symlink_to(_USER_CACHE_DIR / "models", target_is_directory=True)
os.environ["RADREPORT_CACHE_DIR"] = str(TEST_CACHE_DIR)

REPO_ROOT = Path(__file__).resolve().parents[1]

# The checkout's ZenML repository config records the active project and stack by id. The
# tests' store activates its own, which the developer's store does not have: left there, the
# next command in the developer's store would warn that they are gone and fall back to the
# default stack. So the config is put back as it was when the tests end.
REPOSITORY_DIR = REPO_ROOT / ".zen"
REPOSITORY_CONFIG = REPOSITORY_DIR / "config.yaml"
_REPOSITORY_DIR_EXISTED = REPOSITORY_DIR.is_dir()
_REPOSITORY_CONFIG_BEFORE = REPOSITORY_CONFIG.read_bytes() if REPOSITORY_CONFIG.is_file() else None


def pytest_sessionfinish(session, exitstatus):
    if _REPOSITORY_CONFIG_BEFORE is not None:
        REPOSITORY_CONFIG.write_bytes(_REPOSITORY_CONFIG_BEFORE)
    elif not _REPOSITORY_DIR_EXISTED:
        shutil.rmtree(REPOSITORY_DIR, ignore_errors=True)
    else:
        REPOSITORY_CONFIG.unlink(missing_ok=True)
    # Kept after a failure, to look into (its path is in the failing test's ZenML logs).
    if exitstatus == 0:
        shutil.rmtree(ZENML_TEST_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def radreport_stack() -> str:
    """The project's stack, set up once in the isolated store."""
    from pipelines.stack import STACK_NAME, ensure_stack

    ensure_stack()
    return STACK_NAME


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A 2-layer random Llama with the bundled SmolLM2 tokenizer (tests.llm.tiny_llama)."""
    from tests.llm.tiny_llama import save_tiny_llama

    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_adapter_dir(tiny_llama_dir, tmp_path_factory) -> Path:
    """A LoRA adapter on tiny_llama_dir whose B matrices are non-zero: it changes what the
    model says."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"])
    peft_model = get_peft_model(model, lora)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:  # peft initialises B to zero: a no-op adapter
                parameter.normal_(std=0.5)
    folder = tmp_path_factory.mktemp("adapter")
    peft_model.save_pretrained(folder)
    return folder
