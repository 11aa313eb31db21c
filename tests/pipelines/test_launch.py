"""What `run.py train` prints about a model version it created."""

from __future__ import annotations

import shlex

from pipelines.launch import RunReport, highlights_of

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


def test_highlights_give_the_length_ratio_where_the_evaluation_measured_it():
    scored = {"model": SCORES, "baselines": {"exact_impression_lookup": SCORES}}
    assert highlights_of({"evaluation": {"val": scored}})[0].endswith("(lookup 0.700)")
    scored["model"] = {**SCORES, "length_ratio": 0.934}
    assert highlights_of({"evaluation": {"val": scored}})[0].endswith(
        "(lookup 0.700), length ratio 0.93"
    )


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


BUDGETS = {
    "max_seq_length": 736,
    "train_examples": 1868,
    "truncated_train_examples": 0,
    "dropped_train_examples": 0,
    "longest_train_example_tokens": 686,
    "max_new_tokens": 128,
    "longer_train_reports": 9,
    "longest_train_report_tokens": 194,
}


def test_highlights_say_nothing_of_budgets_that_hold_all_but_one_percent():
    # The IU X-Ray config's: 9 of 1,868 reports (0.5 %) need more than 128 new tokens.
    assert highlights_of({"token_budgets": BUDGETS}) == ()
    assert highlights_of({"token_budgets": {**BUDGETS, "longer_train_reports": 18}}) == ()


def test_highlights_say_which_token_budget_is_short_for_the_training_data():
    short = {
        **BUDGETS,
        "longer_train_reports": 412,
        "longest_train_report_tokens": 612,
        "truncated_train_examples": 30,
        "dropped_train_examples": 2,
        "longest_train_example_tokens": 2100,
    }
    assert highlights_of({"token_budgets": short}) == (
        "Token budget:   412 of 1868 train reports (22%) need more than max_new_tokens 128 "
        "(the longest: 612 tokens with its end); reports that long are cut there: raise "
        "llm.max_new_tokens or set it to auto",
        "Token budget:   32 of 1868 train examples (2%) are longer than max_seq_length 736 "
        "(the longest: 2100 tokens; 30 truncated, 2 dropped): the ends of their reports are "
        "not learned; raise llm.max_seq_length (or set it to auto) or lower llm.retrieval_k",
    )


def test_highlights_say_what_the_auto_token_budgets_were_sized_to():
    sized = {**BUDGETS, "max_seq_length": 686, "max_new_tokens": 194, "longer_train_reports": 0}
    config = {"llm": {"max_seq_length": "auto", "max_new_tokens": "auto"}}
    assert highlights_of({"token_budgets": sized, "run_config": config}) == (
        "Auto budgets:   max_seq_length 686 (the longest train example), max_new_tokens 194 "
        "(the longest train report)",
    )
    # One auto budget, capped by the model's context: said, and the shortfall with it.
    capped = {**BUDGETS, "max_seq_length": 512, "longest_train_example_tokens": 2100}
    capped["truncated_train_examples"] = 40
    lines = highlights_of(
        {"token_budgets": capped, "run_config": {"llm": {"max_seq_length": "auto"}}}
    )
    assert lines[0] == "Auto budgets:   max_seq_length 512 (the base model's context)"
    assert lines[1].startswith("Token budget:   40 of 1868 train examples (2%) are longer")
    # Budgets given as numbers are not repeated back.
    numbers = {"llm": {"max_seq_length": 736, "max_new_tokens": 128}}
    assert highlights_of({"token_budgets": BUDGETS, "run_config": numbers}) == ()


def test_highlights_count_the_reports_cut_by_the_token_budget_by_split():
    scored = {"model": SCORES, "baselines": {"exact_impression_lookup": SCORES}}
    metadata = {
        "llm_settings": {"max_new_tokens": 128},
        "evaluation": {
            "val": {**scored, "scored_reports": 189, "reports_out_of_room": 3},
            "test": {**scored, "scored_reports": 190, "reports_out_of_room": 0},
        },
    }
    assert highlights_of(metadata)[1] == (
        "Out of room:    3 of 189 val reports cut where they ran out of room "
        "(max_new_tokens 128), not ended by the model; llm.max_new_tokens gives them more"
    )
    # A budget no train report needs more of (auto sizes it so): more room is not the cure.
    metadata["token_budgets"] = {**BUDGETS, "max_new_tokens": 194, "longer_train_reports": 0}
    metadata["llm_settings"]["max_new_tokens"] = 194
    assert highlights_of(metadata)[1] == (
        "Out of room:    3 of 189 val reports cut where they ran out of room "
        "(max_new_tokens 194), not ended by the model; no train report is that long (the "
        "longest: 194 tokens), so these are more likely loops than reports the budget cut short"
    )
    metadata["evaluation"]["val"]["reports_out_of_room"] = 0
    assert [line.split(":")[0] for line in highlights_of(metadata)] == ["Val metrics"]


def test_looking_for_orphaned_runs_never_costs_the_run_it_precedes(monkeypatch, caplog):
    import pipelines.orphaned_runs
    from pipelines.launch import mark_orphaned_runs

    def store_locked(*_):
        raise OSError("database is locked")

    monkeypatch.setattr(pipelines.orphaned_runs, "mark_orphaned_runs_failed", store_locked)
    mark_orphaned_runs()  # no exception: the run goes on
    assert "Could not look for runs left running by a killed process" in caplog.text
    assert "database is locked" in caplog.text


def test_the_mlflow_ui_command_pastes_into_a_shell_where_the_store_path_has_a_space():
    uri = "sqlite:////srv/radiology runs/mlflow.db"
    report = RunReport("run-1", "completed", None, "demo", uri)
    [command] = [line.split(":", 1)[1] for line in report.lines() if line.startswith("MLflow UI")]
    assert shlex.split(command) == ["mlflow", "ui", "--backend-store-uri", uri]
