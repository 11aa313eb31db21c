"""Find a trained model version in ZenML's model control plane and fetch what generation
needs from it: the adapter, the LLM settings it was trained with, its Alpaca table (the
training pairs retrieval searches, and the held-out splits benchmarks decode)."""

from __future__ import annotations

import atexit
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from zenml.client import Client
from zenml.enums import ModelStages

from radreport.llm.base_model_content import BASE_MODEL_CONTENT_KEY, base_model_change
from radreport.llm.settings import LLMSettings

DEFAULT_MODEL = "radreport-demo"
logger = logging.getLogger(__name__)


class ModelVersionNotFound(LookupError):
    """No such model or version; the message is one line for the CLI."""


@dataclass(frozen=True)
class TrainedModel:
    label: str  # name:version
    adapter_dir: Path
    settings: LLMSettings  # generation's: the stop bias calibrated for it, if it was
    alpaca_table: pd.DataFrame  # every split, with each study's retrieved examples

    @property
    def train_pairs(self) -> pd.DataFrame:
        """study_id, impression, report of the train split: what retrieval searches."""
        train = self.alpaca_table[self.alpaca_table["split"] == "train"]
        return train[["study_id", "impression", "report"]]


def load_trained_model(spec: str | None) -> TrainedModel:
    """`spec` is NAME or NAME:VERSION (version name or number); default: latest demo model."""
    name, colon, version = (spec or DEFAULT_MODEL).partition(":")
    if not name.strip() or (colon and not version.strip()):
        # "name:" is a typo or an unset variable, not a request for the latest version.
        raise ModelVersionNotFound(f"model '{spec}' is not NAME or NAME:VERSION")
    name, version = name.strip(), version.strip()  # "NAME:1 " from a copied line
    client = Client()
    try:
        model_version = client.get_model_version(name, version or ModelStages.LATEST)
    except KeyError:
        raise ModelVersionNotFound(_not_found(client, name, version)) from None
    if not _is_trained(model_version):
        if version:
            raise ModelVersionNotFound(f"model version {name}:{model_version.name} has no adapter")
        model_version = _newest_trained(client, name, model_version)
    label = f"{name}:{model_version.name}"
    try:
        adapter_dir = model_version.get_artifact("adapter").load()
    except FileNotFoundError as error:
        raise ModelVersionNotFound(f"model version {label}: {error}") from None
    # Outside a step ZenML leaves the loaded copy behind; this process is its only user.
    atexit.register(shutil.rmtree, adapter_dir, ignore_errors=True)
    settings = generation_settings(model_version.run_metadata)
    recorded = model_version.run_metadata.get(BASE_MODEL_CONTENT_KEY)
    change = base_model_change(recorded, settings.base_model)
    if change:
        logger.warning("model version %s: %s", label, change)
    return TrainedModel(
        label=label,
        adapter_dir=adapter_dir,
        settings=settings,
        alpaca_table=model_version.get_artifact("alpaca_table").load(),
    )


def generation_settings(metadata: dict) -> LLMSettings:
    """The settings the version was trained with, with the stop bias calibrated for it when
    its run calibrated one (steps/calibrate_stop_bias.py)."""
    settings = dict(metadata["llm_settings"])
    # Versions trained before `retrieval_match` existed were prompted with examples found by
    # words; decoding them with another retriever would show examples they never learned from.
    settings.setdefault("retrieval_match", "words")
    if "stop_bias_calibration" in metadata:
        settings["stop_logit_bias"] = metadata["stop_bias_calibration"]["chosen_bias"]
    return LLMSettings.model_validate(settings)


def _is_trained(model_version) -> bool:
    return all(model_version.get_artifact(name) for name in ("adapter", "alpaca_table"))


def _newest_trained(client: Client, name: str, latest):
    """The newest version that holds an adapter, for a request without a version: the latest
    one has none while its run is going, or after it failed or was killed."""
    versions = client.list_model_versions(model=name, sort_by="desc:number", size=100)
    for model_version in versions:
        if _is_trained(model_version):
            logger.warning(
                "model %s: the latest version, %s, has no adapter (its run failed, was "
                "stopped or is still going); using %s",
                name,
                latest.name,
                model_version.name,
            )
            return model_version
    raise ModelVersionNotFound(
        f"no version of model '{name}' holds an adapter (latest: {latest.name}; runs that "
        "failed, were stopped or are still going leave none)"
    )


def _not_found(client: Client, name: str, version: str) -> str:
    """What is missing, the model or only the version, and what there is instead."""
    try:
        client.get_model(name)
    except KeyError:
        names = sorted(model.name for model in client.list_models(size=100))
        known = f"models here: {', '.join(names)}" if names else "no models here yet"
        return f"no model '{name}' ({known}); train one: python run.py demo"
    if not version:
        return f"model '{name}' has no versions yet; train one: python run.py demo"
    latest = client.get_model_version(name, ModelStages.LATEST).name
    stage_names = [stage.value for stage in ModelStages if stage != ModelStages.NONE]
    stages = ", ".join(stage_names)
    if version in stage_names:
        return (
            f"model '{name}' has no version in stage '{version}' (latest: {latest}; `zenml "
            f"model version update {name} {latest} --stage {version}` puts it there)"
        )
    return (
        f"model '{name}' has no version '{version}' (latest: {latest}; a version is its "
        f"number, its name or a stage: {stages})"
    )
