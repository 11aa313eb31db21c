"""Manifest + DICOM folders -> de-identified, split studies, their volumes and the quarantine."""

from __future__ import annotations

from typing import Annotated

import mlflow
import pandas as pd
from zenml import log_metadata, save_artifact, step

from materializers.study_volumes import StudyVolumesMaterializer
from pipelines.stack import TRACKER_NAME
from pipelines.step_cache import keyed_by_project_sources
from radreport.data.build import build_dataset
from radreport.data.errors import NoUsableStudiesError
from radreport.data.pseudonyms import DEMO_DEID_KEY_ID
from radreport.data.settings import DataSettings
from radreport.data.study_volumes import StudyVolumes
from steps.tracking import log_flat_metrics, log_flat_params, tag_model_version

# Recorded with each version of `studies`, and with the model versions trained on it.
DATASET_PROVENANCE = ("input_fingerprint", "deid_key_id", "demo_deid_key")


@step(
    cache_policy=keyed_by_project_sources(__name__),
    experiment_tracker=TRACKER_NAME,
    output_materializers={"volumes": StudyVolumesMaterializer},
)
def ingest_studies(
    manifest_path: str,
    input_fingerprint: str,
    deid_key_id: str,
    settings: DataSettings,
) -> tuple[
    Annotated[pd.DataFrame, "studies"],
    Annotated[StudyVolumes, "volumes"],
    Annotated[pd.DataFrame, "quarantine"],
]:
    """`input_fingerprint` and `deid_key_id` key the cache (same bytes and same pseudonym key
    -> same dataset version) and are recorded with the studies."""
    tag_model_version()
    try:
        build = build_dataset(manifest_path, settings)
    except NoUsableStudiesError as error:
        if error.quarantine is None:
            raise
        raise _with_kept_quarantine(error) from error
    # Pseudonyms made with the public demo key can be recomputed by anyone: said wherever
    # the dataset and the models trained on it are looked at.
    provenance = {
        "input_fingerprint": input_fingerprint,
        "deid_key_id": deid_key_id,
        "demo_deid_key": deid_key_id == DEMO_DEID_KEY_ID,
    }
    mlflow.log_params(provenance)
    log_flat_params(settings.model_dump(mode="json"), "data")  # no key: the launch drops it
    log_metadata(metadata=provenance, artifact_name="studies", infer_artifact=True)
    log_flat_metrics(build.summary, prefix="data")
    mlflow.log_dict(build.summary, "data/summary.json")
    return build.studies, build.volumes, build.quarantine


def _with_kept_quarantine(error: NoUsableStudiesError) -> NoUsableStudiesError:
    """A failed step returns no outputs, so the record of why every study was rejected is
    saved as the next version of the `quarantine` artifact, which the error names."""
    kept = save_artifact(error.quarantine, name="quarantine")
    return NoUsableStudiesError(
        f"{error}; the rejections are kept as artifact quarantine version {kept.version}",
        error.rejected,
    )
