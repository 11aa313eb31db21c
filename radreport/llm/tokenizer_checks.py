"""A base model's tokenizer made ready to train with, or refused with what is wrong with it.

Training pads batches and ends every target report with the end-of-sequence token, so a
tokenizer without one has nothing to stop generation on, and one without a pad token (Llama
3's has none) pads with the end-of-sequence token; generation readies its tokenizer here
too. A tokenizer with more tokens than the model has embeddings (a tokenizer from another
model) would index past the embedding table: PyTorch says only "index out of range in
self".
"""

from __future__ import annotations


class TokenizerError(ValueError):
    """A base model's tokenizer cannot be trained with."""


def ready_tokenizer(tokenizer, model_name: str, embeddings: int | None = None):
    """`tokenizer` with a pad token (its end-of-sequence token where it has none);
    TokenizerError naming `model_name` where it has no end-of-sequence token, or more tokens
    than the model's `embeddings`."""
    if tokenizer.eos_token_id is None:
        raise TokenizerError(
            f"the tokenizer of {model_name} has no end-of-sequence token (eos_token in its "
            "tokenizer_config.json): reports could never end"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if embeddings is not None and len(tokenizer) > embeddings:
        raise TokenizerError(
            f"the tokenizer of {model_name} has {len(tokenizer)} tokens, but the model has "
            f"embeddings for {embeddings} (vocab_size): the tokenizer belongs to another model"
        )
    return tokenizer
