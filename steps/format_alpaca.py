"""Studies -> the Alpaca prompt table, with token-length statistics logged per split and, on
the model version, whether generation's token budget holds the training reports."""

from __future__ import annotations

import logging
from typing import Annotated

import mlflow
import pandas as pd
from zenml import get_step_context, log_metadata, step

from pipelines.stack import TRACKER_NAME
from radreport.llm.prompt_table import build_prompt_table, token_stats_by_split
from radreport.llm.report_budget import budget_shortfall, report_budget
from radreport.llm.settings import LLMSettings
from steps.tracking import log_flat_metrics

logger = logging.getLogger(__name__)


@step(experiment_tracker=TRACKER_NAME)
def format_alpaca(
    studies: pd.DataFrame, settings: LLMSettings
) -> tuple[Annotated[pd.DataFrame, "alpaca_table"], Annotated[dict, "alpaca_stats"]]:
    table = build_prompt_table(studies, settings.retrieval_k)
    stats = token_stats_by_split(table, settings)
    log_flat_metrics(stats, prefix="alpaca")
    mlflow.log_text(table["prompt"].iloc[0], "alpaca/example_prompt.txt")
    budget = report_budget(stats["train"], settings.max_new_tokens)
    if (shortfall := budget_shortfall(budget)) is not None:
        logger.warning(shortfall)
    # The data pipeline builds the table too, with no model version to hold the record.
    if get_step_context().model_version is not None:
        log_metadata(metadata={"report_budget": budget}, infer_model=True)
    return table, stats
