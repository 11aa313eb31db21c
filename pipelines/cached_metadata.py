"""Give a model version made by a run with cached steps the metadata those steps log.

A rerun on unchanged inputs creates a new version of the configured ZenML model and links
the cached steps' artifacts to it, but a cached step does not run, so what it logs with
`log_metadata(infer_model=True)` (training metrics, the LLM settings, the evaluation) would
be missing from the new version: `run.py generate` could not rebuild its settings and the
dashboard would show a version without scores.
"""

from __future__ import annotations

from zenml import log_metadata
from zenml.client import Client
from zenml.enums import ExecutionStatus

# The model-version keys each step logs (steps/format_alpaca.py, steps/finetune_llm.py,
# steps/export_merged_model.py, steps/calibrate_stop_bias.py, steps/generate_reports.py,
# steps/evaluate_reports.py).
# Each key is taken from the run that really executed the step that logs it: a cached step's
# original run can be older than another cached step's, with other settings.
MODEL_METADATA_BY_STEP = {
    "format_alpaca": ("token_budgets", "report_shape"),
    "finetune_llm": (
        "training",
        "llm_settings",
        "llm_settings_resolved",
        "resumed_from_step",
        "restored_from_step",
        "base_model_content",
    ),
    "export_merged_model": ("merged_model",),
    "calibrate_stop_bias": ("stop_bias_calibration",),
    "generate_reports": ("decoding_engine",),
    "evaluate_reports": ("evaluation",),
}


def carry_cached_step_metadata(run) -> None:
    """Copy to `run`'s model version the keys its cached steps logged in their original
    runs; keys already there (logged by steps that did run) stay as they are."""
    version = run.model_version
    if version is None:
        return
    client = Client()
    present = set(version.run_metadata)
    missing: dict = {}
    for step_name, keys in MODEL_METADATA_BY_STEP.items():
        step_run = run.steps.get(step_name)
        if step_run is None or step_run.status != ExecutionStatus.CACHED:
            continue
        original_step = client.get_run_step(step_run.original_step_run_id)
        original = client.get_pipeline_run(original_step.pipeline_run_id).model_version
        # A step of a run without a model version (format_alpaca in the data pipeline) keeps
        # its record on its step run.
        recorded = {
            **original_step.run_metadata,
            **(original.run_metadata if original is not None else {}),
        }
        for key in keys:
            if key not in present and key in recorded:
                missing[key] = recorded[key]
    if missing:
        log_metadata(metadata=missing, model_version_id=version.id)
