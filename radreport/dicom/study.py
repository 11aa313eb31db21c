"""Ingest one study folder: header pass, series selection, volume, de-identified facts.

Runs in a worker process. The header facts it returns are already de-identified; study ids
in its quarantine entries are still the manifest's (the caller pseudonymises every table in
one place), and the raw identifying header values (and the pseudonyms of the raw ids)
travel back in memory only, to scrub this study's report.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset

from radreport.data.pseudonyms import DeidKeys
from radreport.data.quarantine import QuarantineEntry, Reason
from radreport.data.settings import DicomSettings
from radreport.dicom.deidentify import (
    deidentify_dataset,
    header_pseudonyms,
    identifying_values,
)
from radreport.dicom.geometry import StackGeometry
from radreport.dicom.header import FileHeader, read_file_header
from radreport.dicom.pixels import PixelDecodeError
from radreport.dicom.quiet import pydicom_silenced
from radreport.dicom.series import (
    candidate_series,
    drop_ambiguous_studies,
    drop_duplicate_instances,
    drop_other_patients,
)
from radreport.dicom.unused_file_headers import READ_HERE, unused_file_headers
from radreport.dicom.volume import build_volume

FACT_KEYWORDS = (
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "AccessionNumber",
    "StudyDate",
)


@dataclass(frozen=True)
class StudyTask:
    study_id: str
    patient_id: str
    dicom_dir: str


@dataclass
class StudyImages:
    """What ingestion learned about one study; `study_id` is still the manifest's."""

    study_id: str
    volume: np.ndarray | None = None
    header: dict[str, object] = field(default_factory=dict)
    identifiers: set[str] = field(default_factory=set)
    pseudonyms: dict[str, str] = field(default_factory=dict)
    quarantine: list[QuarantineEntry] = field(default_factory=list)
    files_seen: int = 0


def study_files(folder: Path) -> tuple[list[Path], list[QuarantineEntry]]:
    """The regular files under `folder`, following linked folders (exports often link
    series in) but entering each real folder once; an entry that is not a regular file
    (a dangling or looping link, a pipe, a socket) is recorded, never read."""
    files, others, seen = [], [], set()
    for root, folders, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            folders[:] = []
            continue
        seen.add(real)
        for name in names:
            path = Path(root) / name
            (files if path.is_file() else others).append(path)
    entries = [
        QuarantineEntry(str(path), Reason.NOT_A_REGULAR_FILE, _kind_of_entry(path))
        for path in others
    ]
    return sorted(files), entries


def _kind_of_entry(path: Path) -> str:
    if path.is_symlink():
        return "a link to nothing readable (missing target or a loop)"
    return "not a regular file (a pipe, socket or device)"


def _header_pass(
    files: list[Path], settings: DicomSettings
) -> tuple[list[FileHeader], list[QuarantineEntry]]:
    headers, rejected = [], []
    for path in files:
        try:
            result = read_file_header(path, settings)
        except Exception as error:  # one odd file costs itself, not its study
            # The exception text may quote header values: only its type is kept.
            message = f"reading the header failed ({type(error).__name__})"
            result = QuarantineEntry(str(path), Reason.UNREADABLE_HEADER, message)
        (rejected if isinstance(result, QuarantineEntry) else headers).append(result)
    return headers, rejected


def _usable_series(
    headers: list[FileHeader], task: StudyTask, settings: DicomSettings
) -> tuple[list[StackGeometry], list[QuarantineEntry]]:
    rejected: list[QuarantineEntry] = []
    if settings.check_patient_id:
        headers, dropped = drop_other_patients(headers, task.patient_id)
        rejected += dropped
    for step in (drop_ambiguous_studies, drop_duplicate_instances):
        headers, dropped = step(headers)
        rejected += dropped
    candidates, dropped = candidate_series(headers, settings)
    return candidates, rejected + dropped


