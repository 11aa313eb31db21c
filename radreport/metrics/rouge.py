"""ROUGE-L as the R2Gen protocol scores it: LCS F-measure with beta 1.2, averaged over reports.

Tokens are the whitespace-separated words of normalised reports, sentence marks " ." included
(as pycocoevalcap, which published IU X-Ray numbers use). The `rouge-score` package was not
used: it fixes beta at 1 and its tokenizer drops the sentence marks, so it would not reproduce
the reference table; the LCS below is a dozen lines and checked against a dynamic-programming
LCS in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ROUGE_L_BETA = 1.2


def lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists.

    Bit-parallel (Allison & Dix, 1986): one bit per token of `first`, one big-integer step per
    token of `second`, so a pair of 40-word reports costs 40 integer operations instead of a
    1,600-cell table in Python.
    """
    positions: dict[str, int] = {}
    for index, token in enumerate(first):
        positions[token] = positions.get(token, 0) | (1 << index)
    all_bits = (1 << len(first)) - 1
    unmatched = all_bits
    for token in second:
        matched_here = unmatched & positions.get(token, 0)
        unmatched = ((unmatched + matched_here) | (unmatched - matched_here)) & all_bits
    return len(first) - unmatched.bit_count()


def rouge_l(hypothesis: str, reference: str, beta: float = ROUGE_L_BETA) -> float:
    """ROUGE-L F-measure of one normalised report; 0 when either side is empty."""
    hypothesis_tokens, reference_tokens = hypothesis.split(), reference.split()
    common = lcs_length(reference_tokens, hypothesis_tokens) if hypothesis_tokens else 0
    if common == 0:
        return 0.0
    precision = common / len(hypothesis_tokens)
    recall = common / len(reference_tokens)
    return (1 + beta**2) * precision * recall / (recall + beta**2 * precision)


def rouge_l_scores(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """ROUGE-L of each report; the corpus figure is their mean."""
    pairs = zip(hypotheses, references, strict=True)
    return np.array([rouge_l(h, r) for h, r in pairs], dtype=np.float64)
