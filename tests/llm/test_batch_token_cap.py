"""Decode batches capped by the key/value cache positions their rows hold
(LLMSettings.generation_batch_tokens): long prompts decode in smaller batches, the reports
do not change, and the count matches the caches the decoders really keep."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import torch
from pydantic import ValidationError

from radreport.llm import generate as generate_module
from radreport.llm.generate import ReportGenerator
from radreport.llm.native_generate import NativeLlama, NativeReportGenerator
from radreport.llm.preallocated_cache import preallocated_cache
from radreport.llm.settings import LLMSettings
from tests.llm.impressions import IMPRESSIONS


@pytest.fixture(scope="module")
def generator(tiny_llama_dir) -> ReportGenerator:
    return ReportGenerator(tiny_llama_dir, dtype=torch.float32, max_new_tokens=10)


@pytest.fixture
def capped(generator):
    """The module's generator with the cap the test sets; restored afterwards."""
    kept = generator.batch_tokens, generator.context_length
    yield generator
    generator.batch_tokens, generator.context_length = kept


def test_batches_take_prompts_longest_first_while_their_rows_fit_the_cap(capped):
    capped.context_length = None
    lengths = [30, 50, 20, 40]  # longest first: 50, 40, 30, 20
    # Every row holds the batch's longest prompt (padding) and its 10 new tokens.
    capped.batch_tokens = 2 * (50 + 10)
    assert capped._batches(lengths, 16, 10) == [[1, 3], [0, 2]]
    capped.batch_tokens = 2 * (50 + 10) - 1  # 50 and 40 no longer fit together
    assert capped._batches(lengths, 16, 10) == [[1], [3, 0], [2]]
    # MBR's 4 candidates and 2 beams are rows too.
    capped.batch_tokens = 2 * 4 * (50 + 10)
    assert capped._batches(lengths, 16, 10, copies=4) == [[1, 3], [0, 2]]
    assert capped._batches(lengths, 16, 10, num_beams=8) == [[1], [3], [0], [2]]
    # The prompt count still caps a batch, and no cap is no cap.
    capped.batch_tokens = None
    assert capped._batches(lengths, 3, 10) == [[1, 3, 0], [2]]


def test_a_prompt_whose_rows_alone_pass_the_cap_decodes_alone_with_a_warning(capped, caplog):
    capped.context_length = None
    capped.batch_tokens = 45
    with caplog.at_level(logging.WARNING, logger="radreport.llm.generate"):
        batches = capped._batches([50, 20, 30], 16, 10)
    assert batches == [[0], [2], [1]]  # 30 and 20 together would hold 80
    assert "a 50-token prompt's rows hold 60 cache positions, more than" in caplog.text
    assert "generation_batch_tokens (45)" in caplog.text
    assert caplog.text.count("decodes alone") == 1


def test_capped_batches_write_the_same_reports_in_more_batches(capped, monkeypatch):
    sizes = []
    decode = ReportGenerator._generate_batch

    def counting(self, prompts, num_beams, max_new_tokens):
        sizes.append(len(prompts))
        return decode(self, prompts, num_beams, max_new_tokens)

    monkeypatch.setattr(ReportGenerator, "_generate_batch", counting)
    capped.batch_tokens = None
    whole = capped.generate(IMPRESSIONS, progress=False)
    assert sizes == [4]
    lengths = capped._token_counts(capped._prompts(IMPRESSIONS, None))
    capped.batch_tokens = 2 * (max(lengths) + 10)
    sizes.clear()
    assert capped.generate(IMPRESSIONS, progress=False) == whole
    assert sizes == [2, 2]


