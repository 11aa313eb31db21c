"""Choosing a trained model's stop bias on its validation studies."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
import torch

from radreport.llm.generate import ReportGenerator
from radreport.llm.predictions import predict_splits
from radreport.llm.settings import LLMSettings
from radreport.llm.stop_bias_calibration import (
    NothingToCalibrateOn,
    calibrate_on_validation,
    calibrate_stop_bias,
    score_lengths,
)
from radreport.llm.stop_bias_plot import plot_calibration

REFERENCES = ["the heart is normal in size .", "no effusion . lungs are clear ."]  # 14 words


def words_per_bias(lengths: dict[float, int]):
    """A decoder whose reports have `lengths[bias]` words in all as the evaluation counts
    them (split over the two studies, none of one word), recording the biases asked for."""
    asked = []

    def report(words: int) -> str:
        return " ".join(["lungs"] * (words - 1) + ["."]) if words else ""

    def decode(bias: float) -> list[str]:
        asked.append(bias)
        total = lengths[bias]
        return [report(total // 2), report(total - total // 2)]

    return decode, asked


def test_lengths_and_bleu_are_counted_as_the_evaluation_counts_them():
    same = score_lengths(REFERENCES, REFERENCES, 0.0)
    assert same.length_ratio == 1.0 and same.bleu4 == pytest.approx(1.0)
    # Normalised like the evaluation: case and punctuation do not change the count.
    assert score_lengths(
        ["The heart is normal in size.", "No effusion."], REFERENCES, 0.0
    ).length_ratio == (pytest.approx(10 / 14))


def test_short_reports_walk_the_bias_down_until_the_ratio_crosses_1():
    decode, asked = words_per_bias({-1.0: 7, -1.5: 10, -2.0: 15, -2.5: 18})
    calibration = calibrate_stop_bias(decode, REFERENCES, -1.0, 0.5, max_tries=6)
    assert asked == [-1.0, -1.5, -2.0]  # 15/14 crossed 1: no further decode
    assert calibration.chosen_bias == -2.0  # 15/14 is nearer 1 than 10/14
    assert calibration.chosen.length_ratio == pytest.approx(15 / 14)
    assert [t.bias for t in calibration.trials] == asked and calibration.studies == 2


def test_long_reports_walk_the_bias_up_and_the_nearer_ratio_on_a_log_scale_wins():
    decode, asked = words_per_bias({0.0: 40, 1.0: 20, 2.0: 10})
    calibration = calibrate_stop_bias(decode, REFERENCES, 0.0, 1.0, max_tries=6)
    assert asked == [0.0, 1.0, 2.0]
    # 20/14 is 1.43 times too long, 10/14 1.40 times too short: the short one is nearer.
    assert calibration.chosen_bias == 2.0


def test_the_walk_stops_after_max_tries_and_at_the_settings_bound():
    decode, asked = words_per_bias({-1.0: 4, -2.0: 6, -3.0: 8})
    assert calibrate_stop_bias(decode, REFERENCES, -1.0, 1.0, max_tries=3).chosen_bias == -3.0
    assert asked == [-1.0, -2.0, -3.0]
    decode, asked = words_per_bias({-19.0: 4, -20.0: 6})
    assert calibrate_stop_bias(decode, REFERENCES, -19.0, 4.0, max_tries=5).chosen_bias == -20.0
    assert asked == [-19.0, -20.0]


def test_the_walk_stops_when_a_step_moves_no_length():
    decode, asked = words_per_bias({0.0: 6, -0.5: 6, -1.0: 8})
    calibration = calibrate_stop_bias(decode, REFERENCES, 0.0, 0.5, max_tries=5)
    assert asked == [0.0, -0.5] and calibration.chosen_bias == 0.0  # the tie: the start


def test_empty_reports_are_the_farthest_from_a_ratio_of_1():
    decode, _ = words_per_bias({0.0: 30, 5.0: 0})
    calibration = calibrate_stop_bias(decode, REFERENCES, 0.0, 5.0, max_tries=2)
    assert calibration.trials[1].length_ratio == 0.0 and calibration.chosen_bias == 0.0


def test_a_ratio_of_exactly_1_is_kept_without_another_decode():
    decode, asked = words_per_bias({-1.0: 14})
    assert calibrate_stop_bias(decode, REFERENCES, -1.0, 0.5, max_tries=5).chosen_bias == -1.0
    assert asked == [-1.0]


@pytest.mark.parametrize(
    ("references", "message"),
    [([], "no validation study"), (["", " . "], "all empty")],
)
def test_nothing_to_calibrate_on_is_refused(references, message):
    with pytest.raises(ValueError, match=message):
        calibrate_stop_bias(lambda bias: [""] * len(references), references, 0.0, 0.5, 5)


def test_the_plot_is_written(tmp_path):
    decode, _ = words_per_bias({-1.0: 7, -1.5: 10, -2.0: 14})
    calibration = calibrate_stop_bias(decode, REFERENCES, -1.0, 0.5, max_tries=6)
    path = plot_calibration(calibration, tmp_path / "calibration.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


EXAMPLE = ("Normal chest.", "The heart is normal.")


def alpaca_table(impressions: list[str], references: list[str]) -> pd.DataFrame:
    train = {"split": "train", "study_id": "t0", "impression": EXAMPLE[0],
             "report": EXAMPLE[1], "examples": []}  # fmt: skip
    rows = [train] + [
        {
            "split": "val",
            "study_id": f"v{index}",
            "impression": impression,
            "report": report,
            "examples": [EXAMPLE],
        }  # fmt: skip
        for index, (impression, report) in enumerate(zip(impressions, references, strict=True))
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def generator(tiny_llama_dir) -> ReportGenerator:
    return ReportGenerator(tiny_llama_dir, dtype=torch.float32, max_new_tokens=12)


def settings(studies: int, start: float = 0.0, step: float = 5.0) -> LLMSettings:
    return LLMSettings(
        stop_logit_bias=start,
        stop_bias_calibration_studies=studies,
        stop_bias_calibration_step=step,
        stop_bias_calibration_max_tries=5,
    )


def test_calibration_measures_what_the_generator_writes_for_the_usable_studies(generator):
    impressions = [f"Finding number {index}." for index in range(6)]
    impressions.append("Finding " + "very " * 200 + "long.")  # its prompt fills the context
    references = ["word " * 3] * 5 + ["", "word " * 3]  # one has no reference
    original, context = generator.rules, generator.context_length
    short_prompt = generator._token_counts(generator._prompts(impressions[:1], [[EXAMPLE]]))[0]
    generator.context_length = short_prompt + 40
    try:
        calibration = calibrate_on_validation(
            generator, alpaca_table(impressions, references), settings(100, 5.5, 0.5)
        )
        assert generator.rules == original  # left at the bias it had
        assert calibration.studies == 5  # neither the empty reference nor the long prompt
        # The tiny random model writes 12 tokens, longer than 3 words, until its stop
        # tokens get about +6.5: the bias walks up until the reports are shorter than the
        # references.
        biases = [trial.bias for trial in calibration.trials]
        assert biases[0] == 5.5 and biases == sorted(biases) and len(biases) >= 2
        assert calibration.trials[0].length_ratio > 1 > calibration.trials[-1].length_ratio
        for trial in calibration.trials:
            generator.rules = replace(original, stop_logit_bias=trial.bias)
            written = generator.generate(impressions[:5], [[EXAMPLE]] * 5, progress=False)
            scores = score_lengths(written, references[:5], trial.bias)
            assert (scores.length_ratio, scores.bleu4) == (trial.length_ratio, trial.bleu4)
    finally:
        generator.rules, generator.context_length = original, context


def test_the_sample_s_reports_at_the_chosen_bias_are_what_the_split_s_generation_writes(
    generator,
):
    impressions = [f"Finding number {index}." for index in range(6)]
    table = alpaca_table(impressions, ["word " * 3] * 6)
    calibration = calibrate_on_validation(generator, table, settings(4, 5.5, 0.5))
    ids = [study_id for study_id, _ in calibration.chosen_reports]
    assert len(ids) == 4 and set(ids) < {f"v{index}" for index in range(6)}
    assert "chosen_reports" not in calibration.as_dict()  # reports are no run metadata
    original = generator.rules
    generator.rules = replace(original, stop_logit_bias=calibration.chosen_bias)
    try:
        predictions, _ = predict_splits(generator, table, splits=("val",))
    finally:
        generator.rules = original
    written = dict(zip(predictions["study_id"], predictions["generated"], strict=True))
    assert dict(calibration.chosen_reports) == {study_id: written[study_id] for study_id in ids}
    cut = predictions.set_index("study_id")["out_of_room"]
    assert set(calibration.chosen_out_of_room) == {study_id for study_id in ids if cut[study_id]}
    # Kept by the split's generation rather than decoded again: given other text for a
    # study, that text is what the split's predictions hold.
    marked = {ids[0]: "kept, not decoded again"}
    kept, _ = predict_splits(generator, table, splits=("val",), decoded=marked)
    assert kept.set_index("study_id").loc[ids[0], "generated"] == "kept, not decoded again"


def test_calibration_samples_at_most_the_configured_number_of_studies(generator):
    impressions = [f"Finding number {index}." for index in range(6)]
    table = alpaca_table(impressions, ["word " * 3] * 6)
    first = calibrate_on_validation(generator, table, settings(3))
    assert first.studies == 3
    assert calibrate_on_validation(generator, table, settings(3)) == first  # seeded


def test_no_usable_validation_study_is_its_own_error(generator):
    impressions = [f"Finding number {index}." for index in range(3)]
    table = alpaca_table(impressions, ["word " * 3, "", "word " * 3])
    context = generator.context_length
    generator.context_length = 8  # no prompt fits
    try:
        with pytest.raises(NothingToCalibrateOn, match="none of the 3 validation studies"):
            calibrate_on_validation(generator, table, settings(4))
    finally:
        generator.context_length = context
    with pytest.raises(NothingToCalibrateOn, match="none of the 3 validation studies"):
        calibrate_on_validation(generator, alpaca_table(impressions, [""] * 3), settings(4))
