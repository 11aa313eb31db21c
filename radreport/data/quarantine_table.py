"""The quarantine table artifact: manifest_line, path, study_id, series_uid, reason_code,
message."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict

import pandas as pd

from radreport.data.quarantine import QuarantineEntry
from radreport.data.quarantine_paths import printable_path

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
            "path": printable_path(entry.path),
            "message": " ".join(entry.message.split()),  # decoders' reports span lines
            "reason_code": entry.reason.value,
        }
        for entry in entries
    ]
    table = pd.DataFrame(rows, columns=list(QUARANTINE_COLUMNS))
    return table.astype({column: int if column == "manifest_line" else str for column in table})


SOURCE_COLUMNS = ("manifest_line", "path", "source_path")


def quarantine_sources_table(sources: Iterable[tuple[QuarantineEntry, str]]) -> pd.DataFrame:
    """(located entry, its raw path) pairs -> the table that finds each quarantined file again:
    raw paths, for the data's owner only, never an artifact."""
    rows = [
        (entry.manifest_line, printable_path(entry.path), printable_path(raw))
        for entry, raw in sources
    ]
    return pd.DataFrame(rows, columns=list(SOURCE_COLUMNS)).astype(
        {"manifest_line": int, "path": str, "source_path": str}
    )


def count_by_reason(table: pd.DataFrame) -> dict[str, int]:
    return dict(sorted(Counter(table["reason_code"]).items()))


def reason_counts_text(entries: Iterable[QuarantineEntry]) -> str:
    """'code n, code n' for a one-line message that says why entries were rejected."""
    counts = count_by_reason(quarantine_table(entries))
    return ", ".join(f"{code} {n}" for code, n in counts.items())