def test_the_count_is_what_the_torch_decoders_cache_holds(capped, monkeypatch):
    """The decode loop allocates each row's positions once: the batch's longest prompt and
    its budget. A decode with no stop keeps every row to the end and writes all of them but
    the last token's, which is chosen and never fed back."""
    caches = []

    def recorded(config, capacity):
        caches.append(preallocated_cache(config, capacity))
        return caches[-1]

    monkeypatch.setattr(generate_module, "preallocated_cache", recorded)
    kept_rules = capped.rules
    capped.rules = replace(kept_rules, stop_ids=[])
    try:
        capped.mbr_candidates, capped.mbr_epsilon = 3, 0.5
        capped.candidate_groups(IMPRESSIONS, progress=False)
    finally:
        capped.mbr_candidates, capped.mbr_epsilon = 0, 0.02
        capped.rules = kept_rules
    lengths = capped._token_counts(capped._prompts(IMPRESSIONS, None))
    counted = capped._cache_positions(lengths, 10, 3, 1)
    layer = caches[-1].layers[0]
    rows, kv_heads, allocated, head_dim = layer._keys.shape
    assert rows == 3 * len(IMPRESSIONS)
    assert rows * allocated == counted
    assert rows * layer.keys.shape[2] == counted - rows
    per_position = 2 * len(caches[-1].layers) * kv_heads * head_dim * 4
    assert capped.cache_bytes_per_position() == per_position


def test_auto_is_sized_once_from_the_memory_available(capped, monkeypatch, caplog):
    per_position = capped.cache_bytes_per_position()
    monkeypatch.setattr(generate_module, "available_memory_bytes", lambda device: 2**20)
    capped.batch_tokens = "auto"
    with caplog.at_level(logging.INFO, logger="radreport.llm.generate"):
        assert capped._batch_token_limit() == 2**19 // per_position
    assert "decode batches hold at most 16 prompts and" in caplog.text
    monkeypatch.setattr(generate_module, "available_memory_bytes", lambda device: 2**30)
    assert capped._batch_token_limit() == 2**19 // per_position  # kept, not sized again


def test_the_native_decoder_keeps_a_prompts_positions_once_for_its_candidates(
    tiny_llama_dir, monkeypatch
):
    native = NativeReportGenerator(tiny_llama_dir, max_new_tokens=10)
    native.context_length = None
    assert native._cache_positions([50, 40], 10, 8, 1) == 50 + 40 + 2 * 8 * 10
    assert native._cache_positions([50, 40], 10, 1, 3) == 2 * 3 * (50 + 10)  # torch's beams
    # Its caches are fp32 whatever the matrices: 2 layers, 2 key/value heads of 16.
    assert native.cache_bytes_per_position() == 2 * 2 * 2 * 16 * 4
    # What native_decode allocates: each row's own room, beside the shared prompt caches.
    allocated = []
    empty_cache = NativeLlama.empty_cache

    def recording(self, capacity):
        allocated.append(capacity)
        return empty_cache(self, capacity)

    monkeypatch.setattr(NativeLlama, "empty_cache", recording)
    native.mbr_candidates = 3
    native.candidate_groups(IMPRESSIONS[:2], progress=False)
    lengths = native._token_counts(native._prompts(IMPRESSIONS[:2], None))
    assert allocated == [10] * 2 * 2 * 3  # keys and values of 2 prompts' 3 rows each
    assert sum(allocated) // 2 + sum(lengths) == native._cache_positions(lengths, 10, 3, 1)


def test_settings_take_a_count_or_auto_and_reach_the_generator(tiny_llama_dir):
    settings = LLMSettings(
        decoder="torch", max_new_tokens=8, generation_batch_size=3, generation_batch_tokens=500
    )
    generator = ReportGenerator.from_settings(settings, tiny_llama_dir)
    assert (generator.batch_size, generator.batch_tokens) == (3, 500)
    assert LLMSettings().generation_batch_tokens == "auto"
    assert LLMSettings().generation_batch_size == 16
    for wrong in ({"generation_batch_tokens": 0}, {"generation_batch_tokens": "lots"}):
        with pytest.raises(ValidationError):
            LLMSettings(**wrong)
    with pytest.raises(ValidationError):
        LLMSettings(generation_batch_size=0)
