"""Files replaced whole: written beside their place, then renamed over it in one step.

A reader, a second writer or a kill mid-write then meets the old file or the new one,
never a torn one (two `run.py data --out` into one folder left a volumes.npz that failed
its CRC check).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replaced_whole(path: Path) -> Iterator[Path]:
    """Yields the temporary path to write (same folder and suffix, so writers that add a
    suffix of their own, like numpy's savez, keep it); on success it replaces `path`."""
    path = Path(path)
    partial = path.with_name(f".{os.getpid()}-{path.name}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
