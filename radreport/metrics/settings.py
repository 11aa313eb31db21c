"""How generated reports are evaluated: bootstrap size and seed, uncertain findings, examples."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from radreport.config_loading import ConfigSection


class EvaluationSettings(ConfigSection):
    """Settings of `evaluate_reports` and `score_baselines`; unknown keys are an error, so a
    misspelt option in a config file does not silently fall back to its default."""

    model_config = ConfigDict(frozen=True)

    bootstrap_resamples: int = Field(1000, ge=1, description="Resamples for confidence intervals.")
    seed: int = Field(0, description="Seed of the bootstrap; the same seed gives the same CIs.")
    confidence_level: float = Field(0.95, gt=0.0, lt=1.0)
    uncertain_as: Literal[0, 1] = Field(
        1, description="Whether an uncertain finding ('may represent atelectasis') is present."
    )
    n_examples: int = Field(5, ge=0, description="Best and worst reports shown in the HTML report.")
