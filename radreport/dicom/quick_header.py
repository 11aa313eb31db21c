"""The header values the checks need, read straight from the bytes of a classic CT file.

Why not pydicom here: its header parse (dcmread, even with stop_before_pixels) was more
than half of our CPU per slice — ~0.7 ms per demo file against ~0.2 ms for this reader
(open, read, walk with struct, convert; benchmarks/header_read.py) — and ingestion could
not reach its throughput target with it.
This reader is deliberately narrow: a preamble and file meta, a little-endian transfer
syntax that is not deflated, a classic CT Image Storage file, a VR on every element that
agrees with the data dictionary for the ~20 values it converts, ASCII text. Anything else
— or anything it does not understand, a truncated element included — makes it return
None, and the file goes through pydicom exactly as before, so every broken or unusual file
is diagnosed by pydicom. tests/dicom/test_quick_header.py checks that both readers give the
same values for every file of pydicom's test set and for written CT files.
"""

from __future__ import annotations

import functools
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.uid import UID, CTImageStorage
from pydicom.valuerep import VR

PREAMBLE_BYTES = 128
MAGIC = b"DICM"
FIRST_READ_BYTES = 1 << 16  # headers are small; the rest of the file is read only if needed
UNDEFINED_LENGTH = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA_TAG = 0x7FE00010
PIXEL_DATA_TAGS = frozenset((0x7FE00008, 0x7FE00009, PIXEL_DATA_TAG))  # float, double, integer
TRANSFER_SYNTAX_TAG, MEDIA_SOP_CLASS_TAG = 0x00020010, 0x00020002
# Explicit VRs whose length takes 4 bytes after 2 reserved ones (PS3.5 7.1.2).
LONG_LENGTH_VRS = frozenset(
    vr.encode()
    for vr in ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV")
)
KNOWN_VRS = frozenset(vr.value.encode() for vr in VR if len(vr.value) == 2)
EXPLICIT_SHORT = struct.Struct("<HH2sH")
IMPLICIT = struct.Struct("<HHL")
LONG_LENGTH = struct.Struct("<L")


class _NeedsPydicom(Exception):
    """The file is outside what this reader handles."""


class _NeedsMoreBytes(Exception):
    """The header goes on past the bytes read so far."""


@dataclass(frozen=True)
class QuickHeader:
    """Converted values by keyword (absent and empty ones left out), the transfer syntax,
    the offset of the pixel data element (the file size when there is none) and where its
    value lies when its length is defined."""

    values: dict[str, object]
    transfer_syntax: UID
    pixel_offset: int
    pixel_value: tuple[int, int] | None  # (offset, length) of a native Pixel Data value


def decimal_numbers(raw: bytes, number: type) -> object:
    """A DS/IS value (backslash-separated decimal strings) as float/int, or a list of them;
    raises ValueError on anything that is not a number. pydicom builds a validated DSfloat
    per item, which cost more than the rest of the header checks."""
    text = raw.decode("ascii").strip(" \x00")
    if not text:
        return None
    items = [number(item) for item in text.split("\\")]
    return items[0] if len(items) == 1 else items


def _strings(raw: bytes, strip_each: bool) -> object:
    # As pydicom: trailing padding goes; text VRs (LO) also strip each value's padding.
    if b"\x1b" in raw:
        raise _NeedsPydicom("ISO 2022 escape sequence: needs the character set")
    items = raw.decode("ascii").rstrip(" \x00").split("\\")
    if strip_each:
        items = [item.rstrip(" \x00") for item in items]
    return items[0] if len(items) == 1 else items


def _shorts(code: str, vr: str):
    """The converter of 16-bit integers: `code` H (US) or h (SS)."""

    def convert(raw: bytes) -> object:
        if len(raw) % 2:
            raise _NeedsPydicom(f"odd {vr} length")
        items = list(struct.unpack(f"<{len(raw) // 2}{code}", raw))
        return None if not items else items[0] if len(items) == 1 else items

    return convert


def _uid(raw: bytes) -> str:
    value = raw.decode("ascii").rstrip("\x00 ")
    if "\\" in value:
        raise _NeedsPydicom("multi-valued UID")
    return value


