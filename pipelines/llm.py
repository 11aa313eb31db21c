"""The LLM stage: an Alpaca table -> adapter (and the merged export) -> the stop bias chosen
for it on validation studies (when configured; their reports at that bias are kept) ->
generated reports -> evaluation.

The training chain runs it on the table its data stage has just made. `llm_pipeline` runs
it alone on a stored version of the de-identified `studies` (a data pipeline's artifact),
so a model can be retrained on a pinned dataset version with other LLM settings, without
the manifest and DICOM files it was ingested from.
"""

from __future__ import annotations

from zenml import pipeline
from zenml.client import Client

from radreport.llm.export_settings import ExportSettings
from radreport.llm.settings import LLMSettings
from radreport.metrics.settings import EvaluationSettings
from steps.calibrate_stop_bias import calibrate_stop_bias
from steps.evaluate_reports import evaluate_reports
from steps.export_merged_model import export_merged_model
from steps.finetune_llm import finetune_llm
from steps.format_alpaca import format_alpaca
from steps.generate_reports import generate_reports


def llm_stage(
    alpaca_table,
    llm_settings: LLMSettings,
    run_llm_settings: LLMSettings,
    evaluation_settings: EvaluationSettings,
    checkpoint_dir: str,
    export_settings: ExportSettings,
    base_model_content: str,
) -> None:
    """The steps, called inside a pipeline function (ZenML composes them there).

    `llm_settings` are the config's and choose the steps; the steps run by `run_llm_settings`,
    format_alpaca's artifact: the same settings with "auto" token budgets sized by the table.
    `base_model_content` (radreport.llm.base_model_content) keys training by the base model's
    files, not only its path.
    """
    adapter, _ = finetune_llm(alpaca_table, run_llm_settings, checkpoint_dir, base_model_content)
    if export_settings.merged:
        export_merged_model(adapter, run_llm_settings, export_settings)
    if llm_settings.stop_bias_calibration_studies:
        generation_settings, calibration_reports = calibrate_stop_bias(
            adapter, alpaca_table, run_llm_settings
        )
        predictions, rejected_prompts = generate_reports(
            adapter, alpaca_table, generation_settings, calibration_reports
        )
    else:
        predictions, rejected_prompts = generate_reports(adapter, alpaca_table, run_llm_settings)
    evaluate_reports(predictions, rejected_prompts, alpaca_table, evaluation_settings)


@pipeline
def llm_pipeline(
    studies_version_id: str,
    llm_settings: LLMSettings,
    evaluation_settings: EvaluationSettings,
    checkpoint_dir: str,
    export_settings: ExportSettings,
    base_model_content: str,
):
    # The prompts depend on the LLM settings (retrieved examples), so they are made here from
    # the studies, as the data pipeline makes them.
    studies = Client().get_artifact_version(studies_version_id)
    alpaca_table, _, run_llm_settings = format_alpaca(studies, llm_settings, base_model_content)
    llm_stage(
        alpaca_table,
        llm_settings,
        run_llm_settings,
        evaluation_settings,
        checkpoint_dir,
        export_settings,
        base_model_content,
    )
