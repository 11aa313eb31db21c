"""Each run's own folder under the model's checkpoint folder, locked while it trains."""

from __future__ import annotations

import logging
import os
import threading

import pytest

from radreport.folder_lock import HeldByThisThread, try_lock
from radreport.llm.resume import prepare_output_dir
from radreport.llm.run_folder import LOCK_NAME, claim_run_folder

FINGERPRINT = "0123456789abcdef" + "0" * 48
OTHER = "fedcba9876543210" + "0" * 48


def _held(folder) -> bool:
    fd = os.open(folder / LOCK_NAME, os.O_RDWR)
    try:
        return not try_lock(fd)
    finally:
        os.close(fd)


def test_a_claimed_folder_is_named_by_the_fingerprint_and_held_until_released(tmp_path):
    run = claim_run_folder(tmp_path, FINGERPRINT)
    assert run.path == tmp_path / FINGERPRINT[:16]
    assert _held(run.path)
    run.release()
    run.release()  # twice is harmless
    assert not (run.path / LOCK_NAME).exists()  # the folder keeps no trace of the lock


def test_folders_no_run_holds_are_removed_and_held_ones_kept(tmp_path):
    other = claim_run_folder(tmp_path, OTHER)  # another config, still training
    stale = tmp_path / "00000000deadbeef"  # left by a killed run of a third config
    (stale / "checkpoint-4").mkdir(parents=True)
    for old in ("checkpoint-2", "adapter"):  # the layout before runs had folders
        (tmp_path / old).mkdir()
    (tmp_path / "run_fingerprint.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("not ours")

    run = claim_run_folder(tmp_path, FINGERPRINT)

    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [OTHER[:16], FINGERPRINT[:16], "notes.txt"]
    )
    assert _held(other.path)
    other.release()
    run.release()


def test_a_removed_run_is_said_to_differ_by_what_changed(tmp_path, caplog):
    parts = {"training code": "a", "base model files": "b", "settings": "c", "data": "d"}
    for changed, said in (
        ({"training code": "a2"}, "other training code"),  # radreport was updated
        ({"settings": "c2", "data": "d2"}, "other settings and data"),
    ):
        interrupted = claim_run_folder(tmp_path, OTHER, parts)
        prepare_output_dir(interrupted.path, OTHER, parts)
        (interrupted.path / "checkpoint-2").mkdir()
        interrupted.release()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="radreport.llm.run_folder"):
            claim_run_folder(tmp_path, FINGERPRINT, {**parts, **changed}).release()
        assert caplog.messages == [
            f"Removing {tmp_path / OTHER[:16]}, a run of this model with {said}"
        ]
    # A folder from before the parts were stored.
    (tmp_path / OTHER[:16]).mkdir()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="radreport.llm.run_folder"):
        claim_run_folder(tmp_path, FINGERPRINT, parts).release()
    assert caplog.messages[0].endswith("with other settings, data or training code")


def test_claiming_again_a_run_this_thread_holds_is_refused_instead_of_waiting(tmp_path):
    first = claim_run_folder(tmp_path, FINGERPRINT)
    with pytest.raises(HeldByThisThread, match="already open in this thread"):
        claim_run_folder(tmp_path, FINGERPRINT)
    assert _held(first.path)
    first.release()
    claim_run_folder(tmp_path, FINGERPRINT).release()


def test_a_second_claim_of_the_same_run_waits_for_the_first(tmp_path):
    first = claim_run_folder(tmp_path, FINGERPRINT)
    claimed = threading.Event()

    def second_claim():
        claim_run_folder(tmp_path, FINGERPRINT).release()
        claimed.set()

    thread = threading.Thread(target=second_claim)
    thread.start()
    assert not claimed.wait(0.5)  # still waiting while the first holds it
    first.release()
    thread.join(timeout=10)
    assert claimed.is_set()


def test_a_folder_reclaimed_after_its_lock_file_was_opened_for_removal_is_kept(
    tmp_path, monkeypatch
):
    """Another run's cleanup opens a folder's lock file; its holder then releases and a new
    run of that config claims the folder with a new lock file. The cleanup's lock on the
    old file must not let it remove the folder the new run holds."""
    from radreport.llm import run_folder

    finishing = claim_run_folder(tmp_path, OTHER)
    real_try_lock = run_folder.try_lock
    claimed_again = []

    def try_lock_after_the_holder_changed(fd):
        if not claimed_again:  # the first lock the cleanup tries: the finishing run's
            claimed_again.append(None)
            finishing.release()
            claimed_again[0] = claim_run_folder(tmp_path, OTHER)
        return real_try_lock(fd)

    monkeypatch.setattr(run_folder, "try_lock", try_lock_after_the_holder_changed)
    run = claim_run_folder(tmp_path, FINGERPRINT)
    [holder] = claimed_again
    assert (holder.path / LOCK_NAME).exists() and _held(holder.path)
    holder.release()
    run.release()


def test_without_file_locks_no_other_folder_is_removed(tmp_path, monkeypatch):
    import errno

    from radreport import folder_lock

    (tmp_path / OTHER[:16] / "checkpoint-4").mkdir(parents=True)

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(folder_lock.fcntl, "flock", no_locks)
    claim_run_folder(tmp_path, FINGERPRINT).release()
    assert (tmp_path / OTHER[:16] / "checkpoint-4").is_dir()
