"""Studies -> the Alpaca prompt table, with token-length statistics logged per split."""

from __future__ import annotations

from typing import Annotated

import mlflow
import pandas as pd
from zenml import step

from pipelines.stack import TRACKER_NAME
from radreport.llm.prompt_table import build_prompt_table, token_stats_by_split
from radreport.llm.settings import LLMSettings
from steps.tracking import log_flat_metrics


@step(experiment_tracker=TRACKER_NAME)
def format_alpaca(
    studies: pd.DataFrame, settings: LLMSettings
) -> tuple[Annotated[pd.DataFrame, "alpaca_table"], Annotated[dict, "alpaca_stats"]]:
    table = build_prompt_table(studies, settings.retrieval_k)
    stats = token_stats_by_split(table, settings)
    log_flat_metrics(stats, prefix="alpaca")
    mlflow.log_text(table["prompt"].iloc[0], "alpaca/example_prompt.txt")
    return table, stats