CONVERTERS = {
    "UI": _uid,
    "SS": _shorts("h", "SS"),
    "CS": lambda raw: _strings(raw, strip_each=False),
    "LO": lambda raw: _strings(raw, strip_each=True),
    "US": _shorts("H", "US"),
    "DS": lambda raw: decimal_numbers(raw, float),
    "IS": lambda raw: decimal_numbers(raw, int),
}


class _Walker:
    """Steps over the data elements of a byte string, sequences included."""

    def __init__(self, data: bytes | mmap.mmap, complete: bool):
        self.data = data
        self.complete = complete  # whether `data` is the whole file

    def ensure(self, end: int) -> None:
        if end > len(self.data):
            raise _NeedsPydicom("truncated") if self.complete else _NeedsMoreBytes()

    def element(self, pos: int, implicit: bool) -> tuple[int, bytes | None, int, int]:
        """(tag, VR or None, value offset, value length) of the element at `pos`."""
        self.ensure(pos + 8)
        if implicit:
            group, number, length = IMPLICIT.unpack_from(self.data, pos)
            return group << 16 | number, None, pos + 8, length
        group, number, vr, length = EXPLICIT_SHORT.unpack_from(self.data, pos)
        if group == 0xFFFE:
            raise _NeedsPydicom("item tag outside a sequence")
        if vr not in KNOWN_VRS:
            raise _NeedsPydicom("not a VR")
        if vr in LONG_LENGTH_VRS:
            self.ensure(pos + 12)
            (length,) = LONG_LENGTH.unpack_from(self.data, pos + 8)
            return group << 16 | number, vr, pos + 12, length
        return group << 16 | number, vr, pos + 8, length

    def end(self, vr: bytes | None, start: int, length: int, implicit: bool) -> int:
        """Offset after the value that starts at `start`."""
        if length != UNDEFINED_LENGTH:
            self.ensure(start + length)
            return start + length
        # An undefined length is a sequence (an UN one is encoded implicit, PS3.5 6.2.2).
        return self.skip_sequence(start, implicit or vr == b"UN")

    def skip(self, pos: int, implicit: bool) -> int:
        """Offset after the element at `pos`."""
        return self.end(*self.element(pos, implicit)[1:], implicit)

    def skip_sequence(self, pos: int, implicit: bool) -> int:
        while True:
            self.ensure(pos + 8)
            group, number, length = IMPLICIT.unpack_from(self.data, pos)
            tag, pos = group << 16 | number, pos + 8
            if tag == SEQUENCE_END:
                return pos
            if tag != ITEM:
                raise _NeedsPydicom("unexpected tag in a sequence")
            if length != UNDEFINED_LENGTH:
                self.ensure(pos + length)
                pos += length
                continue
            while True:  # an item of undefined length ends at its delimiter
                self.ensure(pos + 4)
                group, number = struct.unpack_from("<HH", self.data, pos)
                if group << 16 | number == ITEM_END:
                    pos += 8
                    break
                pos = self.skip(pos, implicit)


# A dictionary VR that depends on the data (PixelPaddingValue: US or SS by
# PixelRepresentation): the VRs an explicit file may write, the first for implicit files
# (whose reader then fixes the sign, as pydicom does).
AMBIGUOUS_VRS = {"US or SS": ("US", "SS")}


def allowed_vrs(dictionary_vr: str) -> tuple[str, ...]:
    return AMBIGUOUS_VRS.get(dictionary_vr, (dictionary_vr,))


@functools.cache
def _wanted(keywords: tuple[str, ...]) -> dict[int, tuple[str, str]]:
    """tag -> (keyword, dictionary VR) of the values to convert."""
    wanted = {tag_for_keyword(k): (k, dictionary_VR(tag_for_keyword(k))) for k in keywords}
    unsupported = sorted(
        k for k, vr in wanted.values() if not set(allowed_vrs(vr)) <= set(CONVERTERS)
    )
    if unsupported:
        raise ValueError(f"no quick conversion for {unsupported}")
    return wanted


