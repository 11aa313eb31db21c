"""LLMSettings validation and how "auto" resolves per device."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from radreport.llm import device
from radreport.llm.device import CPU_FASTEST_BACKEND, resolve_for_device
from radreport.llm.settings import LLMSettings


def test_unknown_fields_are_rejected():
    with pytest.raises(ValidationError, match="lora_rank"):
        LLMSettings(lora_rank=8)


def test_checkpoints_must_fall_on_evaluations_when_early_stopping():
    with pytest.raises(ValidationError, match="multiple of eval_steps"):
        LLMSettings(eval_steps=20, save_steps=30)
    LLMSettings(eval_steps=20, save_steps=30, early_stopping_patience=None)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_steps": 0}, "max_steps 0 would train one step"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"target_modules": []}, "target_modules"),
    ],
)
def test_values_the_trainer_would_misread_or_fail_on_late_are_refused(fields, message):
    with pytest.raises(ValidationError, match=message):
        LLMSettings(**fields)


def test_max_steps_below_zero_trains_for_epochs_and_above_zero_counts_steps():
    assert LLMSettings(max_steps=-1).max_steps == -1
    assert LLMSettings(max_steps=5).max_steps == 5


def test_auto_on_cpu_is_the_measured_fastest_setup(monkeypatch):
    monkeypatch.setattr(device, "cuda_available", lambda: False)
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: False)
    resolved = resolve_for_device(LLMSettings())
    assert resolved.backend == CPU_FASTEST_BACKEND
    assert (resolved.load_in_4bit, resolved.gradient_checkpointing) == (False, False)
    assert resolved.compute_dtype == "float32"
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: True)
    assert resolve_for_device(LLMSettings()).compute_dtype == "bfloat16"


def test_what_the_machine_decides_is_the_list_a_run_records(monkeypatch):
    """steps/finetune_llm.py records DEVICE_RESOLVED_SETTINGS; a setting resolved by machine
    but missing from it would go unrecorded."""
    configured = LLMSettings().model_dump()
    for on_cuda in (False, True):
        monkeypatch.setattr(device, "cuda_available", lambda on_cuda=on_cuda: on_cuda)
        resolved = resolve_for_device(LLMSettings()).model_dump()
        decided = {key for key, value in configured.items() if value == "auto"}
        decided &= {key for key in resolved if resolved[key] != "auto"}
        assert decided == set(device.DEVICE_RESOLVED_SETTINGS)


def test_auto_attention_is_the_per_batch_kernel_on_cpu_and_sdpa_on_cuda(monkeypatch):
    from radreport.llm.grouped_attention import ATTENTION_NAME

    monkeypatch.setattr(device, "cuda_available", lambda: False)
    assert device.CPU_ATTENTION == ATTENTION_NAME
    for length in (128, 736, 5000):
        assert resolve_for_device(LLMSettings(max_seq_length=length)).attention == ATTENTION_NAME
    monkeypatch.setattr(device, "cuda_available", lambda: True)
    monkeypatch.setattr(device.torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_for_device(LLMSettings(max_seq_length=128)).attention == "sdpa"


def test_auto_on_cuda_is_the_talks_setup(monkeypatch):
    monkeypatch.setattr(device, "cuda_available", lambda: True)
    monkeypatch.setattr(device.torch.cuda, "is_bf16_supported", lambda: True)
    resolved = resolve_for_device(LLMSettings())
    assert resolved.backend == "unsloth"
    assert (resolved.load_in_4bit, resolved.gradient_checkpointing) == (True, True)
    assert resolved.compute_dtype == "bfloat16"


def test_explicit_choices_are_kept(monkeypatch):
    monkeypatch.setattr(device, "cuda_available", lambda: False)
    explicit = LLMSettings(
        backend="unsloth",
        load_in_4bit=True,
        gradient_checkpointing=True,
        compute_dtype="float16",
        attention="sdpa",
        pad_to_multiple_of=8,
    )
    assert resolve_for_device(explicit) == explicit


def test_auto_padding_multiple_is_16_on_cpu_and_none_on_cuda(monkeypatch):
    monkeypatch.setattr(device, "cuda_available", lambda: False)
    assert resolve_for_device(LLMSettings()).pad_to_multiple_of == 16
    monkeypatch.setattr(device, "cuda_available", lambda: True)
    monkeypatch.setattr(device.torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_for_device(LLMSettings()).pad_to_multiple_of == 1
    with pytest.raises(ValueError, match="pad_to_multiple_of"):
        LLMSettings(pad_to_multiple_of=0)


@pytest.mark.parametrize("attention", ["eager", "sdpa", "grouped_eager_or_sdpa"])
def test_hf_backend_loads_the_resolved_attention_kernel(tiny_llama_dir, attention):
    from radreport.llm.backend_hf import load_model

    settings = LLMSettings(base_model=str(tiny_llama_dir), attention=attention, lora_r=4)
    model, _ = load_model(resolve_for_device(settings))
    assert model.config._attn_implementation == attention
