"""The bring-your-own-data manifest: one row per study, CSV or JSON Lines, UTF-8.

Fields: study_id, patient_id, impression, report (required) and dicom_dir, labels
(optional). A column mapping lets other layouts load as they are, e.g. IU X-Ray's
{report: findings, patient_id: study_id}. A file that cannot be read as a whole (missing, not
UTF-8, empty, no rows, a missing column) fails with ManifestError. A line that is no row
(malformed JSON, a CSV row with more fields than the header) and a row with a bad value are
rejected into the quarantine table with a reason and their line number, and the rest load;
when none is left, NoUsableStudiesError. Studies without a dicom_dir train the text path only.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from radreport.csv_text import (
    CsvTextError,
    csv_records,
    csv_text,
    header_key,
    header_text,
    separator_hint,
    without_missing_markers,
)
from radreport.data.errors import ManifestError, NoUsableStudiesError
from radreport.data.quarantine import QuarantineEntry, Reason
from radreport.data.quarantine_table import quarantine_table, reason_counts_text
from radreport.data.settings import MANIFEST_FIELDS, REQUIRED_MANIFEST_FIELDS
from radreport.utf8_text import NotUtf8Text, decode_utf8

JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")
TEXT_FIELDS = ("impression", "report")


@dataclass(frozen=True)
class Manifest:
    studies: pd.DataFrame  # MANIFEST_FIELDS as strings (dicom_dir absolute or ""), manifest_line
    rejected: list[QuarantineEntry]
    rows_in: int  # every row and every line that was meant as one

    @property
    def quarantine(self) -> pd.DataFrame:
        return quarantine_table(self.rejected)


@dataclass(frozen=True)
class _ParsedRows:
    table: pd.DataFrame  # the file's columns as text, one row per record
    lines: list[int]  # the file line each record starts on
    bad_lines: list[QuarantineEntry]  # lines that are no record at all


def check_manifest_path(path: Path) -> None:
    """ManifestError where `path` is no manifest file the user may read the folder of:
    checked before a command makes anything."""
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except PermissionError:  # a folder above it cannot be entered
        raise ManifestError(f"manifest {path}: permission denied") from None
    if not exists:
        raise ManifestError(f"manifest {path} does not exist")
    if is_dir:
        raise ManifestError(f"manifest {path} is a directory, not a manifest file")
    if path.suffix.lower() not in (".csv", *JSON_LINES_SUFFIXES):
        raise ManifestError(f"manifest {path}: use .csv or .jsonl, not '{path.suffix}'")
    if not os.access(path, os.R_OK):
        raise ManifestError(f"manifest {path}: permission denied")


def _manifest_text(path: Path) -> str:
    check_manifest_path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ManifestError(f"manifest {path} cannot be read: {error.strerror}") from None
    try:
        text = decode_utf8(data)
    except NotUtf8Text as error:
        raise ManifestError(f"manifest {path}: {error}") from None
    if not text.strip():
        raise ManifestError(f"manifest {path}: empty file")
    if path.suffix.lower() != ".csv":
        return text.removeprefix("\ufeff")  # the byte-order mark some editors write
    try:
        return csv_text(text)
    except CsvTextError as error:
        raise ManifestError(f"manifest {path}: {error}") from None


def _bad_line(path: Path, line: int, problem: str) -> QuarantineEntry:
    return QuarantineEntry(
        str(path), Reason.MANIFEST_BAD_LINE, f"line {line}: {problem}", manifest_line=line
    )


def _csv_records(path: Path, text: str) -> Iterator[tuple[int, list[str]]]:
    """csv_records, a file the csv module cannot read told in one line."""
    try:
        yield from csv_records(text)
    except CsvTextError as error:
        raise ManifestError(f"manifest {path}: not a readable CSV ({error})") from None


def _csv_rows(path: Path, text: str) -> _ParsedRows:
    """The csv module rather than pandas: pandas fails the whole file at the first row with
    too many fields, and its bad-line hook is not told the line number."""
    records = list(_csv_records(path, text))
    _, header = records.pop(0)  # the text is not blank, so it has a first record
    rows, lines, bad_lines = [], [], []
    if records and _opens_a_quote_never_closed(text, *records[-1]):
        line, _ = records.pop()
        problem = "a quote opened in this row is never closed, so the rest of the file is one field"
        bad_lines.append(_bad_line(path, line, problem))
    pieces = _split_rows(records, len(header))
    for index, (line, fields) in enumerate(records):
        if index in pieces:  # one entry for the split row, on its first line
            if pieces[index]:
                bad_lines.append(_bad_line(path, line, pieces[index]))
            continue
        if len(fields) > len(header):
            problem = f"{len(fields)} fields, the header has {len(header)}"
            bad_lines.append(_bad_line(path, line, problem))
            continue
        # Missing trailing fields are empty, as pandas reads them.
        rows.append(fields + [""] * (len(header) - len(fields)))
        lines.append(line)
    return _ParsedRows(pd.DataFrame(rows, columns=header, dtype=str), lines, bad_lines)


def _split_rows(records: list[tuple[int, list[str]]], width: int) -> dict[int, str]:
    """The records that are pieces of one row a line break in an unquoted cell split: a run
    of short records on consecutive lines whose fields, the broken cells joined, are as
    many as the header's. Its first piece would otherwise pass as a row, its report cut.
    A short record alone is a row whose last fields were left out, read as empty. The
    first piece maps to the problem, the others to ""."""
    pieces: dict[int, str] = {}
    index = 0
    while index < len(records):
        fields_so_far, end = len(records[index][1]), index
        while fields_so_far < width and end + 1 < len(records):
            line, fields = records[end + 1]
            if len(fields) >= width or line != records[end][0] + 1:
                break
            end += 1
            fields_so_far += len(fields) - 1  # the broken cell's two parts are one field
        if end > index and fields_so_far == width:
            first, last = records[index][0], records[end][0]
            problem = (
                f"lines {first}-{last} are one row split by a line break in an unquoted "
                "cell (quote the cell)"
            )
            pieces.update(dict.fromkeys(range(index + 1, end + 1), ""))
            pieces[index] = problem
            index = end + 1
        else:
            index += 1
    return pieces


def _opens_a_quote_never_closed(text: str, line: int, fields: list[str]) -> bool:
    """Whether the last record, starting on `line`, holds an unclosed quote: the lenient
    reader then runs its field to the end of the file, swallowing the rows after it, and
    a strict reader of the same lines finds the end of data inside the quote."""
    if not any("\n" in field or "\r" in field for field in fields):
        return False
    rest = "".join(re.findall(r"[^\r\n]*(?:\r\n|\n|\r|$)", text)[line - 1 :])
    try:
        for _ in csv.reader(io.StringIO(rest, newline=""), strict=True):
            pass
    except csv.Error as error:
        return "unexpected end of data" in str(error)
    return False


def _json_object(line: str) -> dict:
    """The line's JSON object; ValueError saying why it is not one."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    for text in _strings_in(record):
        if "\x00" in text:
            raise ValueError("a NUL character (\\u0000) in a value")
        if any("\ud800" <= character <= "\udfff" for character in text):
            raise ValueError("an unpaired surrogate escape (\\ud800 to \\udfff) in a value")
    return record


