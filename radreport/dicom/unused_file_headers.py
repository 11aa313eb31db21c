"""Headers of DICOM files that ingestion cannot use as they are, read only for the names and
ids that scrub the study's report: a dataset written without its file meta or its preamble,
and the DICOM files inside an archive (which the user is told to extract). Their images are
lost to the study, but the report must not keep the patient's name because of it.
"""

from __future__ import annotations

import bz2
import gzip
import io
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from radreport.data.quarantine import Reason
from radreport.dicom.sniff import DICOM_PREFIX

# Members of one archive read for names at most: a study's series repeat them in every file.
MAX_ARCHIVE_MEMBERS = 20_000
# A header is within the first bytes; a preamble-less file's are read into memory.
_HEADER_BYTES = 16 * 1024 * 1024
_PREAMBLE = bytes(128)
_STREAM_OPENERS = {b"\x1f\x8b": gzip.open, b"BZh": bz2.open}

# The reasons whose files hold a DICOM header that only these readers reach.
READ_HERE = frozenset({Reason.MISSING_FILE_META, Reason.MISSING_PREAMBLE, Reason.NOT_DICOM_ARCHIVE})


def _header(stream: BinaryIO, force: bool = False) -> Dataset | None:
    try:
        return dcmread(stream, stop_before_pixels=True, defer_size="1 MB", force=force)
    except (InvalidDicomError, EOFError, OSError, ValueError):
        return None


def unused_file_headers(path: str | Path, reason: Reason) -> Iterator[Dataset]:
    """The DICOM headers in a file quarantined for `reason` (one of READ_HERE)."""
    path = Path(path)
    if reason is Reason.MISSING_FILE_META:
        with path.open("rb") as fp:
            found = _header(fp, force=True)
        if found is not None:
            yield found
    elif reason is Reason.MISSING_PREAMBLE:
        with path.open("rb") as fp:
            head = fp.read(_HEADER_BYTES)
        if head.startswith(DICOM_PREFIX):
            found = _header(io.BytesIO(_PREAMBLE + head))
            if found is not None:
                yield found
    elif reason is Reason.NOT_DICOM_ARCHIVE:
        yield from _archive_headers(path)


def _archive_headers(path: Path) -> Iterator[Dataset]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            for info in members[:MAX_ARCHIVE_MEMBERS]:
                with archive.open(info) as member:
                    found = _header(member)
                if found is not None:
                    yield found
        return
    if tarfile.is_tarfile(path):  # plain or compressed tar
        with tarfile.open(path) as archive:
            for count, info in enumerate(archive):
                if count >= MAX_ARCHIVE_MEMBERS:
                    break
                member = archive.extractfile(info) if info.isfile() else None
                found = _header(io.BytesIO(member.read(_HEADER_BYTES))) if member else None
                if found is not None:
                    yield found
        return
    with path.open("rb") as fp:
        magic = fp.read(6)
    opener = next((open_ for sig, open_ in _STREAM_OPENERS.items() if magic.startswith(sig)), None)
    if opener is not None:  # one compressed file: file.dcm.gz
        with opener(path, "rb") as stream:
            found = _header(io.BytesIO(stream.read(_HEADER_BYTES)))
        if found is not None:
            yield found
