"""Choose a trained model's stop bias on its own validation studies.

Decoding by likelihood ends reports early, and corpus BLEU's brevity penalty charges every
missing word to every n-gram order; `stop_logit_bias` below 0 makes reports end later. How
far depends on the trained model: on IU X-Ray, models trained at learning rates 3e-4 and
6e-4 wanted -0.5 and -2.5, and each lost BLEU-4 at the other's value (BENCHMARKS.md). Over
every bias tried on those models, BLEU-4 on held-out studies peaked where the length ratio
(generated words / reference words, as BLEU counts them) passed 1. So the calibration walks
from the configured bias, one step at a time in the direction that moves the ratio towards
1, until the ratio crosses 1, and keeps the tried bias whose ratio is closest to 1.

It chooses by the length ratio, not by BLEU-4 on the same studies: the ratio is what the
bias moves directly, and on a hundred studies it moves by far more than its noise from one
step to the next, while BLEU-4 differences of the size at stake are within that noise.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from radreport.llm.prompt_table import split_rows
from radreport.llm.settings import STOP_LOGIT_BIAS_LIMIT, LLMSettings
from radreport.metrics.bleu_statistics import bleu_from_statistics, corpus_statistics
from radreport.metrics.normalize import normalize_report

if TYPE_CHECKING:
    from radreport.llm.generate import ReportGenerator

logger = logging.getLogger(__name__)


class NothingToCalibrateOn(ValueError):
    """No validation study with a reference and a prompt that fits the model's context."""


@dataclass(frozen=True)
class StopBiasTrial:
    bias: float
    length_ratio: float  # generated words / reference words over the studies
    bleu4: float  # corpus BLEU-4 on the same studies, for the record: it chooses nothing


@dataclass(frozen=True)
class StopBiasCalibration:
    start_bias: float
    chosen_bias: float
    studies: int
    trials: tuple[StopBiasTrial, ...]  # in the order they were decoded
    # (study_id, report) of each sampled study at the chosen bias, so the split's generation
    # need not decode them again; calibrate_on_validation fills it, calibrate_stop_bias
    # (which sees no study ids) leaves it empty. Not part of as_dict: reports are no metadata.
    chosen_reports: tuple[tuple[str, str], ...] = ()
    # The study ids among them whose reports ran out of room (the token budget cut them).
    chosen_out_of_room: tuple[str, ...] = ()

    @property
    def chosen(self) -> StopBiasTrial:
        return next(trial for trial in self.trials if trial.bias == self.chosen_bias)

    def as_dict(self) -> dict:
        return {
            "start_bias": self.start_bias,
            "chosen_bias": self.chosen_bias,
            "studies": self.studies,
            "trials": [asdict(trial) for trial in self.trials],
        }


def score_lengths(reports: Sequence[str], references: Sequence[str], bias: float) -> StopBiasTrial:
    """Length ratio and BLEU-4 of `reports` (decoded at `bias`), counted as the evaluation
    counts them (words of normalised text)."""
    statistics = corpus_statistics(
        [normalize_report(text) for text in reports],
        [normalize_report(text) for text in references],
    ).sum(axis=0)
    generated_words, reference_words = statistics[0], statistics[1]
    return StopBiasTrial(
        bias=bias,
        length_ratio=float(generated_words / reference_words),
        bleu4=float(bleu_from_statistics(statistics, 4)),
    )


