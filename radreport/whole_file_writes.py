"""Files replaced whole: written beside their place, then renamed over it in one step.

A reader, a second writer or a kill mid-write then meets the old file or the new one,
never a torn one (two `run.py data --out` into one folder left a volumes.npz that failed
its CRC check). The temporary file is made with the umask's mode, as `open` would make the
file itself: tempfile.mkstemp's 0600 left files colleagues could not read, and a cache
shared by a group that its second user could not write.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replaced_whole(path: Path) -> Iterator[Path]:
    """Yields a temporary path of its own to write (same folder and suffix, so writers that
    add a suffix of their own, like numpy's savez, keep it); on success it replaces `path`.
    Its folder is made if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.parent / f".{uuid.uuid4().hex}-{path.name}"
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


class SetNotWritten(Exception):
    """A set of files could not be written; their folder keeps the files it had."""


@contextmanager
def replaced_as_a_set(folder: Path, names: Sequence[str]) -> Iterator[Path]:
    """Yields a staging folder (inside `folder`) to write the files `names` into; once every
    one is written they are renamed into place, and a name the block left unwritten is
    removed from `folder` (an older run's file, not of this set). A failure while writing (a
    full disk) raises SetNotWritten and leaves the earlier set whole, never new files beside
    an older run's."""
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".{uuid.uuid4().hex}-staging"
    staging.mkdir()
    try:
        try:
            yield staging
        except OSError as error:
            raise SetNotWritten(
                f"{folder}: cannot write its files ({error.strerror or error}); it keeps the "
                "files it had"
            ) from None
        for name in names:
            if (staging / name).exists():
                os.replace(staging / name, folder / name)
            else:
                (folder / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
