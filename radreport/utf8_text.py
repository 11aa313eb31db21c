"""Text files read as UTF-8, with one line saying where a file is not."""

from __future__ import annotations


class NotUtf8Text(ValueError):
    """The message names the line and byte offset of the first byte that is not UTF-8."""


def decode_utf8(data: bytes) -> str:
    """`data` as text; NotUtf8Text (a file saved as latin-1 by an editor or a spreadsheet)
    instead of the decoder's traceback. Decoded whole, so the position is the file's."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise NotUtf8Text(
            f"line {line}: not UTF-8 text (byte 0x{data[error.start]:02x} at position "
            f"{error.start}); save it as UTF-8"
        ) from None