def _looks_explicit(data: bytes | mmap.mmap, pos: int) -> bool:
    # pydicom's test for a file whose VR encoding differs from its transfer syntax.
    return len(data) >= pos + 6 and 0x40 < data[pos + 4] < 0x5B and 0x40 < data[pos + 5] < 0x5B


def _parse(
    data: bytes | mmap.mmap, complete: bool, wanted: dict[int, tuple[str, str]]
) -> QuickHeader:
    if data[PREAMBLE_BYTES : PREAMBLE_BYTES + 4] != MAGIC:
        raise _NeedsPydicom("no DICM prefix")
    walker = _Walker(data, complete)
    pos, meta = PREAMBLE_BYTES + 4, {}
    while pos + 2 <= len(data) and struct.unpack_from("<H", data, pos)[0] == 0x0002:
        tag, vr, start, length = walker.element(pos, implicit=False)
        end = walker.end(vr, start, length, implicit=False)
        if tag in (TRANSFER_SYNTAX_TAG, MEDIA_SOP_CLASS_TAG):
            meta[tag] = _uid(data[start:end])
        pos = end
    syntax = UID(meta.get(TRANSFER_SYNTAX_TAG, ""))
    if not syntax or not syntax.is_transfer_syntax:
        raise _NeedsPydicom("no or unknown transfer syntax")
    if not syntax.is_little_endian or syntax.is_deflated:
        raise _NeedsPydicom("big endian or deflated")
    implicit = syntax.is_implicit_VR
    if not complete:
        walker.ensure(pos + 6)  # the bytes _looks_explicit peeks at
    if _looks_explicit(data, pos) == implicit:
        raise _NeedsPydicom("VR encoding differs from the transfer syntax")
    raw: dict[str, tuple[str, bytes]] = {}
    pixel_value = None
    while pos < len(data) or not complete:
        tag, vr, start, length = walker.element(pos, implicit)
        if tag in PIXEL_DATA_TAGS:
            if length != UNDEFINED_LENGTH and tag == PIXEL_DATA_TAG:
                pixel_value = (start, length)
            break
        if tag >> 16 in (0x0000, 0x0002, 0xFFFE):
            raise _NeedsPydicom("command, meta or item element in the dataset")
        end = walker.end(vr, start, length, implicit)
        if tag in wanted:
            keyword, dictionary_vr = wanted[tag]
            allowed = allowed_vrs(dictionary_vr)
            if vr is not None and vr.decode() not in allowed:
                raise _NeedsPydicom(f"{keyword} has VR {vr!r}")
            if length == UNDEFINED_LENGTH:
                raise _NeedsPydicom(f"{keyword} has undefined length")
            raw[keyword] = (vr.decode() if vr is not None else allowed[0], data[start:end])
        pos = end
    values = {}
    for keyword, (vr, value) in raw.items():
        converted = CONVERTERS[vr](value)
        if converted not in (None, ""):
            values[keyword] = converted
    if "SOPClassUID" not in values and meta.get(MEDIA_SOP_CLASS_TAG):
        values["SOPClassUID"] = meta[MEDIA_SOP_CLASS_TAG]
    if values.get("SOPClassUID") != CTImageStorage:
        raise _NeedsPydicom("not classic CT Image Storage")
    return QuickHeader(values, syntax, pos, pixel_value)


def read_quick_header(path: Path, keywords: tuple[str, ...]) -> QuickHeader | None:
    """The values of `keywords` (VRs UI, CS, LO, US, DS, IS, top-level only) of a classic CT
    file, or None when the file must be read by pydicom."""
    wanted = _wanted(keywords)
    try:
        with open(path, "rb") as fp:
            data = fp.read(FIRST_READ_BYTES)
            try:
                return _parse(data, len(data) < FIRST_READ_BYTES, wanted)
            except _NeedsMoreBytes:
                # Mapped, not read: a header can hold a private element of any size, and
                # the walk only steps over it.
                with mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ) as whole:
                    return _parse(whole, True, wanted)
    except (_NeedsPydicom, _NeedsMoreBytes, struct.error, UnicodeDecodeError, ValueError, OSError):
        return None
