"""An exclusive lock on a folder shared by processes (the operating system's flock).

The lock is a file in the folder, removed again on release, so the folder keeps no trace
of it; a killed process releases its lock with its file descriptors (and leaves the empty
file, which the next holder reuses). Whoever waited on a lock file that its holder then
removed finds that out on waking and locks the file that is there now.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

LOCK_NAME = ".radreport.lock"


def try_lock(fd: int) -> bool:
    """Take the exclusive lock on the open file `fd` if no other holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class FolderLock:
    """Holds `folder`'s lock (the folder made if missing), waiting while another process
    holds it; `on_wait` is called once, before the first wait."""

    def __init__(self, folder: Path, on_wait: Callable[[], None] = lambda: None):
        self.path = Path(folder) / LOCK_NAME
        waited = False
        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # the folder was removed after the mkdir: again
                continue
            if not try_lock(fd):
                if not waited:
                    on_wait()
                    waited = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            if _still_linked(fd, self.path):
                self._fd: int | None = fd
                return
            os.close(fd)  # its holder removed the file (or the folder) while we waited

    def release(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)  # before the unlock: a waiter then retries
            os.close(self._fd)
            self._fd = None


def _still_linked(fd: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)
