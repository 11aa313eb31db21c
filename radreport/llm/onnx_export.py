"""A model (with its LoRA adapter merged) exported for ONNX Runtime GenAI, cached by content.

ONNX Runtime's CPU kernels stream a decode step's weights far closer to the memory bandwidth
than PyTorch's eager ops on CPU (benchmarks/results/generation.md), so CPU serving and
evaluation can decode through it (`LLMSettings.decoder: onnxruntime`). The export is
onnxruntime-genai's own model builder, run as its command-line tool: fused QKV and
gate/up projections, grouped-query attention with a KV buffer shared across steps.

The exported folder is keyed by the content of the model and adapter files and the builder's
version, so the same model is exported once and a changed adapter never reuses a stale
export. The files' digests are remembered by their status (radreport.llm.file_digests), so
a start with unchanged files reads none of their bytes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import torch

from radreport.llm.base_model import local_model_type
from radreport.llm.bundled import cache_dir
from radreport.llm.decoder_support import DecoderUnavailable, decoder_problem
from radreport.llm.file_digests import FileDigests, shared_file_digests
from radreport.llm.merge import export_merged

# fp32 weights: the exported model then decodes the same tokens as the fp32 PyTorch model
# (tests/llm/test_onnx_generate.py); lower precisions would trade that for speed.
PRECISION = "fp32"
_BUILDER_MODULE = "onnxruntime_genai.models.builder"
_HASHED_SUFFIXES = (".json", ".safetensors", ".model", ".txt", ".jinja")
_COMPLETE_MARKER = "genai_config.json"
_DIGESTS_FILE = "file_digests.sqlite3"  # in an exports root given by the caller


class OnnxExportError(RuntimeError):
    """The ONNX Runtime GenAI model builder could not export a model."""


def onnx_model_dir(
    model_dir: str | Path,
    adapter_dir: str | Path | None = None,
    cache_root: str | Path | None = None,
) -> Path:
    """The ONNX Runtime GenAI folder for `model_dir` (+ `adapter_dir`), exported if missing.

    `model_dir` is a local model folder or a hub id (downloaded by the builder, for users
    with network). Exports live under `<cache>/onnx/<content key>`.
    """
    problem = decoder_problem("onnxruntime", local_model_type(str(model_dir)))
    if problem:
        raise DecoderUnavailable(problem)
    root = Path(cache_root) if cache_root is not None else _default_root()
    digests = shared_file_digests() if cache_root is None else FileDigests(root / _DIGESTS_FILE)
    target = root / export_key(model_dir, adapter_dir, digests)
    if (target / _COMPLETE_MARKER).is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed into place: a crash leaves no half-written export
    # that a later run would take for a complete one.
    with tempfile.TemporaryDirectory(dir=root, prefix=".building-") as scratch:
        scratch = Path(scratch)
        source = model_dir
        if adapter_dir is not None:
            source = export_merged(model_dir, adapter_dir, scratch / "merged", torch.float32)
        built = scratch / "onnx"
        named = f"{model_dir} with its adapter" if adapter_dir is not None else str(model_dir)
        _run_builder(source, built, scratch / "hf-cache", named)
        try:
            os.rename(built, target)
        except OSError:
            # Another process finished the same export first: theirs is identical.
            if not (target / _COMPLETE_MARKER).is_file():
                raise
    return target


def _default_root() -> Path:
    return cache_dir() / "onnx"


def export_key(
    model_dir: str | Path, adapter_dir: str | Path | None, digests: FileDigests | None = None
) -> str:
    """Hex digest of the builder version, precision and the model and adapter files' names
    and contents (their SHA-256, from `digests`; default: the default exports' record)."""
    digests = digests or shared_file_digests()
    digest = hashlib.sha256()
    digest.update(f"onnxruntime-genai {version('onnxruntime-genai')} {PRECISION}".encode())
    _hash_source(digest, model_dir, digests)
    if adapter_dir is not None:
        digest.update(b"adapter")
        _hash_source(digest, adapter_dir, digests)
    return digest.hexdigest()[:24]


def _hash_source(digest, source: str | Path, digests: FileDigests) -> None:
    folder = Path(source)
    if not folder.is_dir():
        digest.update(f"hub:{source}".encode())  # a hub id: its name is all we know offline
        return
    files = sorted(
        path for path in folder.iterdir() if path.is_file() and path.suffix in _HASHED_SUFFIXES
    )
    if not files:
        raise FileNotFoundError(f"No model files (config, safetensors) in {folder}")
    for path in files:
        digest.update(path.name.encode())
        digest.update(digests.sha256(path).encode())


def _run_builder(source: str | Path, output: Path, hf_cache: Path, named: str) -> None:
    """Export `source` (a folder or hub id) into `output`; `named` is the model as the
    user knows it (`source` may be a temporary merged copy), for the error."""
    local = Path(source).is_dir()
    command = [
        sys.executable,
        "-m",
        _BUILDER_MODULE,
        *(["-i", str(source)] if local else ["-m", str(source)]),
        "-o",
        str(output),
        "-p",
        PRECISION,
        "-e",
        "cpu",
        "-c",
        str(hf_cache),
    ]
    if local:
        command += ["--extra_options", "hf_token=false"]  # never ask the hub for a local model
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not (output / _COMPLETE_MARKER).is_file():
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {result.returncode}"
        raise OnnxExportError(f"ONNX export of {named} failed: {reason}")
    shutil.rmtree(hf_cache, ignore_errors=True)
