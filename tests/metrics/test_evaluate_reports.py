import json
import math

import pandas as pd
import pytest

from radreport.metrics import (
    EvaluationResult,
    EvaluationSettings,
    baseline_table_json,
    baseline_table_text,
    evaluate_reports,
    score_baselines,
)
from radreport.metrics.baselines import BASELINE_LABELS

TRAIN = pd.DataFrame(
    {
        "study_id": ["t1", "t2", "t3", "t4"],
        "impression": ["No acute disease.", "Cardiomegaly.", "No acute disease.", "Effusion."],
        "findings": [
            "The heart is normal. The lungs are clear.",
            "The heart is enlarged. No effusion.",
            "The heart is normal. The lungs are clear.",
            "Small right pleural effusion.",
        ],
    }
)
SAMPLES = pd.DataFrame(
    {
        "study_id": ["v1", "v2", "v3"],
        "impression": ["No acute disease.", "Mild cardiomegaly.", "Right effusion."],
        "reference": [
            "The heart is normal. The lungs are clear.",
            "Mild cardiomegaly. No pleural effusion.",
            "Small right pleural effusion. No pneumothorax.",
        ],
        "generated": [
            "The heart is normal. The lungs are clear.",
            "Mild cardiomegaly. Small pleural effusion.",
            "The lungs are clear.",
        ],
    }
)
SETTINGS = EvaluationSettings(bootstrap_resamples=200, seed=0, n_examples=2)


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> EvaluationResult:
    return evaluate_reports(SAMPLES, TRAIN, SETTINGS, tmp_path_factory.mktemp("evaluation"))


def test_metrics_have_point_estimates_inside_their_intervals(result):
    for key in ("bleu1", "bleu4", "sentence_bleu", "rouge_l", "finding_f1_micro"):
        value, low, high = (result.metrics[key + end] for end in ("", "_ci_low", "_ci_high"))
        assert low <= value <= high, key
    assert result.metrics["n_reports"] == 3
    assert 0 < result.metrics["chrf"] <= 1


def test_length_ratio_counts_generated_length_per_reference_length(result):
    # Words and full stops of the normalised text: "the heart is normal . the lungs are
    # clear ." is 10; 10 + 7 + 5 generated against 10 + 7 + 8 in the references.
    assert result.samples["generated_length"].tolist() == [10, 7, 5]
    assert result.samples["reference_length"].tolist() == [10, 7, 8]
    metrics = result.metrics
    assert metrics["length_ratio"] == pytest.approx(22 / 25)
    assert metrics["length_ratio_ci_low"] <= metrics["length_ratio"] <= 1.0
    # The copy-impression baseline writes far less than the references.
    assert result.baselines["copy_impression"]["length_ratio"] < 0.5


def test_baselines_are_scored_on_the_same_reports(result):
    assert set(result.baselines) == set(BASELINE_LABELS)
    table = result.comparison_table()
    assert table.index[0] == "model"
    assert list(table.columns) == list(result.metrics)
    assert "baseline_exact_impression_lookup_bleu4" in result.flat_metrics()


def test_sample_table_and_finding_tables(result):
    samples = result.samples
    assert samples.loc[0, "sentence_bleu"] == pytest.approx(1.0)
    assert samples.loc[1, "false_findings"] == "Pleural Effusion"
    assert samples.loc[2, "missed_findings"] == "Pleural Effusion"
    assert samples.loc[2, "false_findings"] == "No Finding"
    assert len(result.per_finding) == 14
    assert list(result.per_finding_f1.columns) == ["model", *BASELINE_LABELS]


def test_html_report_and_plots_are_written(result):
    assert result.html_path.exists()
    assert all(path.exists() and path.suffix == ".png" for path in result.plot_paths)
    page = result.html_path.read_text()
    assert page.count("data:image/png;base64,") == 3
    assert "as BLEU counts them):\n0.880 [" in page
    assert "Mild cardiomegaly. Small pleural effusion." in page
    assert (result.html_path.parent / "samples.csv").exists()


def test_json_round_trip(result):
    restored = EvaluationResult.from_json(result.to_json())
    assert restored.metrics == pytest.approx(result.metrics, nan_ok=True)
    assert restored.per_finding_f1.shape == result.per_finding_f1.shape
    assert restored.settings == result.settings


def test_same_seed_gives_the_same_intervals():
    first = evaluate_reports(SAMPLES, TRAIN, SETTINGS)
    again = evaluate_reports(SAMPLES, TRAIN, SETTINGS)
    assert again.metrics == pytest.approx(first.metrics, nan_ok=True)
    assert again.html_path is None


def test_missing_generated_column_is_an_error():
    with pytest.raises(ValueError, match="missing column 'generated'"):
        evaluate_reports(SAMPLES.drop(columns="generated"), TRAIN)


def test_which_reports_ran_out_of_room_is_kept_in_the_sample_table(tmp_path):
    cut = SAMPLES.assign(out_of_room=[False, True, False])
    result = evaluate_reports(cut, TRAIN, SETTINGS, tmp_path)
    assert result.samples["out_of_room"].tolist() == [False, True, False]
    written = pd.read_csv(tmp_path / "samples.csv")
    assert written["out_of_room"].tolist() == [False, True, False]
    page = result.html_path.read_text()
    assert "1 of 3 reports ran out of room" in page
    # Scores do not depend on it.
    assert result.metrics == pytest.approx(evaluate_reports(SAMPLES, TRAIN, SETTINGS).metrics)
    # Without the column the table and page say nothing of it.
    plain = evaluate_reports(SAMPLES, TRAIN, SETTINGS, tmp_path / "plain")
    assert "out_of_room" not in plain.samples.columns
    assert "ran out of room" not in plain.html_path.read_text()


def test_an_out_of_room_flag_that_is_not_true_or_false_is_an_error():
    with pytest.raises(ValueError, match="column 'out_of_room' must be true or false"):
        evaluate_reports(SAMPLES.assign(out_of_room=[False, "yes", None]), TRAIN)


def test_settings_reject_unknown_keys():
    with pytest.raises(ValueError):
        EvaluationSettings(bootstrap_resample=10)


def test_baseline_table_text_and_json():
    reports = SAMPLES.drop(columns="generated")
    train = TRAIN.rename(columns={"findings": "reference"})
    table = score_baselines(train, reports, SETTINGS)
    assert list(table.index) == list(BASELINE_LABELS)
    text = baseline_table_text(table)
    assert "exact-impression lookup (else TF-IDF)" in text
    assert text.splitlines()[0].split()[-1] == "length"
    parsed = json.loads(baseline_table_json(table))
    assert not math.isnan(parsed["copy_impression"]["bleu4"])


def test_a_perfect_model_scores_one_and_is_plotted(tmp_path):
    perfect = SAMPLES.assign(generated=SAMPLES["reference"])
    result = evaluate_reports(perfect, TRAIN, SETTINGS, tmp_path)
    assert result.metrics["bleu4"] == pytest.approx(1.0)
    assert result.metrics["finding_f1_micro"] == 1.0
    assert [path.name for path in result.plot_paths] == [
        "metric_comparison.png",
        "per_finding_f1.png",
        "report_lengths.png",
    ]
