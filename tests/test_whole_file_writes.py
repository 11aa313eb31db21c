"""Files replaced whole, and a folder lock shared by processes."""

from __future__ import annotations

import os
import shutil
import threading

import numpy as np
import pytest

from radreport.folder_lock import LOCK_NAME, FolderLock, HeldByThisThread
from radreport.whole_file_writes import SetNotWritten, replaced_as_a_set, replaced_whole


def test_a_file_is_replaced_whole_and_numpy_keeps_its_suffix(tmp_path):
    target = tmp_path / "volumes.npz"
    target.write_bytes(b"old")
    with replaced_whole(target) as partial:
        np.savez(partial, array=np.arange(3))
        assert partial.is_file() and target.read_bytes() == b"old"
    with np.load(target) as stored:
        assert stored["array"].tolist() == [0, 1, 2]
    assert [path.name for path in tmp_path.iterdir()] == ["volumes.npz"]


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), replaced_whole(target) as partial:
        partial.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["summary.json"]


def test_a_set_failing_at_its_second_file_leaves_every_old_file(tmp_path):
    (tmp_path / "summary.json").write_text("old summary")
    (tmp_path / "studies.parquet").write_text("old studies")
    names = ("summary.json", "studies.parquet")
    with pytest.raises(SetNotWritten, match="cannot write its files \\(No space left on device\\)"):
        with replaced_as_a_set(tmp_path, names) as staged:
            (staged / "summary.json").write_text("new summary")
            raise OSError(28, "No space left on device")
    assert (tmp_path / "summary.json").read_text() == "old summary"
    assert (tmp_path / "studies.parquet").read_text() == "old studies"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["studies.parquet", "summary.json"]


def test_a_set_replaces_the_files_written_and_removes_those_it_left_unwritten(tmp_path):
    (tmp_path / "predictions.csv").write_text("old")
    (tmp_path / "metrics.json").write_text("an older run's scores")
    with replaced_as_a_set(tmp_path, ("predictions.csv", "metrics.json")) as staged:
        (staged / "predictions.csv").write_text("new")
    assert [path.name for path in tmp_path.iterdir()] == ["predictions.csv"]
    assert (tmp_path / "predictions.csv").read_text() == "new"


@pytest.fixture
def umask_027():
    """Group members may read, others nothing; put back afterwards."""
    before = os.umask(0o027)
    yield
    os.umask(before)


def test_a_replaced_file_has_the_umasks_mode_as_open_would_give_it(tmp_path, umask_027):
    target = tmp_path / "summary.json"
    target.write_text("old")
    os.chmod(target, 0o644)
    with replaced_whole(target) as partial:
        partial.write_text("new")
    assert target.stat().st_mode & 0o777 == 0o640


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_a_compiled_library_is_readable_and_executable_as_the_umask_allows(tmp_path, umask_027):
    from radreport.llm.c_build import compile_kernel

    source = tmp_path / "one.c"
    source.write_text("int one(void) { return 1; }\n")
    target = tmp_path / "build" / "one.so"
    compile_kernel(target, shutil.which("cc"), source, ("-shared", "-fPIC"))
    assert target.stat().st_mode & 0o777 == 0o750


def test_a_locked_folder_makes_the_next_holder_wait_and_say_so(tmp_path):
    first = FolderLock(tmp_path)
    waits, taken = [], threading.Event()

    def second():
        FolderLock(tmp_path, on_wait=lambda: waits.append(1)).release()
        taken.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert not taken.wait(0.5)
    first.release()  # removes the lock file the second waits on: it must lock afresh
    thread.join(timeout=10)
    assert taken.is_set() and waits == [1]
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_thread_asking_again_for_a_lock_it_holds_is_refused_instead_of_waiting(tmp_path):
    first = FolderLock(tmp_path)
    with pytest.raises(HeldByThisThread, match="already locked by this thread"):
        FolderLock(tmp_path)
    other_thread_waits = threading.Event()
    thread = threading.Thread(
        target=lambda: FolderLock(tmp_path, on_wait=other_thread_waits.set).release()
    )
    thread.start()
    assert other_thread_waits.wait(10)  # the refusal released nothing
    first.release()
    thread.join(timeout=10)
    FolderLock(tmp_path).release()  # and the thread may lock it again once released


def test_a_lock_file_left_by_a_killed_holder_is_reused(tmp_path):
    (tmp_path / LOCK_NAME).write_text("")
    FolderLock(tmp_path).release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_release_never_removes_a_lock_file_another_holder_made(tmp_path):
    first = FolderLock(tmp_path)
    (tmp_path / LOCK_NAME).unlink()  # as a holder's release would, seen from a waiter
    second = FolderLock(tmp_path)  # locks the new file at once
    first.release()
    assert (tmp_path / LOCK_NAME).exists()
    second.release()


def test_a_file_system_without_locks_is_used_unlocked_with_a_warning(tmp_path, monkeypatch, caplog):
    import errno

    from radreport import folder_lock

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(folder_lock.fcntl, "flock", no_locks)
    with caplog.at_level("WARNING", logger="radreport.folder_lock"):
        held = FolderLock(tmp_path)
    assert held.locked is False
    assert "has no file locks (No locks available)" in caplog.text
    held.release()
