"""Base-model specs: bundled name, local folder, or hub id."""

from __future__ import annotations

import pytest

from radreport.llm import base_model
from radreport.llm.base_model import resolve_base_model


def test_bundled_spec_points_to_the_converted_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(base_model, "bundled_model_dir", lambda: tmp_path)
    assert resolve_base_model("bundled:smollm2-135m-instruct") == str(tmp_path)


def test_unknown_bundled_name_is_rejected():
    with pytest.raises(ValueError, match="smollm2-135m-instruct"):
        resolve_base_model("bundled:llama-70b")


def test_existing_folder_is_used_as_is(tmp_path):
    assert resolve_base_model(str(tmp_path)) == str(tmp_path)


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
