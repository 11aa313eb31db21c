"""The training chain: data -> LLM fine-tuning -> generation -> evaluation.

Vision and fusion join here as their issues land.
"""

from __future__ import annotations

from zenml import pipeline

from pipelines.data import data_pipeline
from radreport.data.settings import DataSettings
from radreport.llm.export_settings import ExportSettings
from radreport.llm.settings import LLMSettings
from radreport.metrics.settings import EvaluationSettings
from steps.evaluate_reports import evaluate_reports
from steps.export_merged_model import export_merged_model
from steps.finetune_llm import finetune_llm
from steps.generate_reports import generate_reports


@pipeline
def training_pipeline(
    manifest_path: str,
    input_fingerprint: str,
    deid_key_id: str,
    data_settings: DataSettings,
    llm_settings: LLMSettings,
    evaluation_settings: EvaluationSettings,
    checkpoint_dir: str,
    export_settings: ExportSettings | None = None,
):
    alpaca_table = data_pipeline.entrypoint(
        manifest_path, input_fingerprint, deid_key_id, data_settings, llm_settings
    )
    adapter, _ = finetune_llm(alpaca_table, llm_settings, checkpoint_dir)
    if export_settings is not None and export_settings.merged:
        export_merged_model(adapter, llm_settings, export_settings)
    predictions, rejected_prompts = generate_reports(adapter, alpaca_table, llm_settings)
    evaluate_reports(predictions, rejected_prompts, alpaca_table, evaluation_settings)
