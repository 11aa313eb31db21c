"""Tables of (study, impression, reference report) in the layouts this project reads.

- IU X-Ray layout: study_id, impression, findings (the findings section is the reference).
- The project's manifest layout: study_id, patient_id, impression, report.
Both become columns study_id, impression, reference; a missing impression is "".
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

REPORT_COLUMNS = ("findings", "report")


def standardize_report_table(table: pd.DataFrame, source: str) -> pd.DataFrame:
    """study_id, impression, reference from either layout; `source` names the table in errors."""
    for column in ("study_id", "impression"):
        if column not in table.columns:
            raise ValueError(f"{source}: missing column '{column}'")
    report_column = next((c for c in REPORT_COLUMNS if c in table.columns), None)
    if report_column is None:
        raise ValueError(
            f"{source}: missing column 'findings' (IU X-Ray layout) or 'report' (manifest layout)"
        )
    standard = table[["study_id", "impression", report_column]].rename(
        columns={report_column: "reference"}
    )
    return standard.fillna("").astype(str).reset_index(drop=True)


def read_report_table(path: str | Path) -> pd.DataFrame:
    """A CSV in either layout as study_id, impression, reference (all text)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return standardize_report_table(table, str(path))


def read_prompt_table(path: str | Path) -> pd.DataFrame:
    """A CSV of studies to write reports for: study_id, impression and, when the CSV has a
    findings or report column, the reference (either layout)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if any(column in table.columns for column in REPORT_COLUMNS):
        return standardize_report_table(table, str(path))
    for column in ("study_id", "impression"):
        if column not in table.columns:
            raise ValueError(f"{path}: missing column '{column}'")
    if table.empty:
        raise ValueError(f"{path}: no rows")
    return table[["study_id", "impression"]].astype(str).reset_index(drop=True)
