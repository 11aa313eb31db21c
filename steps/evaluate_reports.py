"""Generated reports -> metrics with CIs beside the baselines, per split, logged to MLflow
and attached to the model version."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import mlflow
import pandas as pd
from zenml import log_metadata, step
from zenml.types import HTMLString

from pipelines.stack import TRACKER_NAME
from pipelines.step_cache import keyed_by_project_sources
from radreport.llm.predictions import rejections_by_split
from radreport.metrics.evaluate import evaluate_reports as score_generated_reports
from radreport.metrics.settings import EvaluationSettings
from steps.tracking import log_flat_params, tag_model_version


@step(cache_policy=keyed_by_project_sources(__name__), experiment_tracker=TRACKER_NAME)
def evaluate_reports(
    predictions: pd.DataFrame,
    rejected_prompts: pd.DataFrame,
    alpaca_table: pd.DataFrame,
    settings: EvaluationSettings,
) -> tuple[Annotated[dict, "evaluation"], Annotated[HTMLString, "evaluation_report"]]:
    """Baselines retrieve from the train split of the same table, so model and baselines
    are scored on the very same studies; each split also counts its studies left unwritten
    (their prompts did not fit the model's context), since its scores leave them out, and
    its reports that ran out of room (cut by the token budget), since their text does not
    say so."""
    tag_model_version()
    log_flat_params(settings.model_dump(mode="json"), "evaluation")
    train = alpaca_table[alpaca_table["split"] == "train"]
    rejected_by_split = rejections_by_split(rejected_prompts)
    evaluation = {split: {"rejected_prompts": count} for split, count in rejected_by_split.items()}
    html = ""
    with tempfile.TemporaryDirectory() as out:
        for split, samples in predictions.groupby("split", sort=False):
            result = score_generated_reports(samples, train, settings, Path(out) / split)
            mlflow.log_metrics({f"{split}_{k}": v for k, v in result.flat_metrics().items()})
            mlflow.log_artifacts(str(Path(out) / split), f"evaluation/{split}")
            # With each report's out_of_room, so the dashboard shows which ones were cut.
            mlflow.log_table(result.samples, f"evaluation/{split}_samples.json")
            evaluation[split] = {
                "model": result.metrics,
                "baselines": result.baselines,
                "scored_reports": len(samples),
                "reports_out_of_room": int(samples["out_of_room"].sum()),
                "rejected_prompts": rejected_by_split.get(split, 0),
            }
            mlflow.log_metric(
                f"{split}_reports_out_of_room", evaluation[split]["reports_out_of_room"]
            )
            # The version's report is the test split's where there is one: the validation
            # split chose the checkpoint and the stop bias, so its scores are optimistic.
            if split == "test" or not html:
                html = result.html_path.read_text()
    for split, scores in evaluation.items():
        mlflow.log_metric(f"{split}_rejected_prompts", scores["rejected_prompts"])
    if not rejected_prompts.empty:
        mlflow.log_table(rejected_prompts, "evaluation/rejected_prompts.json")
    log_metadata(metadata={"evaluation": evaluation}, infer_model=True)
    return evaluation, HTMLString(html)