def _series_entries(
    geometry: StackGeometry, reason: Reason, message: str, skip: str = ""
) -> list[QuarantineEntry]:
    paths = dict.fromkeys(s.path for s in geometry.slices if s.path != skip)
    series_uid = geometry.slices[0].series_uid
    return [QuarantineEntry(path, reason, message, series_uid=series_uid) for path in paths]


def _first_buildable(
    candidates: list[StackGeometry], headers: dict[str, FileHeader], settings: DicomSettings
) -> tuple[StackGeometry | None, np.ndarray | None, list[QuarantineEntry]]:
    """The best series whose every file decodes; a failing file spoils its series only."""
    rejected: list[QuarantineEntry] = []
    for rank, geometry in enumerate(candidates):
        try:
            volume = build_volume(geometry, headers, settings)
        except PixelDecodeError as error:
            series_uid = geometry.slices[0].series_uid
            reason = Reason.PIXEL_DATA_TRUNCATED if error.truncated else Reason.PIXEL_DECODE_FAILED
            rejected.append(QuarantineEntry(error.path, reason, str(error), series_uid=series_uid))
            message = "another file of this series failed to decode"
            rejected += _series_entries(geometry, Reason.INCOMPLETE_SERIES, message, error.path)
            continue
        except Exception as error:  # values no check foresaw: this series is lost, not its study
            message = f"building the volume failed ({type(error).__name__})"
            rejected += _series_entries(geometry, Reason.INGESTION_ERROR, message)
            continue
        for other in candidates[rank + 1 :]:
            same_series = other.slices[0].series_uid == geometry.slices[0].series_uid
            chosen = "another acquisition of this series" if same_series else "another series"
            message = f"{chosen} was chosen (more slices, then thinner spacing, then UID)"
            rejected += _series_entries(other, Reason.SERIES_NOT_SELECTED, message)
        return geometry, volume, rejected
    return None, None, rejected


def _deidentified_facts(
    geometry: StackGeometry, header: FileHeader, keys: DeidKeys
) -> dict[str, object]:
    # Only these elements leave ingestion; de-identifying just them is the same function
    # at a fraction of the cost of copying and walking the whole header.
    subset = Dataset()
    for keyword in FACT_KEYWORDS:
        if keyword in header.dataset:
            subset[keyword] = header.dataset[keyword]
    clean = deidentify_dataset(subset, keys)
    return {
        "study_uid": str(clean.StudyInstanceUID),
        "series_uid": str(clean.SeriesInstanceUID),
        "accession": str(clean.get("AccessionNumber", "")),
        "study_date": str(clean.get("StudyDate", "")),
        "source_slices": len(geometry.slices),
        "slice_spacing_mm": round(geometry.median_spacing_mm, 4),
        "pixel_spacing_mm": [round(v, 4) for v in geometry.pixel_spacing_mm],
        "tilt_degrees": round(geometry.tilt_degrees, 2),
    }


def ingest_study(task: StudyTask, settings: DicomSettings, keys: DeidKeys) -> StudyImages:
    """One study folder -> volume (or None) and a quarantine entry for every unused file."""
    with pydicom_silenced():
        return _ingest_study(task, settings, keys)


def _ingest_study(task: StudyTask, settings: DicomSettings, keys: DeidKeys) -> StudyImages:
    folder = Path(task.dicom_dir)
    result = StudyImages(study_id=task.study_id)
    files, not_files = study_files(folder)
    result.files_seen = len(files)
    headers, header_rejected = _header_pass(files, settings)
    rejected = not_files + header_rejected
    try:
        rejected += _from_headers(result, folder, headers, header_rejected, task, settings, keys)
    except Exception as error:  # no check foresaw it: the images are lost, not the scrub
        _without_images(result, headers, header_rejected, keys)
        # The exception text may quote header values, so only its type is kept.
        rejected.append(QuarantineEntry(str(folder), Reason.INGESTION_ERROR, type(error).__name__))
    result.quarantine = [replace(entry, study_id=task.study_id) for entry in rejected]
    return result


