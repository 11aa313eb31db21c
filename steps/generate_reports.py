"""A trained adapter -> generated reports for the validation and test studies, and the record
of the studies whose prompts do not fit the model's context."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
from zenml import step
from zenml.config import ResourceSettings
from zenml.utils.cuda_utils import cleanup_gpu_memory

from radreport.llm.base_model import resolve_base_model
from radreport.llm.generate import ReportGenerator
from radreport.llm.predictions import predict_splits
from radreport.llm.settings import LLMSettings


@step(settings={"resources": ResourceSettings(gpu_count=1)})
def generate_reports(
    adapter: Path, alpaca_table: pd.DataFrame, settings: LLMSettings
) -> tuple[Annotated[pd.DataFrame, "predictions"], Annotated[pd.DataFrame, "rejected_prompts"]]:
    generator = ReportGenerator.from_settings(
        settings, resolve_base_model(settings.base_model), adapter
    )
    predictions, rejected = predict_splits(generator, alpaca_table)
    del generator
    cleanup_gpu_memory(force=True)
    return predictions, rejected
