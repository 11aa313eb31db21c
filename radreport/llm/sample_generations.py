"""Reports written by the model under training at each evaluation, for a few fixed
validation impressions: a loss value says little about what the text reads like."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from transformers import TrainerCallback

from radreport.llm.generate import ReportGenerator

logger = logging.getLogger(__name__)

SampleRows = list[dict[str, object]]


class SampleGenerationsCallback(TrainerCallback):
    """After every evaluation, one row per sample (step, study_id, impression, reference and
    the greedy `generated` report) is added to `samples` and, when given, passed on to
    `on_samples(step, rows)` as it comes (e.g. to log it).

    The final `evaluate()` of a run repeats the last step: a step is sampled once. A failure
    to generate is logged and training goes on: the samples are a diagnostic, the adapter is
    the product.
    """

    def __init__(
        self,
        rows: Sequence[Mapping],
        max_new_tokens: int = 96,
        on_samples: Callable[[int, SampleRows], None] | None = None,
    ):
        self.rows = [dict(row) for row in rows]
        self.on_samples = on_samples
        self.samples: SampleRows = []
        self.max_new_tokens = max_new_tokens

    def on_evaluate(self, args, state, control, model=None, processing_class=None, **kwargs):
        step = state.global_step
        already_sampled = bool(self.samples) and self.samples[-1]["step"] == step
        if not self.rows or already_sampled or model is None:
            return
        try:
            generated = self._generate(model, processing_class)
        except Exception as error:  # noqa: BLE001 - see the class docstring
            logger.warning("sample generations at step %d failed: %r", step, error)
            return
        rows = [self._row(step, row, text) for row, text in zip(self.rows, generated, strict=True)]
        self.samples.extend(rows)
        if self.on_samples is not None:
            self.on_samples(step, rows)

    def _generate(self, model, tokenizer) -> list[str]:
        was_training, padding_side = model.training, tokenizer.padding_side
        # Decoding needs every prompt to end at the last column; the training collator
        # pads by itself, so the tokenizer's side is borrowed and given back.
        tokenizer.padding_side = "left"
        model.eval()
        try:
            generator = ReportGenerator.for_loaded_model(
                model,
                tokenizer,
                max_new_tokens=self.max_new_tokens,
                batch_size=len(self.rows),
            )
            return generator.generate(
                [row["impression"] for row in self.rows],
                [row.get("examples") or () for row in self.rows],
                progress=False,
            )
        finally:
            tokenizer.padding_side = padding_side
            model.train(was_training)

    @staticmethod
    def _row(step: int, row: Mapping, generated: str) -> dict[str, object]:
        return {
            "step": step,
            "study_id": str(row.get("study_id", "")),
            "impression": row["impression"],
            "reference": row.get("report", ""),
            "generated": generated,
        }
