"""Bring-your-own-data end to end: manifest -> DICOM ingestion -> de-identification ->
patient-level splits. What leaves this function is pseudonymous: study, patient, accession
and UIDs are keyed pseudonyms, dates are shifted and report text is scrubbed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from radreport.data.errors import ManifestError, NoUsableStudiesError
from radreport.data.manifest import (
    Manifest,
    lines_text,
    load_manifest,
    other_lines_with_the_same,
)
from radreport.data.pseudonyms import DeidKeys, resolve_deid_keys
from radreport.data.quarantine import QuarantineEntry, Reason
from radreport.data.quarantine_paths import path_in_study
from radreport.data.quarantine_table import (
    QUARANTINE_COLUMNS,
    SOURCE_COLUMNS,
    count_by_reason,
    quarantine_sources_table,
    quarantine_table,
    reason_counts_text,
)
from radreport.data.settings import DataSettings
from radreport.data.splits import SPLITS, assign_splits
from radreport.data.study_volumes import StudyVolumes
from radreport.data.text_scrub import scrub_report
from radreport.dicom.ingest import ingest_studies
from radreport.dicom.study import StudyImages, StudyTask
from radreport.dicom.windows import CHANNELS
from radreport.whole_file_writes import replaced_as_a_set

logger = logging.getLogger(__name__)

# De-identified facts of the ingested series (None for text-only studies).
HEADER_COLUMNS = (
    "study_uid",
    "series_uid",
    "accession",
    "study_date",
    "source_slices",
    "slice_spacing_mm",
    "pixel_spacing_mm",
    "tilt_degrees",
)
STUDY_COLUMNS = (
    "study_id",
    "patient_id",
    "split",
    "impression",
    "report",
    "labels",
    "has_images",
    *HEADER_COLUMNS,
)


# What a build writes into its `out_dir`.
# quarantine_sources.csv holds raw paths: for the data's owner, beside the raw data.
OUTPUT_FILES = (
    "quarantine.csv",
    "quarantine_sources.csv",
    "summary.json",
    "studies.parquet",
    "volumes.npz",
)


@dataclass(frozen=True)
class DatasetBuild:
    studies: pd.DataFrame  # STUDY_COLUMNS, one row per accepted study, manifest order
    volumes: StudyVolumes  # the studies with has_images, same pseudonymous ids
    quarantine: pd.DataFrame  # QUARANTINE_COLUMNS, pseudonymous ids and paths
    # SOURCE_COLUMNS: each quarantined file's raw path, for `out_dir` only, never an artifact.
    quarantine_sources: pd.DataFrame
    summary: dict[str, object]


def _pseudonyms(row: dict[str, str], images: StudyImages | None, keys: DeidKeys) -> dict:
    """The study's raw ids, from the manifest and its headers, and their pseudonyms."""
    return {
        row["patient_id"]: keys.patient(row["patient_id"]),
        row["study_id"]: keys.study(row["study_id"]),
        **(images.pseudonyms if images else {}),
    }


def _study_row(row: dict[str, str], images: StudyImages | None, keys: DeidKeys) -> dict:
    header = images.header if images else {}
    pseudonyms = _pseudonyms(row, images, keys)
    identifiers = images.identifiers if images else set()
    return {
        "study_id": keys.study(row["study_id"]),
        "patient_id": keys.patient(row["patient_id"]),
        "impression": scrub_report(row["impression"], identifiers, pseudonyms),
        "report": scrub_report(row["report"], identifiers, pseudonyms),
        "labels": row["labels"],
        "has_images": images is not None and images.volume is not None,
        **{column: header.get(column) for column in HEADER_COLUMNS},
    }


def _rejected(row: dict[str, str], study: dict, settings: DataSettings) -> bool:
    """A study whose images all failed, when the config wants image studies only."""
    images_failed = bool(row["dicom_dir"]) and not study["has_images"]
    return images_failed and settings.dicom.when_no_usable_series == "reject_study"


