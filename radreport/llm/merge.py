"""Merged 16-bit export: base model + LoRA adapter folded into one standalone model folder.

Serving a merged model needs no peft and pays no per-layer adapter matmuls. The known pitfall
of merged exports is a folder that silently holds only the adapter (a few MB of LoRA weights
and an adapter_config.json) while looking like a model; every export is checked for full
weights before it is returned.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


class IncompleteExportError(RuntimeError):
    """A merged export folder that does not hold the full merged model."""


class QuantizedBaseError(ValueError):
    """A merge asked of a base model whose weights are quantized."""


def export_merged(
    base_model: str | Path,
    adapter_dir: str | Path,
    output_dir: str | Path,
    dtype: torch.dtype = torch.bfloat16,
) -> Path:
    """Write base + adapter as one safetensors model folder (with tokenizer) and verify it.

    `base_model` must hold unquantized weights: merging into a 4-bit base would bake its
    quantization error into the 16-bit export, so a quantized base is refused.
    """
    from peft import PeftModel

    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()):
        # Files left from an earlier export (an adapter_config.json above all) would make the
        # folder ambiguous to loaders.
        raise FileExistsError(f"Export folder {output_dir} is not empty")
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=dtype)
    if getattr(model, "hf_quantizer", None) is not None:
        raise QuantizedBaseError(
            f"{base_model} holds quantized weights; merge into its unquantized 16-bit original"
        )
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(output_dir)
    _tokenizer_source(adapter_dir, base_model).save_pretrained(output_dir)
    verify_full_model_folder(output_dir, expected_parameters=merged.num_parameters())
    return output_dir


def _tokenizer_source(adapter_dir: str | Path, base_model: str | Path):
    # Training may save the tokenizer it used beside the adapter; that one wins.
    has_own = (Path(adapter_dir) / "tokenizer_config.json").is_file()
    return AutoTokenizer.from_pretrained(adapter_dir if has_own else base_model)


def stored_parameter_count(folder: Path) -> int:
    """Number of values in the folder's safetensors files, read from headers only."""
    total = 0
    for shard in sorted(folder.glob("*.safetensors")):
        with safe_open(shard, framework="pt") as weights:
            for name in weights.keys():
                total += math.prod(weights.get_slice(name).get_shape())
    return total


def verify_full_model_folder(folder: Path, expected_parameters: int) -> None:
    """Raise IncompleteExportError unless `folder` is a full, adapter-free model folder."""
    leftovers = [name for name in ADAPTER_FILES if (folder / name).exists()]
    if leftovers:
        raise IncompleteExportError(f"{folder} holds adapter files {leftovers}, not a merge")
    for required in ("config.json", "tokenizer_config.json"):
        if not (folder / required).is_file():
            raise IncompleteExportError(f"{folder} has no {required}")
    stored = stored_parameter_count(folder)
    if stored != expected_parameters:
        raise IncompleteExportError(
            f"{folder} stores {stored:,} weights; the merged model has {expected_parameters:,}"
        )
