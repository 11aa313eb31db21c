"""The Alpaca table -> a LoRA adapter (safetensors folder) and its training metrics."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import mlflow
import pandas as pd
from zenml import ArtifactConfig, log_metadata, step
from zenml.config import ResourceSettings
from zenml.enums import ArtifactType
from zenml.utils.cuda_utils import cleanup_gpu_memory

from materializers.model_directory import ModelDirectoryMaterializer
from pipelines.stack import TRACKER_NAME
from pipelines.step_cache import keyed_by_project_sources
from radreport.llm.adapter_handoff import fresh_handoff_dir
from radreport.llm.base_model_content import BASE_MODEL_CONTENT_KEY
from radreport.llm.bundled import cache_dir
from radreport.llm.device import device_decisions
from radreport.llm.finetune import finetune
from radreport.llm.prompt_table import split_rows
from radreport.llm.settings import LLMSettings
from radreport.llm.training_curves import plot_training_curves
from steps.tracking import tag_model_version


def _log_samples(step: int, rows: list[dict]) -> None:
    # One table for the run (log_table appends), readable in the MLflow UI's artifact view.
    mlflow.log_table(pd.DataFrame(rows), artifact_file="training/sample_generations.json")


@step(
    cache_policy=keyed_by_project_sources(__name__),
    experiment_tracker=TRACKER_NAME,
    settings={"resources": ResourceSettings(gpu_count=1)},
    output_materializers={"adapter": ModelDirectoryMaterializer},
)
def finetune_llm(
    alpaca_table: pd.DataFrame, settings: LLMSettings, checkpoint_dir: str, base_model_content: str
) -> tuple[
    Annotated[Path, ArtifactConfig(name="adapter", artifact_type=ArtifactType.MODEL)],
    Annotated[dict, "training_metrics"],
]:
    """Checkpoints go to `checkpoint_dir`: a killed run started again resumes there.
    `base_model_content` keys the step's cache by the base model's files (the run's own
    fingerprint covers them too) and is kept with the model version, so that `generate`
    can tell when the folder's files have changed since."""
    tag_model_version()
    mlflow.log_params({f"llm_{k}": v for k, v in settings.model_dump().items()})
    # ZenML stores the adapter after this function returns, when the run folder is no
    # longer locked: the copy it stores must be this run's alone.
    adapter_dir = fresh_handoff_dir(cache_dir() / "adapter_handoff")
    result = finetune(
        split_rows(alpaca_table, "train"),
        split_rows(alpaca_table, "val"),
        settings,
        checkpoint_dir,
        report_to=["mlflow"],
        on_samples=_log_samples,
        adapter_dir=adapter_dir,
    )
    mlflow.log_metrics({f"final_{k}": float(v) for k, v in result.metrics.items()})
    with tempfile.TemporaryDirectory() as plots:
        for path in plot_training_curves(result.log_history, Path(plots), result.learning_rates):
            mlflow.log_artifact(str(path), "training")
    # What this machine made of the config's "auto" settings: two runs of one config on a
    # GPU and on a CPU differ here, and nowhere else in their settings.
    resolved = device_decisions(result.settings)
    mlflow.log_params({f"llm_{key}_resolved": value for key, value in resolved.items()})
    metadata = {
        "training": result.metrics,
        "llm_settings": settings.model_dump(),
        "llm_settings_resolved": resolved,
        BASE_MODEL_CONTENT_KEY: base_model_content,
    }
    if result.resumed_from_step is not None:
        # A killed run started again trained on from its checkpoint; a finished run's
        # checkpoint found again was restored, with no step trained.
        key = "restored_from_step" if result.restored else "resumed_from_step"
        mlflow.set_tag(key, result.resumed_from_step)
        metadata[key] = result.resumed_from_step
    log_metadata(
        metadata=metadata,
        infer_model=True,
    )
    cleanup_gpu_memory(force=True)
    return result.adapter_dir, result.metrics
