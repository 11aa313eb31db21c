"""Minimum Bayes risk (MBR) selection: of several candidate reports for one impression, the
one that agrees most with the others.

Greedy or beam decoding returns the model's single most probable token path, which for a
small model is often an idiosyncratic wording. Scoring every candidate against all the
others with the metric we are judged by, and keeping the best on average, estimates the
report with the highest expected BLEU under the model's own distribution (Kumar & Byrne
2004; with epsilon-sampled candidates, Freitag et al. 2023). The candidates themselves come
from `radreport.llm.generate.sample_candidates`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from radreport.metrics.bleu_statistics import report_statistics, sentence_bleu
from radreport.metrics.normalize import normalize_report


def agreement_matrix(candidates: Sequence[str]) -> np.ndarray:
    """(n, n) sentence BLEU-4 of candidate i against candidate j as reference; diagonal 0.

    Texts are normalised as evaluation normalises them, so the utility is the metric's own.
    """
    return _agreement([normalize_report(candidate) for candidate in candidates])


def _agreement(texts: Sequence[str]) -> np.ndarray:
    n = len(texts)
    matrix = np.zeros((n, n))
    if n > 1:
        pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
        statistics = np.array([report_statistics(texts[i], texts[j]) for i, j in pairs])
        matrix[~np.eye(n, dtype=bool)] = sentence_bleu(statistics)
    return matrix


def select_by_mbr(candidates: Sequence[str], references: Sequence[str] = ()) -> int:
    """Index of the candidate with the highest mean BLEU against the other candidates and
    the `references`.

    `references` are further pseudo-references that are scored against but never chosen,
    such as the retrieved training reports shown in the prompt: the choice then leans to the
    candidate that agrees with what radiologists wrote for similar impressions, while the
    report returned is still one the model wrote. Empty references are left out of the mean.

    Ties go to the earliest candidate (the generator puts its greedy decode first), and an
    empty candidate, which agrees with nothing, is never preferred to a non-empty one.
    """
    if not candidates:
        raise ValueError("MBR selection needs at least one candidate")
    texts = [normalize_report(candidate) for candidate in candidates]
    pseudo_references = [text for text in map(normalize_report, references) if text]
    total_bleu = _agreement(texts).sum(axis=1)
    if pseudo_references:
        statistics = np.array(
            [report_statistics(text, ref) for text in texts for ref in pseudo_references]
        )
        total_bleu += sentence_bleu(statistics).reshape(len(texts), -1).sum(axis=1)
    expected_bleu = total_bleu / max(len(texts) - 1 + len(pseudo_references), 1)
    # An empty report scores 0 against anything, as does one that shares nothing; ranking
    # the empty ones below every other keeps a tie of zeros from choosing an empty report.
    empty = np.array([not text for text in texts])
    return int(np.argmax(np.where(empty, -1.0, expected_bleu)))


def select_reports(
    groups: Sequence[Sequence[str]],
    examples: Sequence[Sequence[tuple[str, str]]] | None = None,
) -> list[str]:
    """The MBR choice of each candidate group; with `examples`, the reports of the i-th
    (impression, report) list are pseudo-references of the i-th choice (never chosen)."""
    if examples is None:
        return [group[select_by_mbr(group)] for group in groups]
    return [
        group[select_by_mbr(group, [report for _, report in shown])]
        for group, shown in zip(groups, examples, strict=True)
    ]