def calibrate_stop_bias(
    decode: Callable[[float], list[str]],
    references: Sequence[str],
    start_bias: float,
    step: float,
    max_tries: int,
) -> StopBiasCalibration:
    """`decode(bias)` writes one report per reference at that stop bias. At most `max_tries`
    decodes, never outside the settings' bounds, and none after a step that changed no
    length; ties go to the bias nearer the start."""
    if not references:
        raise NothingToCalibrateOn("no validation study to calibrate the stop bias on")
    if not any(normalize_report(text).split() for text in references):
        raise NothingToCalibrateOn(
            "the validation studies' reports are all empty: no length to match"
        )
    if step <= 0 or max_tries < 1:
        raise ValueError(f"step ({step}) must be above 0 and max_tries ({max_tries}) at least 1")

    def trial(bias: float) -> StopBiasTrial:
        scored = score_lengths(decode(bias), references, bias)
        logger.info(
            "stop bias %+g: length ratio %.3f, BLEU-4 %.3f on %d validation studies",
            bias, scored.length_ratio, scored.bleu4, len(references),
        )  # fmt: skip
        return scored

    trials = [trial(start_bias)]
    # Short reports (ratio below 1) need a lower bias: the stop tokens lose more logit.
    direction = -1.0 if trials[0].length_ratio < 1 else 1.0
    while trials[-1].length_ratio != 1 and len(trials) < max_tries:
        bias = float(
            np.clip(
                trials[-1].bias + direction * step, -STOP_LOGIT_BIAS_LIMIT, STOP_LOGIT_BIAS_LIMIT
            )
        )
        if bias == trials[-1].bias:  # at a bound
            break
        trials.append(trial(bias))
        if (trials[-1].length_ratio >= 1) != (trials[0].length_ratio >= 1):  # crossed
            break
        if trials[-1].length_ratio == trials[-2].length_ratio:
            # Not one word more or less: these reports end where the stop tokens are far
            # from winning (or elsewhere: the token budget, a section stop), and steps of
            # this size do not reach them.
            logger.info("the stop bias moved no report's length; the walk stops")
            break
    best = min(trials, key=lambda t: (_distance_from_one(t.length_ratio), abs(t.bias - start_bias)))
    return StopBiasCalibration(start_bias, best.bias, len(references), tuple(trials))


def _distance_from_one(ratio: float) -> float:
    # On a log scale: half as long is as far from 1 as twice as long. An empty output
    # (ratio 0) is the farthest of all.
    return abs(math.log(ratio)) if ratio > 0 else math.inf


def calibrate_on_validation(
    generator: ReportGenerator, alpaca_table: pd.DataFrame, settings: LLMSettings
) -> StopBiasCalibration:
    """Calibrate `generator` (the trained model's) on up to
    `settings.stop_bias_calibration_studies` validation studies of `alpaca_table`, a seeded
    sample of those with a reference whose prompt fits the model's context, prompted as in
    training. The sample's reports at the chosen bias come back in `chosen_reports`, and
    which of them ran out of room in `chosen_out_of_room`. The generator is left at the
    bias it had. NothingToCalibrateOn when no validation study is usable."""
    val = split_rows(alpaca_table, "val")
    too_long = {
        error.index
        for error in generator.prompts_too_long(
            [row["impression"] for row in val], [row["examples"] for row in val]
        )
    }
    usable = [
        row
        for index, row in enumerate(val)
        if index not in too_long and normalize_report(row["report"]).split()
    ]
    if not usable:
        raise NothingToCalibrateOn(
            f"none of the {len(val)} validation studies has a reference report and a prompt "
            "that fits the model's context"
        )
    order = np.random.default_rng(settings.seed).permutation(len(usable))
    sample = [usable[i] for i in sorted(order[: settings.stop_bias_calibration_studies])]
    original = generator.rules
    decoded: dict[float, list[str]] = {}
    out_of_room: dict[float, tuple[bool, ...]] = {}

    def decode(bias: float) -> list[str]:
        generator.rules = replace(original, stop_logit_bias=bias)
        decoded[bias] = generator.generate(
            [row["impression"] for row in sample], [row["examples"] for row in sample]
        )
        out_of_room[bias] = generator.last_out_of_room
        return decoded[bias]

    try:
        calibration = calibrate_stop_bias(
            decode,
            [row["report"] for row in sample],
            settings.stop_logit_bias,
            settings.stop_bias_calibration_step,
            settings.stop_bias_calibration_max_tries,
        )
    finally:
        generator.rules = original
    chosen = calibration.chosen_bias
    study_ids = [row["study_id"] for row in sample]
    cut = [study_id for study_id, flag in zip(study_ids, out_of_room[chosen], strict=True) if flag]
    return replace(
        calibration,
        chosen_reports=tuple(zip(study_ids, decoded[chosen], strict=True)),
        chosen_out_of_room=tuple(cut),
    )
