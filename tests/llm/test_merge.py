"""Merged export: same greedy tokens as base + adapter, and never an adapter-only folder."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

from radreport.llm.generate import ReportGenerator
from radreport.llm.merge import (
    IncompleteExportError,
    QuantizedBaseError,
    export_merged,
    verify_full_model_folder,
)

IMPRESSIONS = ["Cardiomegaly with mild bibasilar infiltrates.", "No acute disease."]


def _greedy_tokens(model, tokenizer_dir) -> list[list[int]]:
    # Token ids, not text: two different tokens can decode to the same string.
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, padding_side="left")
    encoded = tokenizer(IMPRESSIONS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(
            **encoded, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    return output.tolist()


def _load(model_dir):
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


def test_merged_model_decodes_like_base_plus_adapter(tiny_llama_dir, tiny_adapter_dir, tmp_path):
    merged_dir = export_merged(tiny_llama_dir, tiny_adapter_dir, tmp_path / "merged", torch.float32)
    unmerged = PeftModel.from_pretrained(_load(tiny_llama_dir), str(tiny_adapter_dir)).eval()
    with_adapter = _greedy_tokens(unmerged, tiny_llama_dir)

    assert _greedy_tokens(_load(merged_dir), merged_dir) == with_adapter
    assert _greedy_tokens(_load(tiny_llama_dir), tiny_llama_dir) != with_adapter  # it matters
    # ReportGenerator merges the adapter in memory: it must decode the same way too.
    in_memory = ReportGenerator(tiny_llama_dir, tiny_adapter_dir, dtype=torch.float32).model
    assert _greedy_tokens(in_memory, tiny_llama_dir) == with_adapter


def test_export_holds_full_weights_and_no_adapter_files(tiny_llama_dir, tiny_adapter_dir, tmp_path):
    merged_dir = export_merged(
        tiny_llama_dir, tiny_adapter_dir, tmp_path / "merged", torch.bfloat16
    )
    assert not (merged_dir / "adapter_config.json").exists()
    assert json.loads((merged_dir / "config.json").read_text())["dtype"] == "bfloat16"
    assert (merged_dir / "tokenizer.json").is_file()


def test_an_adapter_only_folder_is_caught(tiny_llama_dir, tiny_adapter_dir, tmp_path):
    fake_export = tmp_path / "adapter-only"
    shutil.copytree(tiny_adapter_dir, fake_export)
    parameters = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).num_parameters()
    with pytest.raises(IncompleteExportError, match="adapter files"):
        verify_full_model_folder(fake_export, parameters)
    # The same weights under a full model's file names still are only the adapter.
    (fake_export / "adapter_config.json").unlink()
    (fake_export / "adapter_model.safetensors").rename(fake_export / "model.safetensors")
    for name in ("config.json", "tokenizer_config.json"):
        shutil.copy(tiny_llama_dir / name, fake_export / name)
    with pytest.raises(IncompleteExportError, match="weights"):
        verify_full_model_folder(fake_export, parameters)


def test_a_non_empty_export_folder_is_refused(tiny_llama_dir, tiny_adapter_dir, tmp_path):
    (tmp_path / "stale.txt").write_text("left from an earlier export")
    with pytest.raises(FileExistsError):
        export_merged(tiny_llama_dir, tiny_adapter_dir, tmp_path)


def test_a_quantized_base_is_refused(tiny_llama_dir, tiny_adapter_dir, tmp_path):
    # A real 4-bit checkpoint (bitsandbytes NF4, as unsloth's "-bnb-4bit" models are).
    quantized = AutoModelForCausalLM.from_pretrained(
        tiny_llama_dir, quantization_config=BitsAndBytesConfig(load_in_4bit=True)
    )
    quantized.save_pretrained(tmp_path / "base-4bit")
    with pytest.raises(QuantizedBaseError, match="base-4bit holds quantized weights"):
        export_merged(tmp_path / "base-4bit", tiny_adapter_dir, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()
