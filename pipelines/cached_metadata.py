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


def carry_cached_step_metadata(run) -> None:
    """Copy to `run`'s model version the keys it lacks from the model versions of its cached
    steps' original runs (keys the steps that did run logged stay as they are)."""
    version = run.model_version
    if version is None:
        return
    client = Client()
    present = set(version.run_metadata)
    missing: dict = {}
    for step_run in run.steps.values():
        if step_run.status != ExecutionStatus.CACHED or step_run.original_step_run_id is None:
            continue
        original_step = client.get_run_step(step_run.original_step_run_id)
        original = client.get_pipeline_run(original_step.pipeline_run_id).model_version
        if original is None:
            continue
        for key, value in original.run_metadata.items():
            if key not in present:
                missing.setdefault(key, value)
    if missing:
        log_metadata(metadata=missing, model_version_id=version.id)
