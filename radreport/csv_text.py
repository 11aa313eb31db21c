"""CSV text as spreadsheets and databases write it, read alike by the manifest and the report
tables: a byte-order mark and Excel's separator line are passed over, and what would be read
wrong without a word is refused with the line it is on (a NUL character, quotes escaped
with backslashes). Header names match without regard to case, surrounding spaces or
invisible characters, and a cell holding only a missing-value marker (R's NA, SQL's NULL,
MySQL's \\N) is empty.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

from radreport.visible_text import visible

# Excel's first line "sep=," names the separator for Excel alone.
_SEPARATOR_LINE = re.compile(r"\Asep=(.)(\r\n|\r|\n)")
_SEPARATOR_NAMES = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}
# A backslash before a quote that is not doubled and does not end the field: a dump's \"
# inside a quoted field. A field that ends in a backslash ("C:\data\",) is left alone.
_BACKSLASH_QUOTE = re.compile(r'(?<!\\)\\"(?=[^",\r\n])')
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Written where a value is missing by R (NA), pandas and numpy (nan, <NA>), SQL exports
# (NULL), MySQL and PostgreSQL dumps (\N) and Excel (#N/A).
MISSING_VALUE_MARKERS = frozenset(
    {"NA", "N/A", "n/a", "NaN", "nan", "<NA>", "NULL", "null", "\\N", "#N/A"}
)


class CsvTextError(ValueError):
    """What makes a text unreadable as CSV, with its line; the caller names the file."""


def line_of(text: str, position: int) -> int:
    return len(_LINE_BREAK.findall(text, 0, position)) + 1


def csv_text(text: str) -> str:
    """`text` without a byte-order mark, and with Excel's `sep=,` line left empty (so every
    line keeps its number); CsvTextError for a separator line naming another separator, a
    NUL character, or a quote escaped with a backslash."""
    text = text.removeprefix("\ufeff")
    separator_line = _SEPARATOR_LINE.match(text)
    if separator_line:
        separator = separator_line.group(1)
        if separator != ",":
            name = _SEPARATOR_NAMES.get(separator, repr(separator))
            raise CsvTextError(
                f"line 1: the file says its fields are separated by {name} "
                f"(sep={separator}); save it comma-separated"
            )
        text = text[len("sep=,") :]
    nul = text.find("\x00")
    if nul >= 0:
        raise CsvTextError(
            f"line {line_of(text, nul)}: a NUL character, which no text file holds (a file "
            "saved as UTF-16, or a damaged one)"
        )
    escaped = _BACKSLASH_QUOTE.search(text)
    if escaped:
        raise CsvTextError(
            f'line {line_of(text, escaped.start())}: a quote escaped with a backslash (\\"), '
            'as database dumps write it; CSV doubles a quote inside a quoted field (""): '
            "export it that way"
        )
    _check_quotes(text)
    return text


def _check_quotes(text: str) -> None:
    """CsvTextError where a quoted cell goes on after its closing quote ("No "quoted"
    effusion"): the lenient reader would keep the rest, quotes and all, as if nothing were
    wrong. A quote never closed is left to the caller (the manifest quarantines its row)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for _ in reader:
            pass
    except csv.Error as error:
        if "expected after" not in str(error):  # other faults: csv_records names them
            return
        raise CsvTextError(
            f"line {reader.line_num}: a quoted cell goes on after its closing quote ({error}); "
            'a quote inside a quoted cell is doubled ("")'
        ) from None


def csv_records(text: str) -> Iterator[tuple[int, list[str]]]:
    """The csv module's non-empty records, each with the file line it starts on (a quoted
    cell may span lines); CsvTextError naming the line where the csv module fails."""
    reader = csv.reader(io.StringIO(text, newline=""))
    start = 1
    try:
        for fields in reader:
            if fields:
                yield start, fields
            start = reader.line_num + 1
    except csv.Error as error:
        raise CsvTextError(f"line {reader.line_num}: {error}") from None


def header_key(name: object) -> str:
    """A header name as it is matched: without letter case, surrounding spaces or invisible
    format characters."""
    return visible(str(name)).strip().lower()


def separator_hint(header: list[str]) -> str:
    """For an error about a header read as one column: which other separator it holds."""
    if len(header) == 1:
        for separator, name in _SEPARATOR_NAMES.items():
            if separator in str(header[0]):
                return f"the header is one column separated by {name}: save it comma-separated"
    return ""


def header_text(header: list[str]) -> str:
    """The header as read, for an error naming a missing column; invisible characters are
    shown escaped."""
    return ", ".join(
        ascii(str(name)) if not str(name).isprintable() else repr(str(name)) for name in header
    )


def without_missing_markers(value: str) -> str:
    """ "" for a cell holding only a missing-value marker or nothing visible (spaces and
    invisible characters: a pasted zero-width space is no report), else the cell."""
    shown = visible(value).strip()
    return "" if not shown or shown in MISSING_VALUE_MARKERS else value