def _located_in_study(
    row: dict[str, str], images: StudyImages, keys: DeidKeys
) -> list[tuple[QuarantineEntry, str]]:
    """The study's rejections with its manifest line and their pseudonymous place in its
    dicom_dir, each beside its raw path (which only `out_dir` gets, for the data's owner)."""
    return [
        (
            replace(
                entry,
                manifest_line=row["manifest_line"],
                path=path_in_study(entry.path, row["dicom_dir"], keys),
            ),
            entry.path,
        )
        for entry in images.quarantine
    ]


def _pseudonymous_quarantine(entries: list[QuarantineEntry], keys: DeidKeys) -> pd.DataFrame:
    table = quarantine_table(entries)
    table["study_id"] = [keys.study(s) if s else "" for s in table["study_id"]]
    table["series_uid"] = [str(keys.uid(u)) if u else "" for u in table["series_uid"]]
    return table


def _ingest_images(manifest: Manifest, settings: DataSettings, keys: DeidKeys):
    with_images = manifest.studies[manifest.studies["dicom_dir"] != ""]
    tasks = [
        StudyTask(row.study_id, row.patient_id, row.dicom_dir) for row in with_images.itertuples()
    ]
    return {images.study_id: images for images in ingest_studies(tasks, settings.dicom, keys)}


def _lines_with_the_same_study(
    manifest: Manifest, images: dict[str, StudyImages]
) -> dict[str, list[int]]:
    """For each row whose images are a DICOM study that another row's folder also holds,
    the other rows' lines: one study under two ids could fall into two splits."""
    study_ids = list(manifest.studies["study_id"])
    uids = []
    for study_id in study_ids:
        found = images.get(study_id)
        uids.append(found.header["study_uid"] if found and found.volume is not None else "")
    others = other_lines_with_the_same(uids, list(manifest.studies["manifest_line"]))
    return {study_id: lines for study_id, lines in zip(study_ids, others, strict=True) if lines}


def _study_in_two_rows(path: Path, row: dict, other_lines: list[int]) -> QuarantineEntry:
    line = row["manifest_line"]
    message = (
        f"line {line}: its images are the same DICOM study as those of {lines_text(other_lines)}"
    )
    return QuarantineEntry(
        str(path), Reason.STUDY_IN_TWO_ROWS, message, row["study_id"], manifest_line=line
    )


def _summary(
    manifest: Manifest,
    studies: pd.DataFrame,
    quarantine: pd.DataFrame,
    images: dict[str, StudyImages],
    settings: DataSettings,
) -> dict[str, object]:
    dicom = settings.dicom
    return {
        "studies_in": manifest.rows_in,
        "studies_accepted": len(studies),
        "studies_with_images": int(studies["has_images"].sum()),
        "studies_text_only": int((~studies["has_images"]).sum()),
        "studies_rejected": manifest.rows_in - len(studies),
        "dicom_files_seen": sum(i.files_seen for i in images.values()),
        "slices_ingested": int(studies["source_slices"].fillna(0).sum()),
        "quarantined": len(quarantine),
        "quarantined_by_reason": count_by_reason(quarantine),
        "studies_per_split": {s: int((studies["split"] == s).sum()) for s in SPLITS},
        "patients_per_split": {
            s: int(studies.loc[studies["split"] == s, "patient_id"].nunique()) for s in SPLITS
        },
        "volume_shape": [len(CHANNELS), dicom.depth, dicom.height, dicom.width],
        "volume_dtype": dicom.storage_dtype,
    }


