"""Studies -> the Alpaca prompt table, with token-length statistics logged per split; the
LLM settings with their "auto" token budgets (max_seq_length, max_new_tokens) sized by the
training data, the settings every later step of the run uses; and, on the model version,
whether the budgets hold the training data."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Annotated

import mlflow
import pandas as pd
from zenml import get_step_context, log_metadata, step

from pipelines.stack import TRACKER_NAME
from pipelines.step_cache import keyed_by_project_sources
from radreport.llm.prompt_table import (
    build_prompt_table,
    resolve_token_budgets,
    token_stats_by_split,
    tokenize_splits,
    train_report_shape,
)
from radreport.llm.settings import LLMSettings
from radreport.llm.token_budgets import budget_shortfalls, token_budgets
from steps.tracking import log_flat_metrics, tag_model_version

logger = logging.getLogger(__name__)


@step(cache_policy=keyed_by_project_sources(__name__), experiment_tracker=TRACKER_NAME)
def format_alpaca(
    studies: pd.DataFrame, settings: LLMSettings, base_model_content: str
) -> tuple[
    Annotated[pd.DataFrame, "alpaca_table"],
    Annotated[dict, "alpaca_stats"],
    Annotated[LLMSettings, "llm_settings"],
]:
    """`base_model_content` is not read here: as a parameter it keys this step's cache by the
    base model's files (its tokenizer sizes the token budgets), not only by its path."""
    tag_model_version()
    table = build_prompt_table(studies, settings.retrieval_k, settings.retrieval_match)
    tokens = tokenize_splits(table, settings)  # once, for the budgets and the statistics
    settings = resolve_token_budgets(table, settings, tokens)
    stats = token_stats_by_split(table, settings, tokens)
    log_flat_metrics(stats, prefix="alpaca")
    mlflow.log_text(table["prompt"].iloc[0], "alpaca/example_prompt.txt")
    budgets = token_budgets(stats["train"], settings.max_seq_length, settings.max_new_tokens)
    for shortfall in budget_shortfalls(budgets):
        logger.warning(shortfall)
    # The marks that end a report before a second one, as generation will learn them.
    record = {"token_budgets": budgets, "report_shape": asdict(train_report_shape(table))}
    # Also on the step run: the data pipeline builds the table too, with no model version,
    # and a training run that reuses its table takes the record from there
    # (pipelines.cached_metadata).
    log_metadata(metadata=record)
    if get_step_context().model_version is not None:
        log_metadata(metadata=record, infer_model=True)
    return table, stats, settings
