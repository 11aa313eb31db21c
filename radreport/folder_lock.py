"""An exclusive lock on a folder shared by processes (the operating system's flock).

A killed process releases its lock with its file descriptors, so no stale lock is left.
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


def lock_folder(folder: Path, on_wait: Callable[[], None] = lambda: None) -> int:
    """Hold `folder`'s lock file, waiting while another process holds it (`on_wait` is
    called once, before waiting). Returns the descriptor: closing it releases the lock."""
    fd = os.open(Path(folder) / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    if not try_lock(fd):
        on_wait()
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd
