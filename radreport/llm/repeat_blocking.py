"""Repeated n-gram blocking for greedy decoding: a small model's typical failure is a loop
("The lungs are clear. The lungs are clear. ..."), which no radiology report contains.

Unlike transformers' `no_repeat_ngram_size`, only the generated tokens count, not the
prompt: with retrieval-augmented prompting, copying phrases of the example report shown in
the prompt is wanted.
"""

from __future__ import annotations

import torch


class RepeatedNgramBlocker:
    """Per row, bans every token that would complete an n-gram the row already generated."""

    def __init__(self, batch: int, size: int):
        if size < 2:
            raise ValueError(f"n-gram size must be at least 2, got {size}")
        self.size = size
        self._tokens: list[list[int]] = [[] for _ in range(batch)]
        # Per row: the (size - 1) tokens seen so far in front of each next token.
        self._followers: list[dict[tuple[int, ...], set[int]]] = [{} for _ in range(batch)]

    def block(self, logits: torch.Tensor) -> torch.Tensor:
        """`logits` (batch, vocabulary) with the banned tokens at -inf (in place)."""
        for row, tokens in enumerate(self._tokens):
            if len(tokens) < self.size - 1:
                continue
            banned = self._followers[row].get(tuple(tokens[len(tokens) - self.size + 1 :]))
            if banned:
                logits[row, list(banned)] = float("-inf")
        return logits

    def append(self, next_ids: list[int]) -> None:
        """Record the tokens just chosen, one per row."""
        for row, token in enumerate(next_ids):
            tokens = self._tokens[row]
            tokens.append(token)
            if len(tokens) >= self.size:
                prefix = tuple(tokens[len(tokens) - self.size : -1])
                self._followers[row].setdefault(prefix, set()).add(token)

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows, in this order (the decoder dropped the others)."""
        self._tokens = [self._tokens[row] for row in rows]
        self._followers = [self._followers[row] for row in rows]
