"""The training chain: data -> LLM fine-tuning -> generation -> evaluation.

Vision and fusion join here as their issues land.
"""

from __future__ import annotations

from zenml import pipeline

from pipelines.data import data_pipeline
from pipelines.llm import llm_stage
from radreport.data.settings import DataSettings
from radreport.llm.export_settings import ExportSettings
from radreport.llm.settings import LLMSettings
from radreport.metrics.settings import EvaluationSettings


@pipeline
def training_pipeline(
    manifest_path: str,
    input_fingerprint: str,
    deid_key_id: str,
    data_settings: DataSettings,
    llm_settings: LLMSettings,
    evaluation_settings: EvaluationSettings,
    checkpoint_dir: str,
    export_settings: ExportSettings,
    base_model_content: str,
):
    alpaca_table, run_llm_settings = data_pipeline.entrypoint(
        manifest_path,
        input_fingerprint,
        deid_key_id,
        data_settings,
        llm_settings,
        base_model_content,
    )
    llm_stage(
        alpaca_table,
        llm_settings,
        run_llm_settings,
        evaluation_settings,
        checkpoint_dir,
        export_settings,
        base_model_content,
    )
