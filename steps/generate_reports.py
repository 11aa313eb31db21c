"""A trained adapter -> generated reports for the validation and test studies, and the record
of the studies whose prompts do not fit the model's context. The reports the stop bias
calibration already wrote at these settings are kept, not decoded again."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import pandas as pd
from zenml import log_metadata, step
from zenml.config import ResourceSettings
from zenml.utils.cuda_utils import cleanup_gpu_memory

from pipelines.step_cache import keyed_by_project_sources
from radreport.llm.predictions import kept_reports, predict_splits
from radreport.llm.settings import LLMSettings
from radreport.llm.trained_generator import trained_report_generator

logger = logging.getLogger(__name__)


@step(
    cache_policy=keyed_by_project_sources(__name__),
    settings={"resources": ResourceSettings(gpu_count=1)},
)
def generate_reports(
    adapter: Path,
    alpaca_table: pd.DataFrame,
    settings: LLMSettings,
    calibration_reports: pd.DataFrame | None = None,
) -> tuple[Annotated[pd.DataFrame, "predictions"], Annotated[pd.DataFrame, "rejected_prompts"]]:
    generator = trained_report_generator(settings, adapter, alpaca_table)
    decoded, decoded_out_of_room = {}, []
    if calibration_reports is not None:
        decoded, decoded_out_of_room = kept_reports(calibration_reports)
        logger.info("%d reports kept from the stop bias calibration", len(decoded))
    predictions, rejected = predict_splits(
        generator, alpaca_table, decoded=decoded, decoded_out_of_room=decoded_out_of_room
    )
    # Which engine `decoder: auto` chose on this machine, in what precision.
    log_metadata(metadata={"decoding_engine": generator.decoding_engine()}, infer_model=True)
    del generator
    cleanup_gpu_memory(force=True)
    return predictions, rejected
