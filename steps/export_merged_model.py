"""The trained adapter folded into its base model: a standalone 16-bit model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
from zenml import ArtifactConfig, log_metadata, step
from zenml.enums import ArtifactType

from materializers.model_directory import ModelDirectoryMaterializer
from pipelines.step_cache import keyed_by_project_sources
from radreport.llm.adapter_handoff import fresh_handoff_dir
from radreport.llm.base_model import resolve_base_model
from radreport.llm.bundled import cache_dir
from radreport.llm.export_settings import ExportSettings
from radreport.llm.merge import QuantizedBaseError, export_merged
from radreport.llm.settings import LLMSettings


@step(
    cache_policy=keyed_by_project_sources(__name__),
    output_materializers={"merged_model": ModelDirectoryMaterializer},
)
def export_merged_model(
    adapter: Path, llm_settings: LLMSettings, export_settings: ExportSettings
) -> Annotated[Path, ArtifactConfig(name="merged_model", artifact_type=ArtifactType.MODEL)]:
    """Merged on the CPU, in the export's dtype: it needs the base model's 16-bit size in
    memory, not a GPU."""
    spec = export_settings.base_model or llm_settings.base_model
    merged_dir = fresh_handoff_dir(cache_dir() / "merged_handoff")
    try:
        export_merged(
            resolve_base_model(spec), adapter, merged_dir, getattr(torch, export_settings.dtype)
        )
    except QuantizedBaseError as exc:
        key = "export.base_model" if export_settings.base_model else "llm.base_model"
        raise QuantizedBaseError(f"{key}: {exc}, named by export.base_model") from None
    log_metadata(
        metadata={"merged_model": {"base_model": spec, "dtype": export_settings.dtype}},
        infer_model=True,
    )
    return merged_dir