def _from_headers(
    result: StudyImages,
    folder: Path,
    headers: list[FileHeader],
    header_rejected: list[QuarantineEntry],
    task: StudyTask,
    settings: DicomSettings,
    keys: DeidKeys,
) -> list[QuarantineEntry]:
    """The volume, its de-identified facts and the values that scrub the report, set on
    `result`; the quarantine entries of what was not used."""
    candidates, rejected = _usable_series(headers, task, settings)
    by_path = {header.path: header for header in headers}
    geometry, volume, failed = _first_buildable(candidates, by_path, settings)
    rejected += failed
    if geometry is None:
        reason, message = (
            (Reason.NO_USABLE_SERIES, "no series passed every check")
            if result.files_seen
            else (Reason.NO_FILES, "the folder holds no files")
        )
        rejected.append(QuarantineEntry(str(folder), reason, message))
    _scrub_values_from(result, _identifying_datasets(headers, header_rejected), keys)
    if geometry is not None:
        result.header = _deidentified_facts(geometry, by_path[geometry.slices[0].path], keys)
        result.volume = volume
    return rejected


def _without_images(
    result: StudyImages,
    headers: list[FileHeader],
    header_rejected: list[QuarantineEntry],
    keys: DeidKeys,
) -> None:
    """After an error no check foresaw, the study goes on without images; its report is
    still scrubbed, with the identifying values of its headers."""
    result.volume, result.header = None, {}
    _scrub_values_from(result, _identifying_datasets(headers, header_rejected), keys)


# Header checks that fail on a DICOM file pydicom has parsed: its names still scrub the
# report (a study of MR images only, or of derived images only, has no other header).
_PARSED_BUT_REJECTED = frozenset(
    {
        Reason.MISSING_TRANSFER_SYNTAX,
        Reason.INVALID_ATTRIBUTE_VALUE,
        Reason.PIXEL_DATA_TRUNCATED,
        Reason.MISSING_REQUIRED_ATTRIBUTE,
        Reason.UNSUPPORTED_SOP_CLASS,
        Reason.NO_PIXEL_DATA,
        Reason.UNSUPPORTED_PIXEL_FORMAT,
        Reason.SIZE_LIMIT_EXCEEDED,
        Reason.UNSUPPORTED_TRANSFER_SYNTAX,
        Reason.NO_DECODER,
        Reason.LOCALIZER,
        Reason.PROJECTION_IMAGE,
        Reason.DERIVED_IMAGE,
        Reason.BURNED_IN_ANNOTATION,
    }
)


def _identifying_datasets(
    headers: list[FileHeader], header_rejected: list[QuarantineEntry]
) -> Iterator[Callable[[], Iterable[Dataset]]]:
    """Loaders of the headers whose values scrub the report: one file of each series and
    patient among the usable ones, one of each series among the DICOM files the header
    checks rejected, and every DICOM header that a file without file meta or preamble, or
    an archive, holds (their series are unknown until they are read). Patient and study
    values repeat in every file of a series, and reading each file's whole header would
    cost more than the scan; where a folder mixes patients or series, every one of them is
    scrubbed (more is the safe side)."""
    sampled = {}
    for header in headers:
        sampled.setdefault((header.series_uid, header.patient_id), header)
    for header in sampled.values():
        yield lambda header=header: [header.dataset]
    first_rejected = {}
    for entry in header_rejected:
        if entry.reason in _PARSED_BUT_REJECTED:
            first_rejected.setdefault(entry.series_uid, entry.path)
        elif entry.reason in READ_HERE:
            yield lambda entry=entry: unused_file_headers(entry.path, entry.reason)
    for path in first_rejected.values():
        yield lambda path=path: [dcmread(path, stop_before_pixels=True, defer_size="1 MB")]


def _scrub_values_from(
    result: StudyImages, datasets: Iterator[Callable[[], Iterable[Dataset]]], keys: DeidKeys
) -> None:
    for load in datasets:
        try:
            for dataset in load():
                result.identifiers |= identifying_values(dataset)
                result.pseudonyms |= header_pseudonyms(dataset, keys)
        except Exception:  # a header these cannot read adds nothing
            continue
