"""SHA-256 digests of files, remembered by the files' status so an unchanged file is read once.

The ONNX export is keyed by the content of the model and adapter files, so a changed file
never reuses a stale export. Reading every byte for that key at each start costs 0.4 s for
the bundled 135M model and a Llama 3 8B's 16 GB, tens of seconds. As git's index does, a
file whose device, inode, size, modification and change times all match those recorded when
it was hashed keeps its digest. The change time (ctime) is set by the kernel at every write
and cannot be set back by a program, so a file rewritten with its old mtime restored is
still read again.

The record is a SQLite table, so processes starting together share it safely. Where it
cannot be opened or written (a read-only cache), every digest is computed from the bytes.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from pathlib import Path

from radreport.llm.bundled import cache_dir

# A file written this recently may still be written within the same timestamp tick, which
# its status would not show: its digest is used but not remembered (git's "racy" entries).
_SETTLED_SECONDS = 2.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS file_digests (
    path TEXT PRIMARY KEY,
    device INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL
)
"""


def _status(stat: os.stat_result) -> tuple[int, int, int, int, int]:
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class FileDigests:
    """`sha256(path)`: the file's digest, from the record when its status is unchanged."""

    def __init__(self, database: str | Path):
        self.database = Path(database)
        self.files_read = 0  # digests computed from the bytes by this object

    def sha256(self, path: str | Path) -> str:
        path = Path(path).resolve()
        status = _status(path.stat())
        remembered = self._lookup(path)
        if remembered is not None and remembered[0] == status:
            return remembered[1]
        sha256 = sha256_of_file(path)
        self.files_read += 1
        after = path.stat()
        settled = time.time_ns() - max(after.st_mtime_ns, after.st_ctime_ns)
        # Remembered only when the file did not change while it was read and has settled.
        if _status(after) == status and settled > _SETTLED_SECONDS * 1e9:
            self._remember(path, status, sha256)
        return sha256

    def _connect(self) -> sqlite3.Connection:
        self.database.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.database, timeout=30)
        connection.execute(_SCHEMA)
        return connection

    def _lookup(self, path: Path) -> tuple[tuple[int, ...], str] | None:
        try:
            connection = self._connect()
        except (OSError, sqlite3.Error):
            return None
        try:
            row = connection.execute(
                "SELECT device, inode, size, mtime_ns, ctime_ns, sha256 FROM file_digests "
                "WHERE path = ?",
                (str(path),),
            ).fetchone()
        except sqlite3.Error:
            return None
        finally:
            connection.close()
        return (tuple(row[:5]), row[5]) if row is not None else None

    def _remember(self, path: Path, status: tuple[int, ...], sha256: str) -> None:
        try:
            connection = self._connect()
        except (OSError, sqlite3.Error):
            return
        try:
            with connection:
                connection.execute(
                    "INSERT OR REPLACE INTO file_digests VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (str(path), *status, sha256),
                )
        except sqlite3.Error:
            pass  # an unwritable record: the digest is still right, only not remembered
        finally:
            connection.close()


def shared_file_digests() -> FileDigests:
    """The cache's one record, kept by everything keyed on model files (the ONNX exports, a
    base model's content): a base model folder hashed for one is not hashed again for the
    other (16 GB for a Llama 3 8B)."""
    return FileDigests(cache_dir() / "file_digests.sqlite3")
