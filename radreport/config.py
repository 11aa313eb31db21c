"""The root config of a run: one YAML file per hardware target in configs/.

Each area owns the settings of its section (radreport.data.settings,
radreport.llm.settings, radreport.metrics.settings); this model composes them
and rejects unknown keys anywhere, so a typo never silently falls back to a
default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from radreport.config_loading import load_yaml_model
from radreport.data.settings import DataSettings
from radreport.llm.settings import LLMSettings
from radreport.metrics.settings import EvaluationSettings


class DataSourceSettings(DataSettings):
    """Which studies a run uses: the bundled synthetic CT demo or a manifest of your own."""

    source: Literal["synthetic", "manifest"] = "synthetic"


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(description="ZenML model whose versions this run creates")
    description: str = ""
    data: DataSourceSettings = Field(default_factory=DataSourceSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)


def load_run_config(path: str | Path) -> RunConfig:
    """Load and validate; raises ConfigError with a one-line message."""
    return load_yaml_model(path, RunConfig)
