"""Where a generated report ends, by the shape of the reports the model was trained on.

A model pushed to write longer reports (a negative stop bias) can, past the end of its
report, begin a second one instead of stopping. On the demo's sectioned reports, trained with
one retrieved example, a quarter to a third of the reports did: a blank line, then
"COMPARISON: ..." again (BENCHMARKS.md, thirty-seventh and thirty-eighth sessions). The
stop bias calibration cannot see it, since the second report makes the length look right.

Two marks of a second report, each used only where the training reports do not have it:
- a blank line;
- a line opening with a section label ("COMPARISON:", "Lungs and pleura:") the report has
  already used.
The report is the text before the first of them. Labels are at most five words before a
colon at the start of a line, compared without case or extra spaces. A mark found in at most
1 % of the training reports (TOLERATED_SHARE) is still used: real report exports carry a few
stray blank lines or pasted-together reports, and those few should not decide for the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

TOLERATED_SHARE = 0.01

_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")
_LABEL = re.compile(
    r"^[^\S\n]*([A-Za-z][A-Za-z/&()'-]*(?:[^\S\n]+[A-Za-z/&()'-]+){0,4})[^\S\n]*:",
    re.MULTILINE,
)


def _first_repeated_label(text: str) -> int | None:
    """Where the line that repeats an earlier line's label starts, if one does."""
    seen = set()
    for match in _LABEL.finditer(text):
        label = " ".join(match.group(1).upper().split())
        if label in seen:
            return match.start()
        seen.add(label)
    return None


@dataclass(frozen=True)
class ReportShape:
    """`ends_at_blank_line` / `ends_at_repeated_label`: whether that mark ends a report."""

    ends_at_blank_line: bool
    ends_at_repeated_label: bool

    @classmethod
    def learn(cls, reports: Iterable[str]) -> ReportShape:
        """The marks that at most TOLERATED_SHARE of `reports` (the training reports) have."""
        count = blank_lines = repeated_labels = 0
        for report in reports:
            text = report.strip()
            count += 1
            blank_lines += _BLANK_LINE.search(text) is not None
            repeated_labels += _first_repeated_label(text) is not None
        tolerated = TOLERATED_SHARE * count
        return cls(
            ends_at_blank_line=blank_lines <= tolerated,
            ends_at_repeated_label=repeated_labels <= tolerated,
        )

    def report_end(self, text: str) -> int | None:
        """Where, in `text` (a report, leading space stripped), the first mark of a second
        report begins; None if it has none."""
        ends = []
        if self.ends_at_blank_line and (blank := _BLANK_LINE.search(text)) is not None:
            ends.append(blank.start())
        if self.ends_at_repeated_label and (label := _first_repeated_label(text)) is not None:
            ends.append(label)
        return min(ends, default=None)

    def cut(self, text: str) -> str:
        """The report in `text`: what comes before any second one, stripped."""
        text = text.strip()
        end = self.report_end(text)
        return text if end is None else text[:end].strip()
