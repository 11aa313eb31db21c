"""Files replaced whole: written beside their place, then renamed over it in one step.

A reader, a second writer or a kill mid-write then meets the old file or the new one,
never a torn one (two `run.py data --out` into one folder left a volumes.npz that failed
its CRC check). The temporary file is made with the umask's mode, as `open` would make the
file itself: tempfile.mkstemp's 0600 left files colleagues could not read, and a cache
shared by a group that its second user could not write.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replaced_whole(path: Path) -> Iterator[Path]:
    """Yields a temporary path of its own to write (same folder and suffix, so writers that
    add a suffix of their own, like numpy's savez, keep it); on success it replaces `path`.
    Its folder is made if missing."""
    with replaced_together([path]) as (partial,):
        yield partial


@contextmanager
def replaced_together(paths: Sequence[Path]) -> Iterator[list[Path]]:
    """replaced_whole for a set of files: the temporary paths are renamed into place only
    once every one is written, so a failure while writing (a full disk) leaves the earlier
    set whole, never new files beside an older run's."""
    partials = []
    try:
        for path in map(Path, paths):
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.parent / f".{uuid.uuid4().hex}-{path.name}"
            os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            partials.append(partial)
        yield partials
        for partial, path in zip(partials, paths, strict=True):
            os.replace(partial, path)
    finally:
        for partial in partials:
            partial.unlink(missing_ok=True)
