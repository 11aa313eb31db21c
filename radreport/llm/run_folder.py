"""Each fine-tuning run's working folder: one per config and data, held by one process.

All runs of a model used to share `checkpoints/MODEL_NAME/`. Two runs of that model at the
same time (a scheduled retraining beside one started by hand) then cleared, rotated and
resumed from each other's checkpoints: a run started again after a kill restored the other
config's adapter and registered it as its own. Now a run works in
`checkpoints/MODEL_NAME/<fingerprint>/` (radreport.llm.resume.run_fingerprint) and holds an
exclusive lock on it while it trains (radreport.folder_lock):
- another config of the same model trains beside it, in its own folder;
- the same config and data waits for the running one to end, then restores its finished
  checkpoint instead of training it again (radreport.llm.resume.training_finished);
- a folder no process holds (another config's, or one a killed run left) is removed when
  a run starts, as a changed config always cleared the old checkpoints.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from radreport.folder_lock import (
    LOCK_NAME,
    FolderLock,
    HeldByThisThread,
    LocksUnavailable,
    still_linked,
    try_lock,
)
from radreport.llm.resume import what_changed

logger = logging.getLogger(__name__)

_FOLDER_NAME = re.compile(r"^[0-9a-f]{16}$")
# What a run left directly in the model's folder before runs had folders of their own.
_SHARED_LAYOUT = re.compile(r"^(checkpoint-\d+|adapter|run_fingerprint\.json)$")
# A folder renamed for removal by a run that was killed before it finished removing it.
_BEING_REMOVED = re.compile(r"^[0-9a-f]{16}\.removing-\d+$")


class RunFolder:
    """The run's folder, locked until `release()` (or the process ends)."""

    def __init__(self, path: Path, lock: FolderLock):
        self.path = path
        self._lock = lock

    def release(self) -> None:
        self._lock.release()


def claim_run_folder(
    model_dir: Path, fingerprint: str, parts: Mapping[str, str] | None = None
) -> RunFolder:
    """The folder of the run with this fingerprint under `model_dir`, locked for this
    process; waits while another process (or thread) holds it. Folders no process holds,
    other than this one, are removed. HeldByThisThread where this thread holds it already
    (a run prepared and not released, started again)."""
    folder = Path(model_dir) / fingerprint[:16]

    def say_waiting() -> None:
        logger.warning(
            "A run of the same config and data is training in %s: waiting for it to end, "
            "to restore what it trained",
            folder,
        )

    try:
        lock = FolderLock(folder, on_wait=say_waiting)
    except HeldByThisThread:
        raise HeldByThisThread(
            f"A run of the same config and data is already open in this thread ({folder}): "
            "let it finish, or release its run_folder, before starting it again"
        ) from None
    _remove_unheld_folders(Path(model_dir), keep=folder, parts=parts)
    return RunFolder(folder, lock)


def _remove_unheld_folders(
    model_dir: Path, keep: Path, parts: Mapping[str, str] | None = None
) -> None:
    for entry in model_dir.iterdir():
        if entry == keep:
            continue
        if _SHARED_LAYOUT.match(entry.name) or _BEING_REMOVED.match(entry.name):
            _remove(entry)
        elif _FOLDER_NAME.match(entry.name) and entry.is_dir():
            _remove_if_unheld(entry, parts)


def _remove_if_unheld(folder: Path, parts: Mapping[str, str] | None) -> None:
    lock_path = folder / LOCK_NAME
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:  # another run removed it first
        return
    try:
        # The file locked must still be the folder's: its holder may have released (and
        # removed) it, and a new run made and locked another, after the open.
        if try_lock(fd) and still_linked(fd, lock_path):
            # Said as a warning: an interrupted run's checkpoints go with it (after an update
            # of radreport, its training code differs).
            logger.warning(
                "Removing %s, a run of this model with other %s",
                folder,
                what_changed(folder, parts),
            )
            # Renamed first, in one step: a run claiming the name from here on makes a
            # new folder instead of finding a half-removed one.
            doomed = folder.with_name(f"{folder.name}.removing-{os.getpid()}")
            os.rename(folder, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
    except LocksUnavailable:
        pass  # whether it is in use cannot be known: kept
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
