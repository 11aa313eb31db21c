"""The bring-your-own-data manifest: one row per study, CSV or JSON Lines.

Fields: study_id, patient_id, impression, report (required) and dicom_dir, labels
(optional). A column mapping lets other layouts load as they are, e.g. IU X-Ray's
{report: findings, patient_id: study_id}. A missing column fails the whole file; a bad row
is rejected into the quarantine table with a reason, and the rest load. Studies without a
dicom_dir train the text path only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from radreport.data.errors import ManifestError
from radreport.data.quarantine import QuarantineEntry, Reason
from radreport.data.quarantine_table import count_by_reason, quarantine_table
from radreport.data.settings import MANIFEST_FIELDS, REQUIRED_MANIFEST_FIELDS

JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")


@dataclass(frozen=True)
class Manifest:
    studies: pd.DataFrame  # MANIFEST_FIELDS as strings; dicom_dir absolute or ""
    rejected: list[QuarantineEntry]
    rows_in: int

    @property
    def quarantine(self) -> pd.DataFrame:
        return quarantine_table(self.rejected)


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        if path.suffix.lower() in JSON_LINES_SUFFIXES:
            table = pd.read_json(path, lines=True, dtype=False)
            return table.fillna("").astype(str)
    except (ValueError, pd.errors.ParserError) as error:
        raise ManifestError(f"manifest {path} cannot be parsed: {type(error).__name__}") from error
    raise ManifestError(f"manifest {path}: use .csv or .jsonl, not '{path.suffix}'")


def _our_fields(table: pd.DataFrame, columns: Mapping[str, str], path: Path) -> pd.DataFrame:
    fields = {}
    for name in MANIFEST_FIELDS:
        source = columns.get(name, name)
        if source in table.columns:
            fields[name] = table[source].astype(str).str.strip()
        elif name in REQUIRED_MANIFEST_FIELDS:
            raise ManifestError(f"manifest {path} has no column '{source}' (field {name})")
        else:
            fields[name] = pd.Series("", index=table.index)
    return pd.DataFrame(fields)


def _valid_labels(text: str) -> bool:
    try:
        labels = json.loads(text)
    except json.JSONDecodeError:
        return False
    return isinstance(labels, dict) and all(isinstance(v, bool) for v in labels.values())


def _resolved_dir(dicom_dir: str, base: Path) -> str:
    if not dicom_dir:
        return ""
    folder = Path(dicom_dir)
    return str(folder if folder.is_absolute() else base / folder)


def _row_problem(row: dict[str, str], duplicated: bool) -> tuple[Reason, str] | None:
    if not row["study_id"] or not row["patient_id"]:
        return Reason.MANIFEST_MISSING_ID, "empty study_id or patient_id"
    if duplicated:
        return Reason.MANIFEST_DUPLICATE_STUDY_ID, "study_id appears in more than one row"
    if not row["impression"]:
        return Reason.MANIFEST_EMPTY_IMPRESSION, "empty impression"
    if not row["report"]:
        return Reason.MANIFEST_EMPTY_REPORT, "empty report"
    if row["dicom_dir"] and not Path(row["dicom_dir"]).is_dir():
        return Reason.MANIFEST_DICOM_DIR_NOT_FOUND, "dicom_dir is not an existing folder"
    if row["labels"] and not _valid_labels(row["labels"]):
        return Reason.MANIFEST_INVALID_LABELS, "labels is not a JSON object of true/false"
    return None


def load_manifest(path: Path, columns: Mapping[str, str] | None = None) -> Manifest:
    """Valid rows and the rejected ones. Raises ManifestError when the file cannot be read,
    lacks a required column, or has no valid row at all."""
    path = Path(path)
    studies = _our_fields(_read_table(path), columns or {}, path)
    studies["dicom_dir"] = [_resolved_dir(d, path.parent) for d in studies["dicom_dir"]]
    duplicated = studies["study_id"].duplicated(keep=False) & (studies["study_id"] != "")
    rejected, keep = [], []
    rows = studies.to_dict("records")
    for number, (row, is_duplicate) in enumerate(zip(rows, duplicated, strict=True), start=1):
        problem = _row_problem(row, bool(is_duplicate))
        keep.append(problem is None)
        if problem:
            reason, message = problem
            message = f"row {number}: {message}"
            rejected.append(QuarantineEntry(str(path), reason, message, row["study_id"]))
    valid = studies[keep].reset_index(drop=True)
    if valid.empty:
        by_reason = count_by_reason(quarantine_table(rejected))
        counts = ", ".join(f"{code} {n}" for code, n in by_reason.items())
        raise ManifestError(
            f"manifest {path}: none of its {len(studies)} rows is usable ({counts or 'no rows'})"
        )
    return Manifest(studies=valid, rejected=rejected, rows_in=len(studies))
