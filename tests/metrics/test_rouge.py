import random

import pytest

from radreport.metrics.rouge import lcs_length, rouge_l


def _lcs_table(first, second):
    table = [[0] * (len(second) + 1) for _ in range(len(first) + 1)]
    for i, a in enumerate(first):
        for j, b in enumerate(second):
            table[i + 1][j + 1] = (
                table[i][j] + 1 if a == b else max(table[i][j + 1], table[i + 1][j])
            )
    return table[-1][-1]


def test_rouge_l_on_a_hand_computed_pair():
    # LCS "the heart is normal ." = 5 tokens of 6 generated and 8 reference ones; beta 1.2:
    # F = (1 + 1.44) * P * R / (R + 1.44 * P)
    reference = "the heart is not normal in size ."
    hypothesis = "the heart is normal today ."
    precision, recall = 5 / 6, 5 / 8
    expected = 2.44 * precision * recall / (recall + 1.44 * precision)
    assert rouge_l(hypothesis, reference) == pytest.approx(expected)


def test_rouge_l_identical_is_one_and_disjoint_or_empty_is_zero():
    assert rouge_l("the lungs are clear .", "the lungs are clear .") == pytest.approx(1.0)
    assert rouge_l("alpha beta", "the lungs are clear .") == 0.0
    assert rouge_l("", "the lungs are clear .") == 0.0


def test_bit_parallel_lcs_matches_dynamic_programming():
    rng = random.Random(0)
    vocabulary = ["the", "heart", "lungs", ".", "no", "clear", "is"]
    for _ in range(200):
        first = rng.choices(vocabulary, k=rng.randint(0, 30))
        second = rng.choices(vocabulary, k=rng.randint(0, 30))
        assert lcs_length(first, second) == _lcs_table(first, second)
