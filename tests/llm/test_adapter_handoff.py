"""Adapter handoff folders: one per training step, none left behind by ended processes."""

from __future__ import annotations

import os
import subprocess
import sys

from radreport.llm.adapter_handoff import fresh_handoff_dir


def _ended_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_new_handoff_removes_ended_processes_and_this_ones_earlier_folders(tmp_path):
    ended = tmp_path / f"{_ended_pid()}-abc"
    earlier = tmp_path / f"{os.getpid()}-def"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = tmp_path / f"{other.pid}-ghi"
        for folder in (ended, earlier, running):
            (folder / "adapter").mkdir(parents=True)
        (tmp_path / "notes").mkdir()  # not a handoff: left alone

        fresh = fresh_handoff_dir(tmp_path)

        assert fresh.name.startswith(f"{os.getpid()}-") and not any(fresh.iterdir())
        assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
            [fresh.name, running.name, "notes"]
        )
    finally:
        other.kill()
        other.wait()
