"""The root config of a run: one YAML file per hardware target in configs/.

Each area owns the settings of its section (radreport.data.settings,
radreport.llm.settings, radreport.metrics.settings); this model composes them
and rejects unknown keys anywhere, so a typo never silently falls back to a
default.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from radreport.config_loading import ConfigError, ConfigSection, load_yaml_model
from radreport.data.settings import DataSettings
from radreport.llm.base_model import check_base_model, local_model_type
from radreport.llm.decoder_support import decoder_problem
from radreport.llm.export_settings import ExportSettings
from radreport.llm.settings import LLMSettings
from radreport.metrics.settings import EvaluationSettings


class DataSourceSettings(DataSettings):
    """Which studies a run uses: the bundled synthetic CT demo or a manifest of your own."""

    source: Literal["synthetic", "manifest"] = "synthetic"

    @model_validator(mode="after")
    def _manifest_source_has_a_path(self) -> DataSourceSettings:
        if self.source == "manifest" and self.manifest.path is None:
            raise ValueError("source is 'manifest' but manifest.path is not set")
        return self


# A model name is written in `--model NAME:VERSION` and names the run's checkpoint folder:
# no colon, no path separator, nothing a shell or a file system reads otherwise.
MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class RunConfig(ConfigSection):
    model_name: str = Field(description="ZenML model whose versions this run creates")
    description: str = ""
    data: DataSourceSettings = Field(default_factory=DataSourceSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)

    @field_validator("model_name")
    @classmethod
    def _usable_model_name(cls, name: str) -> str:
        if not MODEL_NAME_PATTERN.fullmatch(name):
            raise ValueError(
                "not a usable model name: up to 100 letters, digits, '.', '_' and '-', "
                "starting with a letter or digit (it is written NAME:VERSION in --model and "
                "names a checkpoint folder)"
            )
        return name


def load_run_config(path: str | Path) -> RunConfig:
    """Load and validate; raises ConfigError with a one-line message."""
    config = load_yaml_model(path, RunConfig)
    # The folder is checked here, not in LLMSettings: settings stored with a model version
    # stay readable after the folder they were trained from is gone.
    for key, spec in (
        ("llm.base_model", config.llm.base_model),
        ("export.base_model", config.export.base_model),
    ):
        try:
            if spec is not None:
                check_base_model(spec)
        except (ValueError, FileNotFoundError) as exc:
            raise ConfigError(f"{path}: {key}: {exc}") from None
    problem = decoder_problem(config.llm.decoder, local_model_type(config.llm.base_model))
    if problem:
        raise ConfigError(f"{path}: llm.decoder: {problem}")
    return config
