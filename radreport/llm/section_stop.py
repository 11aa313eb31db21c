"""Stop a row once it opens another section of the prompt template.

A model that has not learned where a report ends (one trained for a few steps at a low
rate) writes "### Response:" and a second report instead of its end-of-sequence token.
Everything from that header on is cut from the report anyway (`alpaca.response_text`), so
decoding it only spends time: without this stop such a model decodes its whole token budget
for every report.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import StoppingCriteria

from radreport.data.alpaca import opens_section

# A header is a newline, "###" and a space or tab: a few tokens. The tail holds them with
# room to spare, and only the tail is decoded, so a check costs the same at every step.
TAIL_TOKENS = 8


class SectionStop:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def ended(self, generated_ids: Sequence[int]) -> bool:
        """Whether a row's generated ids (all of them so far) have opened a section."""
        start = max(0, len(generated_ids) - TAIL_TOKENS)
        return self._tail_ends(list(generated_ids[start:]), from_start=start == 0)

    def ended_rows(self, generated: torch.Tensor) -> torch.Tensor:
        """`ended` for each row of `generated` (rows, tokens so far), as a bool tensor."""
        start = max(0, generated.shape[1] - TAIL_TOKENS)
        tails = generated[:, start:].tolist()
        flags = [self._tail_ends(tail, from_start=start == 0) for tail in tails]
        return torch.tensor(flags, dtype=torch.bool, device=generated.device)

    def _tail_ends(self, tail_ids: list[int], from_start: bool) -> bool:
        # No "clean-up" of spaces, as in the reports themselves (it is meant for WordPiece).
        text = self.tokenizer.decode(
            tail_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        if not from_start:
            # The tail may begin inside a line: only what follows its first newline is known
            # to start a line.
            newline = text.find("\n")
            text = text[newline + 1 :] if newline >= 0 else ""
        return opens_section(text)


class SectionStopCriteria(StoppingCriteria):
    """The same stop for transformers' `generate` (beam search), whose ids include the prompt."""

    def __init__(self, stop: SectionStop, prompt_width: int):
        self.stop, self.prompt_width = stop, prompt_width

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        return self.stop.ended_rows(input_ids[:, self.prompt_width :])
