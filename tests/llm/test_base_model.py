"""Base-model specs: bundled name, local folder, or hub id."""

from __future__ import annotations

import json
import shutil

import pytest

from radreport.config import ConfigError, load_run_config
from radreport.llm import base_model
from radreport.llm.base_model import resolve_base_model
from tests.llm.tiny_llama import copy_as_model_type


def test_bundled_spec_points_to_the_converted_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(base_model, "bundled_model_dir", lambda: tmp_path)
    assert resolve_base_model("bundled:smollm2-135m-instruct") == str(tmp_path)


def test_unknown_bundled_name_is_rejected():
    with pytest.raises(ValueError, match="smollm2-135m-instruct"):
        resolve_base_model("bundled:llama-70b")


def test_existing_folder_is_used_as_is(tiny_llama_dir):
    assert resolve_base_model(str(tiny_llama_dir)) == str(tiny_llama_dir)


def test_anything_else_is_a_hub_id():
    hub_id = "unsloth/llama-3-8b-Instruct-bnb-4bit"
    assert resolve_base_model(hub_id) == hub_id


def test_a_missing_path_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(FileNotFoundError):
        resolve_base_model(str(tmp_path / "missing"))


@pytest.mark.parametrize("spec", ["/nonexistent/model", "./missing", "../missing", "~/missing"])
def test_check_refuses_a_missing_folder_without_resolving(spec, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        base_model.check_base_model(spec)


def test_check_accepts_hub_ids_and_the_bundled_model_without_touching_them(monkeypatch):
    def no_conversion():
        raise AssertionError("check_base_model must not convert the bundled model")

    monkeypatch.setattr(base_model, "bundled_model_dir", no_conversion)
    base_model.check_base_model("unsloth/llama-3-8b-Instruct-bnb-4bit")
    base_model.check_base_model("bundled:smollm2-135m-instruct")


def _copy_without(source, target, *names):
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*names))
    return str(target)


def test_a_folder_that_is_not_a_model_is_refused_with_what_it_lacks(tiny_llama_dir, tmp_path):
    # A LoRA adapter (no config.json; its adapter_config.json names its base).
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "b"}))
    cases = {
        str(adapter): "is a LoRA adapter, not a model: set it to the model the adapter was "
        "trained on (its adapter_config.json names 'b')",
        _copy_without(tiny_llama_dir, tmp_path / "bare", "config.json"): "has no config.json",
        _copy_without(tiny_llama_dir, tmp_path / "no-weights", "*.safetensors"): "holds no weights",
        _copy_without(
            tiny_llama_dir, tmp_path / "no-tok", "tokenizer*", "vocab.json", "merges.txt"
        ): "holds no tokenizer (tokenizer.json, tokenizer.model, or vocab.json and merges.txt)",
    }
    for folder, problem in cases.items():
        with pytest.raises(ValueError) as refused:
            base_model.check_base_model(folder)
        message = str(refused.value)
        assert message.startswith(f"Base model folder {folder!r} ") and problem in message


def test_a_missing_folder_is_its_own_error_for_a_moved_base(tmp_path):
    with pytest.raises(base_model.BaseModelMissing):
        base_model.check_base_model(str(tmp_path / "moved"))


def test_a_config_asking_a_decoder_its_base_model_cannot_use_is_refused(tiny_llama_dir, tmp_path):
    gemma = copy_as_model_type(tiny_llama_dir, tmp_path / "gemma2", "gemma2")
    for decoder, engine in (("native", "llama"), ("onnxruntime", "llama, mistral, qwen2")):
        path = tmp_path / f"{decoder}.yaml"
        path.write_text(f"model_name: x\nllm:\n  base_model: {gemma}\n  decoder: {decoder}\n")
        with pytest.raises(ConfigError) as refused:
            load_run_config(path)
        assert str(refused.value) == (
            f"{path}: llm.decoder: the {decoder} decoder runs {engine} models; this one's "
            "model_type is 'gemma2': use decoder 'torch' (or 'auto')"
        )
        path.write_text(
            f"model_name: x\nllm:\n  base_model: {tiny_llama_dir}\n  decoder: {decoder}\n"
        )
        assert load_run_config(path).llm.decoder == decoder


def test_an_architecture_transformers_does_not_know_is_named_before_training(
    tiny_llama_dir, tmp_path
):
    custom = copy_as_model_type(tiny_llama_dir, tmp_path / "custom", "radiollama")
    assert base_model.unknown_architecture(str(custom)).startswith(
        f"Base model folder '{custom}' is a 'radiollama' model, an architecture transformers "
    )
    assert base_model.unknown_architecture(str(tiny_llama_dir)) is None
    assert base_model.unknown_architecture("org/hub-model") is None
