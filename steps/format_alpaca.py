"""Studies -> the Alpaca prompt table, with token-length statistics logged per split."""

from __future__ import annotations

from typing import Annotated

import mlflow
import pandas as pd
from zenml import step

from pipelines.stack import TRACKER_NAME
from radreport.data.alpaca import build_alpaca_dataset
from radreport.data.splits import SPLITS
from radreport.llm.base_model import resolve_base_model
from radreport.llm.prompt_table import build_prompt_table, split_rows
from radreport.llm.settings import LLMSettings
from steps.tracking import log_flat_metrics


@step(experiment_tracker=TRACKER_NAME)
def format_alpaca(
    studies: pd.DataFrame, settings: LLMSettings
) -> tuple[Annotated[pd.DataFrame, "alpaca_table"], Annotated[dict, "alpaca_stats"]]:
    from transformers import AutoTokenizer

    table = build_prompt_table(studies, settings.retrieval_k)
    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(settings.base_model))
    stats = {
        split: build_alpaca_dataset(
            split_rows(table, split), tokenizer, settings.max_seq_length, settings.overlength
        ).stats()
        for split in SPLITS
    }
    log_flat_metrics(stats, prefix="alpaca")
    mlflow.log_text(table["prompt"].iloc[0], "alpaca/example_prompt.txt")
    return table, stats
