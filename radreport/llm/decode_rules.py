"""What every decoder is told about a batch's rows besides the model: when a row stops, what
fills it after its stop, and which tokens it may not take.

One object, built by ReportGenerator from its settings and handed unchanged to whichever
decoder runs (PyTorch greedy, MBR sampling or beams, the native kernel, ONNX Runtime), so a
rule added here reaches all of them, and none can be called with a rule left out.
"""

from __future__ import annotations

from dataclasses import dataclass

from radreport.llm.section_stop import SectionStop


@dataclass(frozen=True)
class DecodeRules:
    """`stop_ids`: a row stops at its first of these (kept in its output); `pad_id` fills the
    output after a stop. `no_repeat_ngram_size` > 0 bans repeats of a row's own n-grams
    (greedy and MBR decoding; beam search does not block). `section_stop`: a row also stops
    once it opens another template section. `stop_logit_bias` is added to the stop ids'
    logits at every step (negative: longer reports)."""

    stop_ids: tuple[int, ...]
    pad_id: int
    no_repeat_ngram_size: int = 0
    section_stop: SectionStop | None = None
    stop_logit_bias: float = 0.0

    def __post_init__(self):
        if self.no_repeat_ngram_size < 0:
            raise ValueError(
                f"no_repeat_ngram_size must be 0 or more, got {self.no_repeat_ngram_size}"
            )
        # Ids given as a list are kept as a tuple: the rules cannot change under a decoder.
        object.__setattr__(self, "stop_ids", tuple(int(token) for token in self.stop_ids))
