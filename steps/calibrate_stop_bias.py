"""A trained adapter -> the generation settings with the stop bias chosen for it on its own
validation studies (radreport.llm.stop_bias_calibration), and the reports of those studies
at that bias, which generate_reports keeps rather than decoding them again."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Annotated

import mlflow
import pandas as pd
from zenml import log_metadata, step
from zenml.config import ResourceSettings
from zenml.utils.cuda_utils import cleanup_gpu_memory

from pipelines.stack import TRACKER_NAME
from pipelines.step_cache import keyed_by_project_sources
from radreport.llm.predictions import kept_reports_table
from radreport.llm.settings import LLMSettings
from radreport.llm.stop_bias_calibration import NothingToCalibrateOn, calibrate_on_validation
from radreport.llm.stop_bias_plot import plot_calibration
from radreport.llm.trained_generator import trained_report_generator
from steps.tracking import tag_model_version

logger = logging.getLogger(__name__)


@step(
    cache_policy=keyed_by_project_sources(__name__),
    experiment_tracker=TRACKER_NAME,
    settings={"resources": ResourceSettings(gpu_count=1)},
)
def calibrate_stop_bias(
    adapter: Path, alpaca_table: pd.DataFrame, settings: LLMSettings
) -> tuple[
    Annotated[LLMSettings, "generation_settings"], Annotated[pd.DataFrame, "calibration_reports"]
]:
    tag_model_version()
    generator = trained_report_generator(settings, adapter, alpaca_table)
    try:
        calibration = calibrate_on_validation(generator, alpaca_table, settings)
    except NothingToCalibrateOn as error:
        # The trained model is still good to write the test split's reports: keep the bias
        # the config gives, and say so where the run is looked at.
        logger.warning("stop bias not calibrated, %g kept: %s", settings.stop_logit_bias, error)
        mlflow.set_tag("stop_bias_not_calibrated", str(error))
        mlflow.log_param("llm_stop_logit_bias_decoded", settings.stop_logit_bias)
        return settings, kept_reports_table()
    finally:
        del generator
        cleanup_gpu_memory(force=True)
    for index, trial in enumerate(calibration.trials):
        mlflow.log_metrics(
            {
                "stop_bias_tried": trial.bias,
                "stop_bias_length_ratio": trial.length_ratio,
                "stop_bias_bleu4": trial.bleu4,
            },
            step=index,
        )
    mlflow.log_metric("stop_bias_chosen", calibration.chosen_bias)
    # Beside the param llm_stop_logit_bias, the config's start: the bias the reports have.
    mlflow.log_param("llm_stop_logit_bias_decoded", calibration.chosen_bias)
    with tempfile.TemporaryDirectory() as plots:
        path = plot_calibration(calibration, Path(plots) / "stop_bias_calibration.png")
        mlflow.log_artifact(str(path), "generation")
    log_metadata(metadata={"stop_bias_calibration": calibration.as_dict()}, infer_model=True)
    # Validated again: the chosen bias is within the settings' bounds by construction.
    generation_settings = LLMSettings.model_validate(
        {**settings.model_dump(), "stop_logit_bias": calibration.chosen_bias}
    )
    reports = kept_reports_table(calibration.chosen_reports, calibration.chosen_out_of_room)
    return generation_settings, reports
