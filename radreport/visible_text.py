"""Text without its invisible format characters (Unicode category Cf: a zero-width space, a
soft hyphen, a stray byte-order mark), which a paste from a web page or a word processor
leaves in ids, headers and reports where no reader sees them."""

from __future__ import annotations

import unicodedata


def visible(text: str) -> str:
    return "".join(c for c in text if unicodedata.category(c) != "Cf")
