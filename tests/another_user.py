"""What a user who cannot enter a folder meets, tested by root too.

Root enters every folder, so for root the call runs in a forked child that has become
`nobody` (its modules already loaded: nobody cannot read root's Python); anyone else is
refused by a folder of mode 0 even where it is their own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

NOBODY = 65534


def locked_folder(parent: Path) -> Path:
    """A folder no one but root may enter, holding `x.csv` and `x.yaml`."""
    folder = parent / "locked"
    folder.mkdir()
    for name in ("x.csv", "x.yaml"):
        (folder / name).write_text("study_id,impression\na,b\n")
    folder.chmod(0)
    return folder


def raised_as_another_user(call: Callable[[], object]) -> str:
    """`call()` as a user refused the locked folder: what it raised, as "Type: message"
    ("" if nothing)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            try:
                call()
                said = ""
            except BaseException as error:  # SystemExit too: run.py's one-line exits
                said = f"{type(error).__name__}: {error}"
            os.write(write_end, said.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as said:
        return said.read().decode()
