"""The rows of a batch being decoded and the rules every token loop applies to them.

The PyTorch loop (generate._decode_loop), the native loop (native_generate.native_decode)
and the ONNX Runtime loop (onnx_generate.onnx_greedy_decode) differ only in how they compute
a step's logits and keep their caches; choosing the next tokens, recording them and deciding
which rows go on is this one piece of code, so every decoder stops, blocks and biases alike.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from radreport.llm.decode_rules import DecodeRules
from radreport.llm.repeat_blocking import RepeatedNgramBlocker

Choose = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class DecodeRows:
    """Output (batch, max_new_tokens), the rules' `pad_id` after each row's stop, the
    output rows still decoding (`rows`, in batch order) and how many tokens each row has
    written (`lengths`, its stop included).

    Each step, `choose(logits, rows)` picks the next token of every unfinished row, after the
    rules' stop bias and n-gram ban are applied to `logits`. A row stops at its first stop id
    (kept in the output) or, with the rules' section stop, once it opens another section.
    """

    def __init__(
        self,
        batch: int,
        max_new_tokens: int,
        rules: DecodeRules,
        choose: Choose,
        device: torch.device | None = None,
    ):
        self.stop_ids = torch.tensor(rules.stop_ids, dtype=torch.long, device=device)
        self.output = torch.full(
            (batch, max_new_tokens), rules.pad_id, dtype=torch.long, device=device
        )
        self.rows = torch.arange(batch, device=device)
        self.lengths = torch.zeros(batch, dtype=torch.long, device=device)
        self.steps = 0
        self._choose = choose
        self._section_stop = rules.section_stop
        self._stop_logit_bias = rules.stop_logit_bias
        size = rules.no_repeat_ngram_size
        self._blocker = RepeatedNgramBlocker(batch, size) if size else None

    def choose(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Record the next token of each unfinished row from its `logits` (one row of logits
        per row in `rows`): (next ids, which of those rows go on)."""
        if self._stop_logit_bias:
            logits = logits.float()
            logits[:, self.stop_ids] += self._stop_logit_bias
        if self._blocker is not None:
            logits = self._blocker.block(logits.float())
        next_ids = self._choose(logits, self.rows)
        if self._blocker is not None:
            self._blocker.append(next_ids.tolist())
        self.output[self.rows, self.steps] = next_ids
        self.steps += 1
        self.lengths[self.rows] = self.steps
        going = ~torch.isin(next_ids, self.stop_ids)
        if self._section_stop is not None:
            going &= ~self._section_stop.ended_rows(self.output[self.rows, : self.steps])
        return next_ids, going

    def keep(self, kept: torch.Tensor) -> None:
        """Only the rows at indices `kept` (of `rows`) decode on."""
        self.rows = self.rows[kept]
        if self._blocker is not None:
            self._blocker.keep(kept.tolist())

    def result(self) -> torch.Tensor:
        return self.output[:, : self.steps]
