"""Files replaced whole: written beside their place, then renamed over it in one step.

A reader, a second writer or a kill mid-write then meets the old file or the new one,
never a torn one (two `run.py data --out` into one folder left a volumes.npz that failed
its CRC check).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replaced_whole(path: Path) -> Iterator[Path]:
    """Yields a temporary path of its own to write (same folder and suffix, so writers that
    add a suffix of their own, like numpy's savez, keep it); on success it replaces `path`.
    Its folder is made if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".", suffix=f"-{path.name}", dir=path.parent)
    os.close(fd)
    partial = Path(name)
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
