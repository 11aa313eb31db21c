"""From the usable files of one study folder to the candidate series, best first.

A folder is meant to hold one study of the manifest's patient. Files of another patient,
a second study (whose report would be ambiguous), duplicate SOP instances and series that
fail the geometry checks are quarantined here; what remains are series that can be built.
"""

from __future__ import annotations

from collections import defaultdict

from radreport.data.pseudonyms import canonical_patient_id
from radreport.data.quarantine import QuarantineEntry, Reason
from radreport.data.settings import DicomSettings
from radreport.dicom.geometry import GeometryProblem, StackGeometry, stack_geometry
from radreport.dicom.header import FileHeader


def _entry(header: FileHeader, reason: Reason, message: str) -> QuarantineEntry:
    return QuarantineEntry(header.path, reason, message, series_uid=header.series_uid)


def drop_other_patients(
    headers: list[FileHeader], patient_id: str
) -> tuple[list[FileHeader], list[QuarantineEntry]]:
    kept, rejected = [], []
    wanted = canonical_patient_id(patient_id)
    for header in headers:
        if canonical_patient_id(header.patient_id) == wanted:
            kept.append(header)
        else:
            message = "header PatientID differs from the manifest's patient_id"
            rejected.append(_entry(header, Reason.PATIENT_ID_MISMATCH, message))
    return kept, rejected


def drop_ambiguous_studies(
    headers: list[FileHeader],
) -> tuple[list[FileHeader], list[QuarantineEntry]]:
    """Images of two studies in one folder cannot be paired with one report: use neither."""
    if len({header.study_uid for header in headers}) <= 1:
        return headers, []
    message = "several StudyInstanceUIDs in one folder: which one the report describes is unknown"
    return [], [_entry(h, Reason.MULTIPLE_STUDIES_IN_FOLDER, message) for h in headers]


def drop_duplicate_instances(
    headers: list[FileHeader],
) -> tuple[list[FileHeader], list[QuarantineEntry]]:
    """The first file (in path order) of each SOPInstanceUID is kept."""
    kept: dict[str, FileHeader] = {}
    rejected = []
    for header in sorted(headers, key=lambda h: h.path):
        sop_uid = header.sop_uid
        if sop_uid in kept:
            message = "SOPInstanceUID already read from another file"
            rejected.append(_entry(header, Reason.DUPLICATE_SOP_INSTANCE, message))
        else:
            kept[sop_uid] = header
    return list(kept.values()), rejected


def candidate_series(
    headers: list[FileHeader], settings: DicomSettings
) -> tuple[list[StackGeometry], list[QuarantineEntry]]:
    """Geometrically sound series, most slices first, then the thinnest spacing."""
    by_series: dict[str, list[FileHeader]] = defaultdict(list)
    for header in headers:
        by_series[header.series_uid].append(header)
    candidates, rejected = [], []
    for series_uid in sorted(by_series):
        for files, geometry in _stacks_of(by_series[series_uid], settings):
            if isinstance(geometry, GeometryProblem):
                rejected += [
                    _entry(f, geometry.reason, geometry.at.get(f.path, geometry.message))
                    for f in files
                ]
            else:
                candidates.append(geometry)
    candidates.sort(key=lambda g: (-len(g.slices), g.median_spacing_mm, g.slices[0].series_uid))
    return candidates, rejected


def _geometry(files: list[FileHeader], settings: DicomSettings) -> StackGeometry | GeometryProblem:
    return stack_geometry([s for f in files for s in f.slices], settings)


def _stacks_of(
    files: list[FileHeader], settings: DicomSettings
) -> list[tuple[list[FileHeader], StackGeometry | GeometryProblem]]:
    """A series' files as stacks, each with its geometry: the whole series, or, where its
    slices share positions and its files carry more than one AcquisitionNumber (a scan
    repeated within the series), each acquisition on its own, so that either can be the
    volume rather than neither."""
    whole = _geometry(files, settings)
    acquisitions = sorted({f.acquisition for f in files}, key=lambda number: (len(number), number))
    shared_positions = (
        isinstance(whole, GeometryProblem) and whole.reason == Reason.DUPLICATE_SLICE_POSITION
    )
    if not shared_positions or len(acquisitions) < 2:
        return [(files, whole)]
    parts = [[f for f in files if f.acquisition == number] for number in acquisitions]
    return [(part, _geometry(part, settings)) for part in parts]
