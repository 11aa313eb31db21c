"""Digests remembered by file status: reused only for a file that has not changed."""

from __future__ import annotations

import hashlib
import os

import pytest

from radreport.llm import file_digests
from radreport.llm.file_digests import FileDigests
from radreport.llm.onnx_export import export_key


@pytest.fixture
def settled_at_once(monkeypatch):
    # Files written by a test are milliseconds old; they count as settled for these tests.
    monkeypatch.setattr(file_digests, "_SETTLED_SECONDS", 0.0)


def test_an_unchanged_file_is_read_once_and_keeps_its_digest(tmp_path, settled_at_once):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\x01" * 4096)
    expected = hashlib.sha256(weights.read_bytes()).hexdigest()
    first = FileDigests(tmp_path / "record.sqlite3")
    assert first.sha256(weights) == expected and first.files_read == 1
    # Another process (a new object on the same record) reads none of the bytes.
    second = FileDigests(tmp_path / "record.sqlite3")
    assert second.sha256(weights) == expected and second.files_read == 0


def test_a_file_rewritten_with_its_old_size_and_mtime_is_read_again(tmp_path, settled_at_once):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\x01" * 4096)
    record = tmp_path / "record.sqlite3"
    before = FileDigests(record).sha256(weights)
    stat = weights.stat()
    weights.write_bytes(b"\x02" * 4096)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # mtime set back: ctime moves
    after = FileDigests(record)
    assert after.sha256(weights) == hashlib.sha256(b"\x02" * 4096).hexdigest() != before
    assert after.files_read == 1


def test_a_file_written_just_now_is_hashed_but_not_remembered(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\x01" * 4096)
    record = tmp_path / "record.sqlite3"
    FileDigests(record).sha256(weights)
    again = FileDigests(record)
    again.sha256(weights)
    assert again.files_read == 1  # still inside the timestamp tick a rewrite could share


def test_an_unusable_record_still_gives_the_digest(tmp_path, settled_at_once):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\x03" * 100)
    (tmp_path / "not-a-folder").write_text("a file where the record's folder should be")
    digests = FileDigests(tmp_path / "not-a-folder" / "record.sqlite3")
    assert digests.sha256(weights) == hashlib.sha256(b"\x03" * 100).hexdigest()


def test_the_export_key_is_the_same_from_the_record_and_changes_with_a_file(
    tiny_llama_dir, tmp_path, settled_at_once
):
    record = tmp_path / "record.sqlite3"
    model = tmp_path / "model"
    model.mkdir()
    for path in tiny_llama_dir.iterdir():
        (model / path.name).write_bytes(path.read_bytes())
    cold = FileDigests(record)
    key = export_key(model, None, cold)
    warm = FileDigests(record)
    assert export_key(model, None, warm) == key and cold.files_read > 0 == warm.files_read
    config = model / "config.json"
    config.write_text(config.read_text().replace('"hidden_act"', '"hidden_act" ', 1))
    assert export_key(model, None, FileDigests(record)) != key
