"""A tiny random Llama with the bundled SmolLM2 tokenizer, saved as a model folder."""

from __future__ import annotations

from pathlib import Path


def save_tiny_llama(folder: Path, **config_overrides) -> Path:
    """A 2-layer random Llama (seed 0) in `folder`; `config_overrides` change its LlamaConfig.

    Weight values do not matter to the mechanics under test (padding, caching, stopping,
    merging, the pipeline's wiring), and it loads and trains in a fraction of a second.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from radreport.llm.bundled import bundled_model_dir

    tokenizer = AutoTokenizer.from_pretrained(bundled_model_dir())
    fields = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
        # Sharper than the default 0.02, so greedy choices are not near-ties that rounding
        # noise could flip.
        "initializer_range": 0.2,
        "tie_word_embeddings": True,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = LlamaConfig(**{**fields, **config_overrides})
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def copy_as_model_type(source: Path, folder: Path, model_type: str) -> Path:
    """A copy of the model folder `source` whose config.json names another `model_type`:
    the architecture that checks made before loading read, with weights that still load."""
    import json
    import shutil

    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": model_type}))
    return folder
