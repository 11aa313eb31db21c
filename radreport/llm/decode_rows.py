"""The rows of a batch being decoded and the rules every token loop applies to them.

The PyTorch loop (generate._decode_loop), the native loop (native_generate.native_decode)
and the ONNX Runtime loop (onnx_generate.onnx_greedy_decode) differ only in how they compute
a step's logits and keep their caches; choosing the next tokens, recording them and deciding
which rows go on is this one piece of code, so every decoder stops, blocks and biases alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from radreport.llm.repeat_blocking import RepeatedNgramBlocker
from radreport.llm.section_stop import SectionStop

Choose = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class DecodeRows:
    """Output (batch, max_new_tokens), `pad_id` after each row's stop, and the output rows
    still decoding (`rows`, in batch order).

    Each step, `choose(logits, rows)` picks the next token of every unfinished row, after
    `stop_logit_bias` is added to the stop ids' logits and, with `no_repeat_ngram_size`,
    repeats of a row's own n-grams are banned. A row stops at its first stop id (kept in
    the output) or, with `section_stop`, once it opens another template section.
    """

    def __init__(
        self,
        batch: int,
        max_new_tokens: int,
        stop_ids: Sequence[int],
        pad_id: int,
        choose: Choose,
        no_repeat_ngram_size: int = 0,
        section_stop: SectionStop | None = None,
        stop_logit_bias: float = 0.0,
        device: torch.device | None = None,
    ):
        self.stop_ids = torch.tensor(list(stop_ids), dtype=torch.long, device=device)
        self.output = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
        self.rows = torch.arange(batch, device=device)
        self.steps = 0
        self._choose = choose
        self._section_stop = section_stop
        self._stop_logit_bias = stop_logit_bias
        self._blocker = (
            RepeatedNgramBlocker(batch, no_repeat_ngram_size) if no_repeat_ngram_size else None
        )

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
