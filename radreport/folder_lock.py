"""An exclusive lock on a folder shared by processes (the operating system's flock).

The lock is a file in the folder, removed again on release, so the folder keeps no trace
of it; a killed process releases its lock with its file descriptors (and leaves the empty
file, which the next holder reuses). Whoever waited on a lock file that its holder then
removed finds that out on waking and locks the file that is there now.

flock keeps processes of one machine apart, and of several machines only on a shared file
system whose flock reaches across them. Where the file system has no locks at all, the
folder is used unlocked, with a warning.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

LOCK_NAME = ".radreport.lock"
_NO_LOCKS_HERE = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}


class LocksUnavailable(OSError):
    """The file system refuses file locks (some NFS, FUSE and Lustre mounts)."""


class HeldByThisThread(RuntimeError):
    """The folder's lock is already held by the thread asking for it again: flock would
    make it wait on itself for ever."""


class _HeldFiles(threading.local):
    """The lock files (device, inode) each thread holds. flock keeps apart the open files
    of one process as it keeps processes apart, so another thread of this process waits as
    another process would; only the holding thread itself must not."""

    def __init__(self):
        self.files: set[tuple[int, int]] = set()


_held = _HeldFiles()


def _file_id(fd: int) -> tuple[int, int]:
    status = os.fstat(fd)
    return status.st_dev, status.st_ino


def try_lock(fd: int) -> bool:
    """Take the exclusive lock on the open file `fd` if no other holds it. LocksUnavailable
    where the file system has no locks."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in _NO_LOCKS_HERE:
            raise LocksUnavailable(exc.errno, exc.strerror) from exc
        raise
    return True


def still_linked(fd: int, path: Path) -> bool:
    """Whether `path` is still the file open as `fd` (not removed, nor replaced)."""
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    return (on_disk.st_dev, on_disk.st_ino) == _file_id(fd)


class FolderLock:
    """Holds `folder`'s lock (the folder made if missing), waiting while another process
    holds it; `on_wait` is called once, before the first wait. Where the file system has
    no locks, `locked` is False and the folder is used as it is. HeldByThisThread where
    the calling thread holds it already."""

    def __init__(self, folder: Path, on_wait: Callable[[], None] = lambda: None):
        self.path = Path(folder) / LOCK_NAME
        self.locked = True
        waited = False
        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # the folder was removed after the mkdir: again
                continue
            try:
                if not try_lock(fd):
                    if _file_id(fd) in _held.files:
                        raise HeldByThisThread(
                            f"{self.path.parent} is already locked by this thread; waiting "
                            "for it would never end"
                        )
                    if not waited:
                        on_wait()
                        waited = True
                    fcntl.flock(fd, fcntl.LOCK_EX)
            except LocksUnavailable as exc:
                logger.warning(
                    "%s: this file system has no file locks (%s); used unlocked, so "
                    "processes sharing it are not kept apart",
                    self.path.parent,
                    exc.strerror,
                )
                self.locked, self._fd = False, fd
                return
            except BaseException:
                os.close(fd)
                raise
            if still_linked(fd, self.path):
                self._fd: int | None = fd
                # Kept with the lock: a release from another thread must clear this one's.
                self._id, self._holders = _file_id(fd), _held.files
                self._holders.add(self._id)
                return
            os.close(fd)  # its holder removed the file (or the folder) while we waited

    def release(self) -> None:
        if self._fd is not None:
            # Removed before the unlock, so a waiter wakes to a file gone and retries; only
            # our own file, never one another holder made after ours was removed.
            if self.locked and still_linked(self._fd, self.path):
                self.path.unlink(missing_ok=True)
            if self.locked:
                self._holders.discard(self._id)
            os.close(self._fd)
            self._fd = None
