"""Folders that hold a trained adapter until the pipeline has stored it.

The training step hands ZenML a copy of the adapter of its own (the run folder may be
taken by another run once its lock is released), and ZenML copies it into the artifact
store after the step returns. Kept in /tmp until the process exited, these copies piled up
in a long-lived process (a scheduler, a notebook) and stayed for good after a kill. Each
now lives under `<root>/<pid>-<random>`, removed when the process exits; a new one also
removes those whose process ended without that (killed) and this process's earlier ones,
which were stored before this step began.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from pathlib import Path

_NAME = re.compile(r"^(\d+)-")


def fresh_handoff_dir(root: Path) -> Path:
    """An empty folder under `root` for this process, after removing the stale ones."""
    root.mkdir(parents=True, exist_ok=True)
    for entry in root.iterdir():
        match = _NAME.match(entry.name)
        if match and entry.is_dir():
            pid = int(match.group(1))
            if pid == os.getpid() or not _alive(pid):
                shutil.rmtree(entry, ignore_errors=True)
    handoff = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
    atexit.register(shutil.rmtree, handoff, ignore_errors=True)
    return handoff


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
