"""MBR selection: the candidate the others agree with most, by the metric we are judged by."""

from __future__ import annotations

import numpy as np
import pytest

from radreport.llm.mbr import (
    agreement_matrix,
    impression_agreement,
    select_by_mbr,
    select_reports,
)

NORMAL = "The heart is normal. The lungs are clear. No effusion or pneumothorax."
OUTLIER = "Large left pleural effusion with collapse of the left lower lobe."


def test_identical_reports_agree_fully_and_unrelated_ones_hardly_at_all():
    matrix = agreement_matrix([NORMAL, NORMAL.upper(), "Osseous structures intact."])
    # Case and punctuation are normalised as evaluation normalises them.
    assert matrix[0, 1] == pytest.approx(1.0) and matrix[1, 0] == pytest.approx(1.0)
    # Only the sentence-ending "." is shared, worth a smoothed few hundredths.
    assert 0.0 < matrix[0, 2] < 0.1 and 0.0 < matrix[2, 1] < 0.1
    assert np.all(np.diag(matrix) == 0.0)


def test_the_report_written_most_often_wins_over_variants_and_an_outlier():
    variant = "The heart is normal. The lungs are clear. No effusion."
    assert select_by_mbr([variant, OUTLIER, NORMAL, NORMAL]) == 2


def test_an_outlier_is_not_chosen_over_reports_that_agree():
    candidates = [
        OUTLIER,
        "The heart is normal. The lungs are clear. No effusion.",
        "The heart is normal. The lungs are clear. No pneumothorax.",
    ]
    assert select_by_mbr(candidates) != 0


def test_ties_go_to_the_first_candidate_which_is_the_greedy_decode():
    assert select_by_mbr([NORMAL, NORMAL, NORMAL]) == 0


def test_an_empty_report_is_never_preferred_to_a_written_one():
    assert select_by_mbr(["", "", OUTLIER]) == 2
    assert select_by_mbr(["", ""]) == 0
    assert select_by_mbr([OUTLIER]) == 0
    with pytest.raises(ValueError, match="at least one candidate"):
        select_by_mbr([])


def test_references_steer_the_choice_but_are_never_chosen():
    variant = "The heart is normal. The lungs are clear. No effusion."
    # Two candidates only score against each other: here the outlier, first, is kept.
    assert select_by_mbr([OUTLIER, variant]) == 0
    # The retrieved reports agree with the second, so it wins; the index is a candidate's.
    assert select_by_mbr([OUTLIER, variant], [NORMAL, NORMAL]) == 1
    assert select_by_mbr([variant, OUTLIER], [OUTLIER]) == 1


def test_select_reports_uses_each_groups_own_example_reports():
    groups = [["no effusion seen", "large right effusion"]] * 2
    examples = [[("x", "no effusion seen today")], [("y", "large right effusion present")]]
    assert select_reports(groups) == ["no effusion seen"] * 2
    assert select_reports(groups, examples) == ["no effusion seen", "large right effusion"]


def test_agreement_with_the_impression_is_the_f1_of_the_findings_each_states():
    candidates = [
        "The heart is enlarged. Small right pleural effusion.",  # both findings
        "The heart is enlarged. The lungs are clear.",  # one of two
        NORMAL,  # neither, and states no finding where the impression has two
    ]
    agreement = impression_agreement(candidates, "Cardiomegaly with a right pleural effusion.")
    assert agreement == pytest.approx([1.0, 2 / 3, 0.0])
    # An impression and a report that state no finding agree fully.
    assert impression_agreement([NORMAL], "No acute cardiopulmonary disease.") == [1.0]


def test_the_impression_weight_turns_a_close_choice_to_the_report_that_agrees_with_it():
    contradicting = "The heart is normal in size. The lungs are clear. No effusion."
    agreeing = "The heart is enlarged. The lungs are clear. No effusion."
    candidates = [contradicting, contradicting, agreeing]
    impression = "Cardiomegaly."
    assert select_by_mbr(candidates, impression=impression) == 0  # BLEU alone: the majority
    assert select_by_mbr(candidates, impression=impression, impression_weight=1.0) == 2
    groups = [candidates, candidates]
    assert select_reports(
        groups, impressions=[impression, "Normal chest."], impression_weight=1.0
    ) == [
        agreeing,
        contradicting,
    ]
