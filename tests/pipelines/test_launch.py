"""What `run.py train` prints about a model version it created."""

from __future__ import annotations

from pipelines.launch import highlights_of

SCORES = {"bleu4": 0.25, "finding_f1_micro": 0.7}


def test_highlights_name_the_studies_left_unwritten_by_split():
    metadata = {
        "evaluation": {
            "val": {
                "model": SCORES,
                "baselines": {"exact_impression_lookup": SCORES},
                "rejected_prompts": 2,
            },
            "test": {"rejected_prompts": 1},  # every test prompt too long: nothing scored
        }
    }
    lines = highlights_of(metadata)
    assert lines[0].startswith("Val metrics:    BLEU-4 0.250 (exact-impression lookup 0.250)")
    assert lines[1].startswith("Not written:    2 val, 1 test studies")


def test_highlights_say_nothing_of_rejections_when_every_study_was_written():
    metadata = {
        "evaluation": {
            split: {
                "model": SCORES,
                "baselines": {"exact_impression_lookup": SCORES},
                "rejected_prompts": 0,
            }
            for split in ("val", "test")
        }
    }
    assert [line.split(":")[0] for line in highlights_of(metadata)] == ["Val metrics"]


def test_highlights_give_the_calibrated_stop_bias_and_the_length_it_moved():
    trials = [
        {"bias": -2.5, "length_ratio": 0.861, "bleu4": 0.28},
        {"bias": -3.0, "length_ratio": 1.012, "bleu4": 0.29},
    ]
    metadata = {
        "stop_bias_calibration": {
            "start_bias": -2.5, "chosen_bias": -3.0, "studies": 96, "trials": trials
        }
    }  # fmt: skip
    assert highlights_of(metadata) == (
        "Stop bias:      -3 chosen on 96 val studies (length ratio 1.01; -2.5 gave 0.86)",
    )


def test_highlights_say_when_the_bias_moved_no_report():
    trials = [
        {"bias": 0.0, "length_ratio": 0.473, "bleu4": 0.02},
        {"bias": -0.5, "length_ratio": 0.473, "bleu4": 0.02},
    ]
    metadata = {
        "stop_bias_calibration": {
            "start_bias": 0.0, "chosen_bias": 0.0, "studies": 13, "trials": trials
        }
    }  # fmt: skip
    assert highlights_of(metadata) == (
        "Stop bias:      +0 kept: length ratio 0.47 on 13 val studies at +0 and -0.5, the "
        "bias moves none of these reports",
    )


def test_highlights_say_when_the_token_budget_cuts_training_reports():
    budget = {
        "max_new_tokens": 128,
        "train_reports": 1868,
        "longer_train_reports": 412,
        "longest_train_report_tokens": 612,
    }
    assert highlights_of({"report_budget": budget}) == (
        "Report budget:  412 of 1868 train reports (22%) need more than max_new_tokens 128 "
        "(the longest: 612 tokens with its end); reports that long are cut there: raise "
        "llm.max_new_tokens",
    )
    # A few outliers (at most 1 %) are not a budget set for other reports.
    outliers = {**budget, "longer_train_reports": 18, "longest_train_report_tokens": 194}
    assert highlights_of({"report_budget": outliers}) == ()
    assert highlights_of({"report_budget": {**outliers, "longer_train_reports": 19}})
