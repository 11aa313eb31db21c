"""What a training run stores beside its LoRA adapter."""

from __future__ import annotations

from typing import Literal

from radreport.config_loading import ConfigSection


class ExportSettings(ConfigSection):
    # True: the run also stores the base model with the adapter folded in, one 16-bit
    # safetensors model folder that loads with transformers alone (no peft, no adapter
    # matmuls when serving), as the model version's `merged_model` artifact
    # (radreport.llm.merge). It weighs as much as the base model in that dtype.
    merged: bool = False
    dtype: Literal["bfloat16", "float16"] = "bfloat16"
    # The unquantized original to merge into when llm.base_model is a 4-bit checkpoint:
    # folding the adapter into 4-bit weights would bake their rounding into the export, so
    # a quantized base is refused. E.g. unsloth/llama-3-8b-Instruct for
    # unsloth/llama-3-8b-Instruct-bnb-4bit. Same forms as llm.base_model; default: it.
    base_model: str | None = None
