"""Batches pre-tokenized Alpaca examples whose labels already carry the response-only mask.

Two layouts:
- padded: right-padded rows with an attention mask (labels -100 on padding), as long as the
  longest row rounded up to `pad_to_multiple_of`;
- padding-free: all examples of the batch concatenated into one row, `position_ids`
  restarting at 0 for each, which transformers turns into a block-diagonal causal mask
  (only when the forward gets no KV cache, use_cache=False as in training), so no compute
  goes to padding. The next-token shift cannot leak across examples: every
  example starts with prompt tokens, whose labels are -100.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from radreport.data.alpaca import IGNORE_INDEX


def padded_width(longest: int, multiple: int) -> int:
    """The length of a padded batch whose longest row has `longest` tokens."""
    return -(-longest // multiple) * multiple


@dataclass(frozen=True)
class ResponseOnlyCollator:
    pad_token_id: int
    padding_free: bool = False
    pad_to_multiple_of: int = 1

    def __post_init__(self):
        if self.pad_to_multiple_of < 1:
            raise ValueError(
                f"pad_to_multiple_of must be at least 1, got {self.pad_to_multiple_of}"
            )

    def __call__(self, features: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        if self.padding_free:
            return self._concatenated(features)
        return self._padded(features)

    def _padded(self, features: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        longest = max(len(feature["input_ids"]) for feature in features)
        width = padded_width(longest, self.pad_to_multiple_of)
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, feature in enumerate(features):
            length = len(feature["input_ids"])
            input_ids[row, :length] = torch.as_tensor(feature["input_ids"])
            labels[row, :length] = torch.as_tensor(feature["labels"])
            attention_mask[row, :length] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}

    def _concatenated(self, features: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        def joined(key: str) -> torch.Tensor:
            return torch.cat([torch.as_tensor(feature[key]) for feature in features])[None]

        positions = [torch.arange(len(feature["input_ids"])) for feature in features]
        return {
            "input_ids": joined("input_ids"),
            "labels": joined("labels"),
            "position_ids": torch.cat(positions)[None],
        }
