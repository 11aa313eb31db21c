"""A base model's content digest: its files, not its path."""

from __future__ import annotations

import shutil

import pytest

from radreport.llm.base_model import BaseModelMissing
from radreport.llm.base_model_content import base_model_content
from radreport.llm.file_digests import FileDigests
from radreport.llm.resume import run_fingerprint
from radreport.llm.settings import LLMSettings
from tests.llm.tiny_llama import save_tiny_llama
from tests.llm.tiny_training import ROWS


def test_the_digest_follows_the_files_not_the_folder(tiny_llama_dir, tmp_path):
    digests = FileDigests(tmp_path / "digests.sqlite3")
    copy = tmp_path / "copy"
    shutil.copytree(tiny_llama_dir, copy)
    original = base_model_content(str(tiny_llama_dir), digests)
    assert base_model_content(str(copy), digests) == original  # same files elsewhere
    (copy / ".cache").mkdir()  # what a hub download leaves: hidden, not the model
    (copy / ".cache" / "lock").write_text("x")
    assert base_model_content(str(copy), digests) == original
    save_tiny_llama(copy, initializer_range=0.3)  # other weights at the same path
    assert base_model_content(str(copy), digests) != original
    assert base_model_content("org/model", digests) != base_model_content("org/other", digests)
    with pytest.raises(BaseModelMissing):
        base_model_content(str(tmp_path / "gone"), digests)


def test_a_run_on_other_weights_in_the_same_folder_is_another_run(tiny_llama_dir, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(tiny_llama_dir, base)
    settings = LLMSettings(base_model=str(base))
    before = run_fingerprint(settings, ROWS, ROWS[:4])
    assert run_fingerprint(settings, ROWS, ROWS[:4]) == before
    save_tiny_llama(base, initializer_range=0.3)
    assert run_fingerprint(settings, ROWS, ROWS[:4]) != before
