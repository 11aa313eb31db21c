"""LoRA target names are checked against the model before any adapter is made."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from radreport.llm.finetune import finetune
from radreport.llm.lora_targets import check_lora_targets
from radreport.llm.settings import ALL_LINEAR_LAYERS, LLMSettings
from tests.llm.tiny_llama import save_tiny_llama
from tests.llm.tiny_training import ROWS, tiny_settings


def _model(folder):
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)


def test_every_linear_layer_of_a_llama_is_a_valid_target(tiny_llama_dir):
    check_lora_targets(_model(tiny_llama_dir), ALL_LINEAR_LAYERS)


def test_a_misspelt_name_beside_valid_ones_is_refused_with_the_layers_there_are(
    tiny_llama_dir,
):
    with pytest.raises(ValueError) as error:
        check_lora_targets(_model(tiny_llama_dir), ["q_proj", "v_proj", "gate_prj"])
    message = str(error.value)
    assert message.startswith("llm.target_modules: 'gate_prj' matches no module")
    assert "gate_proj" in message and "q_proj" in message and "\n" not in message


def test_the_embedding_and_head_are_refused_only_where_they_share_their_weights(
    tiny_llama_dir, tmp_path
):
    for shared in ("embed_tokens", "lm_head"):
        with pytest.raises(ValueError, match=f"'{shared}' is the input embedding or the output"):
            check_lora_targets(_model(tiny_llama_dir), ["q_proj", shared])
    untied = save_tiny_llama(tmp_path, tie_word_embeddings=False)
    check_lora_targets(_model(untied), ["q_proj", "embed_tokens", "lm_head"])


def test_a_run_with_a_misspelt_target_stops_before_training(tiny_llama_dir, tmp_path):
    fields = tiny_settings(tiny_llama_dir, target_modules=["q_proj", "gate_prj"])
    with pytest.raises(ValueError, match="'gate_prj' matches no module"):
        finetune(ROWS, ROWS[:4], LLMSettings(**fields), tmp_path / "run")
    assert not list((tmp_path / "run").glob("checkpoint-*"))


def test_gpt2s_conv1d_layers_are_listed_as_layers_lora_adapts():
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100))
    with pytest.raises(ValueError) as error:
        check_lora_targets(gpt2, ["q_proj"])
    assert str(error.value).endswith("its linear layers are c_attn, c_fc, c_proj, lm_head")
    check_lora_targets(gpt2, ["c_attn", "c_proj", "c_fc"])
