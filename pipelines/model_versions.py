"""Find a trained model version in ZenML's model control plane and fetch what generation
needs from it: the adapter, the LLM settings it was trained with, its training pairs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from zenml.client import Client
from zenml.enums import ModelStages

from radreport.llm.settings import LLMSettings

DEFAULT_MODEL = "radreport-demo"


class ModelVersionNotFound(LookupError):
    """No such model or version; the message is one line for the CLI."""


@dataclass(frozen=True)
class TrainedModel:
    label: str  # name:version
    adapter_dir: Path
    settings: LLMSettings
    train_pairs: pd.DataFrame  # study_id, impression, report of the train split


def load_trained_model(spec: str | None) -> TrainedModel:
    """`spec` is NAME or NAME:VERSION (version name or number); default: latest demo model."""
    name, _, version = (spec or DEFAULT_MODEL).partition(":")
    try:
        model_version = Client().get_model_version(name, version or ModelStages.LATEST)
    except KeyError:
        raise ModelVersionNotFound(
            f"no model version '{spec or DEFAULT_MODEL}': train one first (python run.py demo)"
        ) from None
    adapter = model_version.get_artifact("adapter")
    table = model_version.get_artifact("alpaca_table")
    if adapter is None or table is None:
        raise ModelVersionNotFound(f"model version {name}:{model_version.name} has no adapter")
    alpaca_table = table.load()
    train_pairs = alpaca_table[alpaca_table["split"] == "train"]
    return TrainedModel(
        label=f"{name}:{model_version.name}",
        adapter_dir=adapter.load(),
        settings=LLMSettings.model_validate(model_version.run_metadata["llm_settings"]),
        train_pairs=train_pairs[["study_id", "impression", "report"]],
    )
