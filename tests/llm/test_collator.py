"""Batches keep the response-only mask; padding-free batches give the same loss as padded ones."""

from __future__ import annotations

import torch

from radreport.data.alpaca import IGNORE_INDEX
from radreport.llm.collator import ResponseOnlyCollator

FEATURES = [
    {"input_ids": [5, 6, 7, 8, 9], "labels": [IGNORE_INDEX, IGNORE_INDEX, 7, 8, 9]},
    {"input_ids": [10, 11, 12], "labels": [IGNORE_INDEX, 11, 12]},
]


def test_padded_batch_masks_padding():
    batch = ResponseOnlyCollator(pad_token_id=2)(FEATURES)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [10, 11, 12, 2, 2]]
    assert batch["labels"][1].tolist() == [IGNORE_INDEX, 11, 12, IGNORE_INDEX, IGNORE_INDEX]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]


def test_padded_batch_rounds_its_length_up_to_the_multiple():
    batch = ResponseOnlyCollator(pad_token_id=2, pad_to_multiple_of=4)(FEATURES)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 2, 2, 2], [10, 11, 12, 2, 2, 2, 2, 2]]
    assert (batch["labels"][:, 5:] == IGNORE_INDEX).all()
    assert batch["attention_mask"].sum(dim=1).tolist() == [5, 3]
    # already a multiple: nothing added
    assert ResponseOnlyCollator(2, pad_to_multiple_of=5)(FEATURES)["input_ids"].shape == (2, 5)


def test_padding_free_batch_is_one_row_with_restarting_positions():
    batch = ResponseOnlyCollator(pad_token_id=2, padding_free=True)(FEATURES)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 10, 11, 12]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 0, 1, 2]]
    assert "attention_mask" not in batch


def test_padding_free_loss_equals_padded_loss(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, attn_implementation="sdpa")
    padded = ResponseOnlyCollator(pad_token_id=2)(FEATURES)
    packed = ResponseOnlyCollator(pad_token_id=2, padding_free=True)(FEATURES)
    with torch.no_grad():
        padded_loss = model(**padded, use_cache=False).loss
        # Without a cache, as in training: transformers only reads packing from position_ids
        # when no past key values are passed.
        packed_loss = model(**packed, use_cache=False).loss
        rounded = ResponseOnlyCollator(pad_token_id=2, pad_to_multiple_of=8)(FEATURES)
        rounded_loss = model(**rounded, use_cache=False).loss
    # Equal only if the packed examples cannot attend to each other.
    torch.testing.assert_close(packed_loss, padded_loss)
    # More padding changes nothing that is scored.
    torch.testing.assert_close(rounded_loss, padded_loss)