def _strings_in(value: object) -> Iterator[str]:
    """Every key and string value of a JSON value, at any depth."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings_in(item)


def _json_lines_rows(path: Path, text: str) -> _ParsedRows:
    records, lines, bad_lines = [], [], []
    # "\n" only: str.splitlines would also split at U+2028, which a JSON string may hold.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append(_json_object(line))
        except ValueError as problem:
            bad_lines.append(_bad_line(path, number, str(problem)))
            continue
        lines.append(number)
    table = pd.DataFrame(records, dtype=object).fillna("")
    return _ParsedRows(table.map(_json_value_text), lines, bad_lines)


def _json_value_text(value: object) -> str:
    """A JSON value as the text a CSV cell would hold: strings as they are, anything else as
    JSON (Python's str would write labels {"effusion": true} as {'effusion': True})."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _read_rows(path: Path) -> _ParsedRows:
    text = _manifest_text(path)
    if path.suffix.lower() == ".csv":
        return _csv_rows(path, text)
    return _json_lines_rows(path, text)


def _our_fields(table: pd.DataFrame, columns: Mapping[str, str], path: Path) -> pd.DataFrame:
    """Our fields from the manifest's columns, matched without regard to case, surrounding
    spaces or invisible characters (a spreadsheet's "Study_ID ", as the report tables of
    `evaluate` are read)."""
    headers: dict[str, list[int]] = {}
    for position, column in enumerate(table.columns):
        headers.setdefault(header_key(column), []).append(position)
    fields = {}
    for name in MANIFEST_FIELDS:
        source = columns.get(name, name)
        positions = headers.get(header_key(source), [])
        if len(positions) > 1:
            written = " and ".join(repr(str(table.columns[p])) for p in positions)
            raise ManifestError(
                f"manifest {path}: column '{source}' appears twice in the header ({written})"
            )
        if positions:
            fields[name] = table.iloc[:, positions[0]].astype(str).str.strip()
        elif name in REQUIRED_MANIFEST_FIELDS:
            header = [str(column) for column in table.columns]
            hint = separator_hint(header) or f"the header has {header_text(header)}"
            raise ManifestError(f"manifest {path} has no column '{source}' (field {name}); {hint}")
        else:
            fields[name] = pd.Series("", index=table.index)
    for name in TEXT_FIELDS:  # NA, NULL, ... alone: an empty impression or report
        fields[name] = fields[name].map(without_missing_markers)
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


def other_lines_with_the_same(keys: list[str], lines: list[int]) -> list[list[int]]:
    """For each row, the lines of the other rows with its key ("" matches nothing)."""
    by_key: dict[str, list[int]] = {}
    for key, line in zip(keys, lines, strict=True):
        by_key.setdefault(key, []).append(line)
    return [
        [other for other in by_key[key] if other != line] if key else []
        for key, line in zip(keys, lines, strict=True)
    ]


def lines_text(numbers: list[int]) -> str:
    """'line 3' or 'lines 3, 7' for a message."""
    return ("line " if len(numbers) == 1 else "lines ") + ", ".join(map(str, numbers))


def _row_problem(
    row: dict[str, str], duplicated: bool, lines_sharing_folder: list[int]
) -> tuple[Reason, str] | None:
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
    if lines_sharing_folder:
        # Which row the images belong to cannot be told, and one study's images under two
        # ids could fall into two splits.
        return (
            Reason.MANIFEST_SHARED_DICOM_DIR,
            f"the same dicom_dir as {lines_text(lines_sharing_folder)}",
        )
    if row["labels"] and not _valid_labels(row["labels"]):
        return Reason.MANIFEST_INVALID_LABELS, "labels is not a JSON object of true/false"
    return None


def _nothing_usable(
    path: Path, rejected: list[QuarantineEntry], rows_in: int
) -> NoUsableStudiesError:
    return NoUsableStudiesError(
        f"manifest {path}: none of its {rows_in} rows is usable ({reason_counts_text(rejected)})",
        rejected,
    )


def load_manifest(path: Path, columns: Mapping[str, str] | None = None) -> Manifest:
    """Valid rows and the rejected ones. Raises ManifestError when the file cannot be read,
    has no rows or lacks a required column, NoUsableStudiesError when no row is valid."""
    path = Path(path)
    parsed = _read_rows(path)
    rejected = list(parsed.bad_lines)
    rows_in = len(parsed.table) + len(parsed.bad_lines)
    if len(parsed.table) == 0:
        if not rejected:
            raise ManifestError(f"manifest {path}: no rows, only a header")
        raise _nothing_usable(path, rejected, rows_in)
    studies = _our_fields(parsed.table, columns or {}, path)
    studies["dicom_dir"] = [_resolved_dir(d, path.parent) for d in studies["dicom_dir"]]
    studies["manifest_line"] = parsed.lines
    duplicated = studies["study_id"].duplicated(keep=False) & (studies["study_id"] != "")
    keep = []
    rows = studies.to_dict("records")
    real_folders = [os.path.realpath(d) if d else "" for d in studies["dicom_dir"]]
    sharing = other_lines_with_the_same(real_folders, list(studies["manifest_line"]))
    for line, row, is_duplicate, others in zip(
        parsed.lines, rows, duplicated, sharing, strict=True
    ):
        problem = _row_problem(row, bool(is_duplicate), others)
        keep.append(problem is None)
        if problem:
            reason, message = problem
            message = f"line {line}: {message}"
            entry = QuarantineEntry(str(path), reason, message, row["study_id"], manifest_line=line)
            rejected.append(entry)
    valid = studies[keep].reset_index(drop=True)
    if valid.empty:
        raise _nothing_usable(path, rejected, rows_in)
    return Manifest(studies=valid, rejected=rejected, rows_in=rows_in)
