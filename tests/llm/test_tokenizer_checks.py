"""A base model's tokenizer: padded with its end-of-sequence token where it has no pad token,
refused without one, or with more tokens than the model has embeddings."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from radreport.llm.finetune import finetune
from radreport.llm.settings import LLMSettings
from radreport.llm.tokenizer_checks import TokenizerError, ready_tokenizer
from tests.llm.tiny_llama import save_tiny_llama
from tests.llm.tiny_training import ROWS, tiny_settings


def test_a_tokenizer_without_a_pad_token_pads_with_its_end_of_sequence_token(tiny_llama_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tokenizer.pad_token = None
    ready = ready_tokenizer(tokenizer, "m", len(tokenizer))
    assert ready.pad_token_id == ready.eos_token_id is not None


def test_a_tokenizer_without_an_end_of_sequence_token_is_refused(tiny_llama_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tokenizer.eos_token = None
    with pytest.raises(TokenizerError, match="the tokenizer of m has no end-of-sequence token"):
        ready_tokenizer(tokenizer, "m")


def test_training_a_base_without_a_pad_token_works_and_a_smaller_vocabulary_is_refused(
    tiny_llama_dir, tmp_path
):
    # Llama 3's tokenizer has no pad token: training pads with the end-of-sequence token.
    no_pad = save_tiny_llama(tmp_path / "no-pad", pad_token_id=None)
    config = (no_pad / "tokenizer_config.json").read_text()
    (no_pad / "tokenizer_config.json").write_text(config.replace('"pad_token"', '"unused_pad"'))
    assert AutoTokenizer.from_pretrained(no_pad).pad_token is None
    result = finetune(ROWS, ROWS[:4], LLMSettings(**tiny_settings(no_pad)), tmp_path / "run")
    assert result.metrics["train_steps"] > 0
    # The model has 1,000 embeddings, the tokenizer 49,152 tokens.
    small = save_tiny_llama(tmp_path / "small-vocab", vocab_size=1000)
    with pytest.raises(
        TokenizerError, match="has 49152 tokens, but the model has embeddings for 1000"
    ):
        finetune(ROWS, ROWS[:4], LLMSettings(**tiny_settings(small)), tmp_path / "run2")
