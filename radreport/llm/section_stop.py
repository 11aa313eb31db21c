"""Stop a row once it opens another section of the prompt template, or, given the training
reports' shape, once it begins a second report.

A model that has not learned where a report ends (one trained for a few steps at a low
rate) writes "### Response:" and a second report instead of its end-of-sequence token.
Everything from that header on is cut from the report anyway (`alpaca.response_text`), so
decoding it only spends time: without this stop such a model decodes its whole token budget
for every report. The same holds for a second report begun without a header, which the
generator cuts by the `ReportShape` (radreport.llm.report_shape).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import StoppingCriteria

from radreport.data.alpaca import opens_section
from radreport.llm.report_shape import ReportShape

# A template header is a newline, "###" and a space or tab: a few tokens; a section label
# ("\nHEART AND MEDIASTINUM:") is 10 on SmolLM2's tokenizer. The tail holds five-word labels,
# and only the tail is decoded (a few microseconds), unless it holds a newline: then the row,
# for the labels before it (about 13 us for 80 tokens).
TAIL_TOKENS = 24


class SectionStop:
    """`shape`, when given, also ends a row at the first mark of a second report."""

    def __init__(self, tokenizer, shape: ReportShape | None = None):
        self.tokenizer, self.shape = tokenizer, shape

    def ended(self, generated_ids: Sequence[int]) -> bool:
        """Whether a row's generated ids (all of them so far) have opened a section."""
        return self._row_ends(list(generated_ids))

    def ended_rows(self, generated: torch.Tensor) -> torch.Tensor:
        """`ended` for each row of `generated` (rows, tokens so far), as a bool tensor."""
        flags = [self._row_ends(row) for row in generated]
        return torch.tensor(flags, dtype=torch.bool, device=generated.device)

    def _row_ends(self, row: list[int] | torch.Tensor) -> bool:
        # Only the tail is decoded, unless a line has begun in it.
        start = max(0, len(row) - TAIL_TOKENS)
        tail = self._decode(row[start:])
        if not start:
            line_starts = tail
        else:
            # The tail may begin inside a line: only what follows its first newline is known
            # to start a line.
            newline = tail.find("\n")
            line_starts = tail[newline + 1 :] if newline >= 0 else ""
        if opens_section(line_starts):
            return True
        # Both marks of a second report follow a newline; a repeated label needs the row.
        if self.shape is None or "\n" not in tail:
            return False
        return self.shape.report_end(self._decode(row).lstrip()) is not None

    def _decode(self, ids: list[int] | torch.Tensor) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        # No "clean-up" of spaces, as in the reports themselves (it is meant for WordPiece).
        return self.tokenizer.decode(
            ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )


class SectionStopCriteria(StoppingCriteria):
    """The same stop for transformers' `generate` (beam search), whose ids include the prompt."""

    def __init__(self, stop: SectionStop, prompt_width: int):
        self.stop, self.prompt_width = stop, prompt_width

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        return self.stop.ended_rows(input_ids[:, self.prompt_width :])
