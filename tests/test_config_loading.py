"""The YAML loader under every config: duplicate keys, encodings, booleans for numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
import yaml
from pydantic import PositiveInt, ValidationError

from radreport.config import load_run_config
from radreport.config_loading import (
    ConfigError,
    ConfigSection,
    UniqueKeyLoader,
    load_yaml_model,
    wants_number_not_bool,
)
from tests.another_user import locked_folder, raised_as_another_user


def test_merged_keys_may_be_overridden_but_written_ones_not_repeated():
    text = "base: &base {epochs: 1, lora_r: 8}\nllm:\n  <<: *base\n  epochs: 2\n"
    assert yaml.load(text, Loader=UniqueKeyLoader)["llm"] == {"epochs": 2, "lora_r": 8}
    with pytest.raises(yaml.YAMLError, match=r"duplicate key 'a' \(in runs\.1;"):
        yaml.load("runs:\n  - {a: 1}\n  - {a: 1, a: 2}\n", Loader=UniqueKeyLoader)


def test_a_self_referencing_alias_is_checked_once():
    loaded = yaml.load("a: &a [1, *a]\n", Loader=UniqueKeyLoader)
    assert loaded["a"][1] is loaded["a"]


@pytest.mark.parametrize(
    ("annotation", "refused"),
    [
        (int, True),
        (float, True),
        (int | None, True),
        (PositiveInt | Literal["auto"], True),
        (Literal[0, 1], True),
        (bool, False),
        (bool | Literal["auto"], False),
        (str, False),
        (Path | None, False),
    ],
)
def test_booleans_are_refused_by_number_fields_only(annotation, refused):
    assert wants_number_not_bool(annotation) is refused


class Section(ConfigSection):
    steps: int = 1
    verbose: bool = False


def test_a_section_refuses_booleans_for_numbers_and_unknown_keys():
    assert Section.model_validate({"steps": 3, "verbose": True}) == Section(steps=3, verbose=True)
    with pytest.raises(ValidationError, match="Input should be a number, not true/false"):
        Section(steps=True)
    with pytest.raises(ValidationError, match="extra"):
        Section(stepz=3)


def test_an_unreadable_yaml_error_keeps_its_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("steps: 1\nverbose: [\n")
    with pytest.raises(ConfigError, match=rf"^{path}: line 3: not valid YAML \("):
        load_yaml_model(path, Section)


class Budgets(ConfigSection):
    tokens: PositiveInt | Literal["auto"] = 8
    threads: PositiveInt | None = None


class Run(ConfigSection):
    budgets: Budgets = Budgets()
    optional: Budgets | None = None


@pytest.mark.parametrize(
    ("text", "said"),
    [
        # Every arm of a union is named, not only the first one pydantic tried.
        (
            "budgets: {tokens: lots}",
            "budgets.tokens: Input should be a valid integer, unable to parse string as an "
            "integer; or should be 'auto' (got 'lots')",
        ),
        (
            "budgets: {tokens: 0}",
            "budgets.tokens: Input should be greater than 0; or should be 'auto' (got 0)",
        ),
        # An optional number, or an optional section, is not a choice of arms.
        ("budgets: {threads: 0}", "budgets.threads: Input should be greater than 0 (got 0)"),
        (
            "optional: {tokens: 0}",
            "optional.tokens: Input should be greater than 0; or should be 'auto' (got 0)",
        ),
        ("optional: {tokenz: 3}", "optional.tokenz: unknown key"),
    ],
)
def test_a_value_no_arm_of_a_union_accepts_is_said_with_every_arm(tmp_path, text, said):
    path = tmp_path / "run.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as raised:
        load_yaml_model(path, Run)
    assert str(raised.value) == f"{path}: {said}"
    path.write_text("budgets: {tokens: auto}\noptional: {tokens: 16}\n")
    loaded = load_yaml_model(path, Run)
    assert (loaded.budgets.tokens, loaded.optional.tokens) == ("auto", 16)


@pytest.mark.parametrize("name", ["a:b", "a/b", "../x", "", " demo", "radreport demo", "-x"])
def test_a_model_name_that_cannot_be_used_is_refused_in_the_validators_words(tmp_path, name):
    from radreport.config import load_run_config

    path = tmp_path / "run.yaml"
    path.write_text(f"model_name: {name!r}\n")
    with pytest.raises(ConfigError) as raised:
        load_run_config(path)
    assert str(raised.value) == (
        f"{path}: model_name: not a usable model name: up to 100 letters, digits, '.', '_' "
        "and '-', starting with a letter or digit (it is written NAME:VERSION in --model and "
        f"names a checkpoint folder) (got {name!r})"
    )
    path.write_text("model_name: radreport-demo_2.1\n")
    assert load_run_config(path).model_name == "radreport-demo_2.1"


def test_a_config_in_a_folder_the_user_cannot_enter_is_one_line(tmp_path):
    path = locked_folder(tmp_path) / "x.yaml"
    said = raised_as_another_user(lambda: load_run_config(path))
    assert said == f"ConfigError: {path}: permission denied"
