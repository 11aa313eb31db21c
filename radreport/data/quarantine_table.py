"""The quarantine table artifact: manifest_line, path, study_id, series_uid, reason_code,
message."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict

import pandas as pd

from radreport.data.quarantine import QuarantineEntry

QUARANTINE_COLUMNS = (
    "manifest_line",
    "path",
    "study_id",
    "series_uid",
    "reason_code",
    "message",
)


def quarantine_table(entries: Iterable[QuarantineEntry]) -> pd.DataFrame:
    rows = [
        {
            **asdict(entry),
            "path": _printable_path(entry.path),
            "message": " ".join(entry.message.split()),  # decoders' reports span lines
            "reason_code": entry.reason.value,
        }
        for entry in entries
    ]
    table = pd.DataFrame(rows, columns=list(QUARANTINE_COLUMNS))
    return table.astype({column: int if column == "manifest_line" else str for column in table})


def _printable_path(path: str) -> str:
    """A file name that is not UTF-8 (kept by Python as lone surrogates) written with
    backslash escapes, so that the table can be stored at all: `b'\\xff.dcm'` -> `\\xff.dcm`."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def count_by_reason(table: pd.DataFrame) -> dict[str, int]:
    return dict(sorted(Counter(table["reason_code"]).items()))


def reason_counts_text(entries: Iterable[QuarantineEntry]) -> str:
    """'code n, code n' for a one-line message that says why entries were rejected."""
    counts = count_by_reason(quarantine_table(entries))
    return ", ".join(f"{code} {n}" for code, n in counts.items())
