"""Tables of (study, impression, reference report) in the layouts this project reads.

- IU X-Ray layout: study_id, impression, findings (the findings section is the reference).
- The project's manifest layout: study_id, patient_id, impression, report.
Both become columns study_id, impression, reference; a missing impression is "".
Column names are matched without regard to case, surrounding spaces or invisible characters
("Impression" is "impression"); a file that cannot be read as a UTF-8 CSV is refused with
one line naming it (radreport.csv_text: what else is refused, and the missing-value markers
read as empty).
"""

from __future__ import annotations

import io
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
from radreport.utf8_text import NotUtf8Text, decode_utf8

REPORT_COLUMNS = ("findings", "report")
KNOWN_COLUMNS = ("study_id", "impression", *REPORT_COLUMNS)


def read_csv_text(path: str | Path) -> pd.DataFrame:
    """Every cell as text ("" where empty), known column names normalised; ValueError (one
    line, naming the file) for what is not a readable UTF-8 CSV, and for a row with more or
    fewer fields than the header (a line break in an unquoted cell splits a row in two)."""
    try:
        text = csv_text(decode_utf8(Path(path).read_bytes()))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory, not a CSV file") from None
    except PermissionError:  # the file, or a folder above it
        raise ValueError(f"{path}: permission denied") from None
    except (NotUtf8Text, CsvTextError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    _refuse_uneven_rows(text, path)
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: empty file, no header") from None
    except pd.errors.ParserError as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise ValueError(f"{path}: not a readable CSV ({reason})") from None
    _refuse_an_inferred_index(table, text, path)
    header = _header_cells(text, path)
    return table.rename(columns=_known_column_names(table.columns, header, path))


def _records(text: str):
    """csv_records with pandas' blank lines (only spaces) left out too."""
    for start, record in csv_records(text):
        if not (len(record) == 1 and not record[0].strip()):
            yield start, record


def _refuse_uneven_rows(text: str, path) -> None:
    """ValueError naming the first row whose field count is not the header's. pandas
    refuses a longer row but pads a shorter one: a line break in an unquoted cell then
    makes two rows, the second one's first words its study id."""
    try:
        records = _records(text)
        _, header = next(records)
        for line, record in records:
            if len(record) != len(header):
                hint = separator_hint(header)
                raise ValueError(
                    f"{path}: not a readable CSV (line {line} has {len(record)} fields, the "
                    f"header has {len(header)}){'; ' + hint if hint else ''}"
                )
    except (CsvTextError, StopIteration):  # pandas reads it, or says why it cannot
        return


def _header_cells(text: str, path) -> list[str]:
    """The header as written: pandas renames a repeated header ("impression.1"), which
    would hide the repeat from a match on the name and misname it in the error."""
    try:
        return next((record for _, record in _records(text)), [])
    except CsvTextError:  # what pandas read and the csv module cannot: its names are used
        return []


def _refuse_an_inferred_index(table: pd.DataFrame, text: str, path) -> None:
    """ValueError when pandas took the rows' first fields as an index, which it does when
    the first row has more fields than the header (it refuses such a row anywhere else):
    every column would be read one to the left, the impression as the study id. The line is
    named where the csv module finds it."""
    if isinstance(table.index, pd.RangeIndex):
        return
    reason = "the first row has more fields than the header"
    try:
        records = _records(text)
        _, header = next(records)
        line, row = next(records)
        if len(row) > len(header):
            reason = f"line {line} has {len(row)} fields, the header has {len(header)}"
    except (CsvTextError, StopIteration):  # a cell over the csv module's size limit
        pass
    raise ValueError(f"{path}: not a readable CSV ({reason})")


def _known_column_names(columns, header: list[str], path) -> dict[str, str]:
    """pandas' column name -> our name for the known columns; ValueError when two headers
    name the same one, which would leave it unclear which column holds the text."""
    columns = [str(column) for column in columns]
    # Where the csv module could not read the header as pandas did, pandas' names are used.
    written = header if len(header) == len(columns) else columns
    renames, seen = {}, {}
    for column, name in zip(columns, written, strict=True):
        key = header_key(name)
        if key not in KNOWN_COLUMNS:
            continue
        if key in seen:
            raise ValueError(
                f"{path}: column '{key}' appears twice (headers {seen[key]!r} and {name!r})"
            )
        seen[key] = name
        if key != column:
            renames[column] = key
    return renames


def _require_columns(table: pd.DataFrame, source: str) -> None:
    for column in ("study_id", "impression"):
        if column not in table.columns:
            header = [str(name) for name in table.columns]
            hint = separator_hint(header) or f"the header has {header_text(header)}"
            raise ValueError(f"{source}: missing column '{column}' ({hint})")


def standardize_report_table(table: pd.DataFrame, source: str) -> pd.DataFrame:
    """study_id, impression, reference from either layout; `source` names the table in errors."""
    _require_columns(table, source)
    report_column = next((c for c in REPORT_COLUMNS if c in table.columns), None)
    if report_column is None:
        raise ValueError(
            f"{source}: missing column 'findings' (IU X-Ray layout) or 'report' (manifest layout)"
        )
    standard = table[["study_id", "impression", report_column]].rename(
        columns={report_column: "reference"}
    )
    return _texts_without_markers(standard.fillna("").astype(str).reset_index(drop=True))


def _texts_without_markers(table: pd.DataFrame) -> pd.DataFrame:
    """A missing-value marker (NA, NULL, ...) alone in an impression or a reference is an
    empty one, said and handled as such; study ids are left as written."""
    for column in ("impression", "reference"):
        if column in table.columns:
            table[column] = table[column].map(without_missing_markers)
    return table


def read_report_table(path: str | Path) -> pd.DataFrame:
    """A CSV in either layout as study_id, impression, reference (all text)."""
    table = standardize_report_table(read_csv_text(path), str(path))
    if table.empty:
        raise ValueError(f"{path}: no rows")
    return table


def empty_rows(table: pd.DataFrame, column: str) -> list[int]:
    """Positions of the rows whose `column` is empty or blank (an empty reference: nothing
    to score against; an empty impression: nothing to write from)."""
    return [index for index, text in enumerate(table[column]) if not text.strip()]


def read_prompt_table(path: str | Path) -> pd.DataFrame:
    """A CSV of studies to write reports for: study_id, impression and, when the CSV has a
    findings or report column, the reference (either layout)."""
    table = read_csv_text(path)
    if any(column in table.columns for column in REPORT_COLUMNS):
        table = standardize_report_table(table, str(path))
    else:
        _require_columns(table, str(path))
        table = _texts_without_markers(table[["study_id", "impression"]].reset_index(drop=True))
    if table.empty:
        raise ValueError(f"{path}: no rows")
    return table