def build_dataset(
    manifest_path: Path | None = None,
    settings: DataSettings | None = None,
    out_dir: Path | None = None,
) -> DatasetBuild:
    """Load, ingest, de-identify and split a manifest's studies.

    Raises ManifestError (unreadable manifest, no rows, missing column) or
    NoUsableStudiesError (no valid row, every study rejected); both are DatasetError with a
    one-line message. With `out_dir`, writes quarantine.csv, summary.json, studies.parquet and
    volumes.npz there.
    """
    settings = settings or DataSettings()
    path = manifest_path or settings.manifest.path
    if path is None:
        raise ManifestError("no manifest given: pass a path or set manifest.path")
    try:
        manifest = load_manifest(Path(path), settings.manifest.columns)
    except NoUsableStudiesError as error:
        # Rows refused before any image is read: the commands check the manifest before a
        # pipeline starts, so only `out_dir` wants their record (and the key's warning).
        if out_dir is not None:
            _keep_quarantine(error, error.rejected, resolve_deid_keys(settings.deid), out_dir)
        raise
    keys = resolve_deid_keys(settings.deid)
    images = _ingest_images(manifest, settings, keys)
    same_study = _lines_with_the_same_study(manifest, images)
    entries = list(manifest.rejected)
    sources: list[tuple[QuarantineEntry, str]] = []
    rows, volumes = [], {}
    for row in manifest.studies.to_dict("records"):
        study_images = images.get(row["study_id"])
        if study_images:
            located = _located_in_study(row, study_images, keys)
            entries += [entry for entry, _ in located]
            sources += located
        if row["study_id"] in same_study:
            entries.append(_study_in_two_rows(Path(path), row, same_study[row["study_id"]]))
            continue
        row_out = _study_row(row, study_images, keys)
        if _rejected(row, row_out, settings):
            continue
        rows.append(row_out)
        if row_out["has_images"]:
            volumes[row_out["study_id"]] = study_images.volume
    if not rows:
        error = NoUsableStudiesError(
            f"no usable study in {path}: all {manifest.rows_in} were rejected "
            f"({reason_counts_text(entries)})",
            entries,
        )
        _keep_quarantine(error, entries, keys, out_dir, quarantine_sources_table(sources))
        raise error
    studies = pd.DataFrame(rows)
    studies["split"] = assign_splits(studies, settings.split)
    studies = studies[list(STUDY_COLUMNS)]
    shape = (len(CHANNELS), settings.dicom.depth, settings.dicom.height, settings.dicom.width)
    quarantine = _pseudonymous_quarantine(entries, keys)
    result = DatasetBuild(
        studies=studies,
        volumes=StudyVolumes.stack(volumes, shape, settings.dicom.storage_dtype),
        quarantine=quarantine,
        quarantine_sources=quarantine_sources_table(sources),
        summary=_summary(manifest, studies, quarantine, images, settings),
    )
    logger.info("dataset built: %s", json.dumps(result.summary))
    if out_dir is not None:
        write_outputs(result, Path(out_dir))
    return result


def _keep_quarantine(
    error: NoUsableStudiesError,
    entries: list[QuarantineEntry],
    keys: DeidKeys,
    out_dir: Path | None,
    sources: pd.DataFrame | None = None,
) -> None:
    """A build with nothing usable still leaves the record of why, de-identified as always:
    on the error for the caller (a pipeline step stores it), and in `out_dir` when given."""
    error.quarantine = _pseudonymous_quarantine(entries, keys)
    if out_dir is not None:
        _write_quarantine(error.quarantine, sources, Path(out_dir))


def _write_quarantine(
    quarantine: pd.DataFrame, sources: pd.DataFrame | None, out_dir: Path
) -> None:
    if sources is None:
        sources = quarantine_sources_table([])
    with replaced_as_a_set(out_dir, OUTPUT_FILES[:2]) as staged:
        _write_quarantine_files(quarantine, sources, staged)


def _write_quarantine_files(quarantine: pd.DataFrame, sources: pd.DataFrame, folder: Path):
    quarantine.to_csv(folder / "quarantine.csv", index=False, columns=QUARANTINE_COLUMNS)
    sources.to_csv(folder / "quarantine_sources.csv", index=False, columns=SOURCE_COLUMNS)


def write_outputs(result: DatasetBuild, out_dir: Path) -> None:
    """The files of OUTPUT_FILES, replaced as a set: a kill or a full disk mid-write leaves
    the set before it (SetNotWritten), never half of a file nor a mix of two runs' files."""
    with replaced_as_a_set(out_dir, OUTPUT_FILES) as staged:
        _write_quarantine_files(result.quarantine, result.quarantine_sources, staged)
        (staged / "summary.json").write_text(json.dumps(result.summary, indent=2) + "\n")
        result.studies.to_parquet(staged / "studies.parquet", index=False)
        result.volumes.save(staged / "volumes.npz")
