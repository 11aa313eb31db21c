"""The data pipeline: manifest and DICOM -> de-identified, split studies -> Alpaca table,
and the LLM settings with their token budgets sized by it (steps/format_alpaca.py)."""

from __future__ import annotations

from zenml import pipeline

from radreport.data.settings import DataSettings
from radreport.llm.settings import LLMSettings
from steps.format_alpaca import format_alpaca
from steps.ingest_studies import ingest_studies


@pipeline
def data_pipeline(
    manifest_path: str,
    input_fingerprint: str,
    deid_key_id: str,
    data_settings: DataSettings,
    llm_settings: LLMSettings,
    base_model_content: str,
):
    """`base_model_content` (radreport.llm.base_model_content) keys the prompt table's step
    by the base model's files, whose tokenizer sizes its token budgets."""
    studies, _, _ = ingest_studies(manifest_path, input_fingerprint, deid_key_id, data_settings)
    alpaca_table, _, run_llm_settings = format_alpaca(studies, llm_settings, base_model_content)
    return alpaca_table, run_llm_settings
