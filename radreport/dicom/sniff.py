"""Name what a file is when strict DICOM reading refuses it, so the user knows what to fix.

We never read with force=True (a PNG or an empty file would "read" as an empty dataset);
instead the first bytes tell an exported picture, an archive or a stray text file apart
from a DICOM dataset written without its preamble and file meta header.
"""

from __future__ import annotations

import codecs

from radreport.data.quarantine import Reason

SNIFF_BYTES = 512

IMAGE_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF8": "GIF",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"BM": "BMP",
}
ARCHIVE_SIGNATURES = {b"\x1f\x8b": "gzip", b"PK\x03\x04": "zip", b"BZh": "bzip2"}

# A dataset written without file meta starts with a little-endian group 0x0008 tag; some
# writers leave a stray padding byte before it (pydicom's no_meta.dcm has one).
RAW_DATASET_GROUP = b"\x08\x00"
RAW_DATASET_SEARCH = 4
DICOM_PREFIX = b"DICM"
# The file meta group (0002, always explicit VR little endian) with no preamble before it:
# a tag of group 2, then a VR its elements use.
_FILE_META_VRS = (b"UL", b"OB", b"UI", b"AE", b"SH", b"CS")


def starts_with_file_meta(head: bytes) -> bool:
    """Whether the file starts with its file meta group, the 128-byte preamble and the
    'DICM' prefix left out: such a file is read as DICOM all the same."""
    return head[:2] == b"\x02\x00" and head[4:6] in _FILE_META_VRS


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        # Incremental, so a character cut at the end of the sniffed bytes is not an error.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def classify_non_dicom(head: bytes) -> tuple[Reason, str]:
    """Reason and message for the first bytes of a file that strict dcmread rejected."""
    for signature, kind in IMAGE_SIGNATURES.items():
        if head.startswith(signature):
            return Reason.NOT_DICOM_IMAGE_FILE, f"a {kind} picture, not a DICOM file"
    for signature, kind in ARCHIVE_SIGNATURES.items():
        if head.startswith(signature):
            return Reason.NOT_DICOM_ARCHIVE, f"a {kind} archive: extract it first"
    if head.startswith(DICOM_PREFIX):
        return (
            Reason.MISSING_PREAMBLE,
            "DICOM file without its 128-byte preamble (it starts with 'DICM'); re-export as "
            "DICOM Part 10",
        )
    if RAW_DATASET_GROUP in head[:RAW_DATASET_SEARCH]:
        return (
            Reason.MISSING_FILE_META,
            "DICOM dataset without preamble and file meta header; re-export as DICOM Part 10",
        )
    if _looks_like_text(head):
        return Reason.NOT_DICOM_TEXT_FILE, "a text file, not a DICOM file"
    return Reason.NOT_DICOM, "no DICOM preamble and no known file signature"
