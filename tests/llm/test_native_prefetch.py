"""The native kernel's prefetch distance: it changes speed only, never a logit; the fastest
choice is measured once per machine, model size, dtype and thread count, then remembered."""

from __future__ import annotations

import json

import pytest
import torch

from radreport.llm import native_kernel
from radreport.llm.native_generate import NativeLlama, RowCache, _prefill
from radreport.llm.native_prefetch import (
    PREFETCH_CHOICES,
    RECORD_NAME,
    fastest_prefetch,
    remembered_prefetch,
)
from tests.llm.odd_llama import odd_llama


def _small_llama():
    # Rows of 200 and 330 floats: the batch-1 loop prefetches only over whole blocks of 64
    # floats, which the default odd sizes (40, 70) never fill.
    return odd_llama(hidden_size=200, intermediate_size=330)


@pytest.mark.parametrize("matrix_dtype", [torch.float32, torch.bfloat16])
@torch.inference_mode()
def test_every_prefetch_distance_gives_the_same_logits_bit_for_bit(matrix_dtype):
    model = _small_llama()
    prompt, continuation = [3, 14, 15, 9, 26], [5, 35, 8, 9, 7]
    _, prompt_keys, prompt_values = _prefill(model, prompt)
    steps = {}
    for distance in (0, 64, 2048, 8192):
        native = NativeLlama(model, 2, matrix_dtype, prefetch_bytes=distance)
        assert native.prefetch_bytes == distance
        cache = RowCache(prompt_keys, prompt_values, native.empty_cache(8), native.empty_cache(8))
        steps[distance] = torch.stack(
            [
                native.step([token], [len(prompt) + offset], [cache])[0]
                for offset, token in enumerate(continuation)
            ]
        )
    for distance, logits in steps.items():
        assert torch.equal(logits, steps[0]), distance


def test_the_fastest_choice_is_the_one_with_the_lowest_best_time():
    timings = {0: iter([0.9, 0.2, 0.9]), 2048: iter([0.3, 0.3, 0.3])}
    asked = []

    def seconds(distance):
        asked.append(distance)
        return next(timings[distance])

    # One slow round (a burst of load) does not decide: each choice's best time does.
    assert fastest_prefetch(seconds, (0, 2048), rounds=3) == 0
    assert asked == [0, 2048] * 3  # in turn, so load hurts every choice alike


def test_the_choice_is_measured_once_and_remembered(tmp_path):
    record = tmp_path / "native" / RECORD_NAME
    measured = []

    def measure():
        measured.append(1)
        return 2048

    assert remembered_prefetch(record, "fp32, 2 threads", measure) == 2048
    assert remembered_prefetch(record, "fp32, 2 threads", measure) == 2048
    assert measured == [1]
    assert json.loads(record.read_text()) == {"fp32, 2 threads": 2048}
    record.write_text("{not json")  # a damaged record is measured over, not trusted
    assert remembered_prefetch(record, "fp32, 2 threads", lambda: 0) == 0
    assert json.loads(record.read_text()) == {"fp32, 2 threads": 0}


def test_native_llama_measures_on_first_use_then_reads_the_record(tmp_path, monkeypatch):
    monkeypatch.setenv("RADREPORT_CACHE_DIR", str(tmp_path))
    native_kernel.load_kernel.cache_clear()
    try:
        model = _small_llama()
        first = NativeLlama(model, 1, torch.bfloat16)
        assert first.prefetch_bytes in PREFETCH_CHOICES
        record = native_kernel.build_dir() / RECORD_NAME
        [(key, chosen)] = json.loads(record.read_text()).items()
        assert chosen == first.prefetch_bytes
        assert "torch.bfloat16" in key and "1 threads" in key
        assert f"{first.weight_bytes} weight bytes" in key
        # The record decides from then on: a different stored choice is the one used.
        other = PREFETCH_CHOICES[1] if chosen == PREFETCH_CHOICES[0] else PREFETCH_CHOICES[0]
        record.write_text(json.dumps({key: other}))
        assert NativeLlama(model, 1, torch.bfloat16).prefetch_bytes == other
        # Another thread count is another entry, measured for itself.
        NativeLlama(model, 2, torch.bfloat16)
        assert len(json.loads(record.read_text())) == 2
    finally:
        native_kernel.load_kernel.cache_clear()


def test_all_threads_means_the_count_the_kernel_will_use(tmp_path, monkeypatch):
    """num_threads None keys the record by OpenMP's default, which torch.set_num_threads (and
    OMP_NUM_THREADS) set: one thread is then the 1-thread entry, not the core count."""
    monkeypatch.setenv("RADREPORT_CACHE_DIR", str(tmp_path))
    native_kernel.load_kernel.cache_clear()
    before = torch.get_num_threads()
    try:
        kernel = native_kernel.load_kernel()
        torch.set_num_threads(2)
        assert kernel.llama_default_threads() == 2
        torch.set_num_threads(1)
        assert kernel.llama_default_threads() == 1
        NativeLlama(_small_llama(), None, torch.bfloat16)
        [key] = json.loads((native_kernel.build_dir() / RECORD_NAME).read_text())
        assert "1 threads" in key
    finally:
        torch.set_num_threads(before)
        native_kernel.load_kernel.cache_clear()
