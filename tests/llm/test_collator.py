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
    # Equal only if the packed examples cannot attend to each other.
    torch.testing.assert_close(packed_loss, padded_loss)
