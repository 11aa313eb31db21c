"""gradient_checkpointing: auto on the CPU recomputes activations only where the longest
batch's would not fit in memory."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from radreport.llm import cache_budget, device
from radreport.llm.device import resolve_for_device
from radreport.llm.settings import LLMSettings
from radreport.llm.training_memory import activation_bytes_per_token, checkpointing_needed

GIB = 2**30
# The bundled SmolLM2-135M's shape.
SMOLLM2 = SimpleNamespace(num_hidden_layers=30, hidden_size=576, intermediate_size=1536)


def test_bytes_per_token_follow_the_measured_growth():
    # 30 layers x 2,112 wide: 15.8 bytes a width unit in fp32, 11.3 in bf16.
    assert activation_bytes_per_token(SMOLLM2, "float32") == int(30 * 2112 * 15.8)
    assert activation_bytes_per_token(SMOLLM2, "bfloat16") == int(30 * 2112 * 11.3)
    # What benchmarks/train_memory_by_length.py measured on this model: 0.93 GiB (fp32) and
    # at most 0.67 GiB (bf16) more per 1,000 tokens of a row.
    assert 1000 * activation_bytes_per_token(SMOLLM2, "float32") / GIB == pytest.approx(
        0.93, abs=0.01
    )
    assert 1000 * activation_bytes_per_token(SMOLLM2, "bfloat16") / GIB == pytest.approx(
        0.67, abs=0.01
    )


def test_needed_only_past_the_share_of_available_memory():
    available = 20 * GIB
    share = int(cache_budget.AUTO_MEMORY_SHARE * available)
    assert not checkpointing_needed(share, available)
    assert checkpointing_needed(share + 1, available)


@pytest.fixture
def cpu(monkeypatch):
    monkeypatch.setattr(device, "cuda_available", lambda: False)
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: False)

    def with_memory(gib: float) -> None:
        monkeypatch.setattr(cache_budget, "available_memory_bytes", lambda _: int(gib * GIB))

    return with_memory


def test_auto_keeps_activations_where_the_longest_batch_fits(cpu):
    cpu(24)
    # 8 rows of 679 tokens (the IU X-Ray config's longest example): about 5 GiB in fp32.
    settings = LLMSettings(max_seq_length=679, per_device_batch_size=8)
    assert resolve_for_device(settings).gradient_checkpointing is False


def test_auto_recomputes_where_the_longest_batch_would_not_fit(cpu, caplog):
    cpu(24)
    # 8 rows of 2,048 tokens in fp32: 15.2 GiB counted (19.2 GiB peak measured), over 12.
    settings = LLMSettings(max_seq_length=2048, per_device_batch_size=8)
    with caplog.at_level(logging.INFO, logger="radreport.llm.training_memory"):
        assert resolve_for_device(settings).gradient_checkpointing is True
    assert "gradient checkpointing on (auto): batches of 8 x 2048 tokens" in caplog.text
    assert "50 % of the 24.0 GiB available" in caplog.text
    # Smaller batches of the same examples fit again.
    smaller = settings.model_copy(update={"per_device_batch_size": 2})
    assert resolve_for_device(smaller).gradient_checkpointing is False


def test_explicit_choices_and_unsized_lengths_are_left_alone(cpu):
    cpu(0.5)
    off = LLMSettings(max_seq_length=2048, gradient_checkpointing=False)
    assert resolve_for_device(off).gradient_checkpointing is False
    # "auto" lengths are sized by the data when the prompts are made; finetune gets numbers.
    assert resolve_for_device(LLMSettings(max_seq_length="auto")).gradient_checkpointing is False
    assert resolve_for_device(LLMSettings(max_seq_length=2048)).gradient_checkpointing is True


def test_a_model_config_out_of_reach_is_left_to_the_loader(cpu, tmp_path):
    # A folder without config.json: loading the model names what is missing, in its words.
    cpu(0.5)
    settings = LLMSettings(base_model=str(tmp_path), max_seq_length=2048)
    assert resolve_for_device(settings).gradient_checkpointing is False
