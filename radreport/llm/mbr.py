"""Minimum Bayes risk (MBR) selection: of several candidate reports for one impression, the
one that agrees most with the others.

Greedy or beam decoding returns the model's single most probable token path, which for a
small model is often an idiosyncratic wording. Scoring every candidate against all the
others with the metric we are judged by, and keeping the best on average, estimates the
report with the highest expected BLEU under the model's own distribution (Kumar & Byrne
2004; with epsilon-sampled candidates, Freitag et al. 2023). The candidates themselves come
from `radreport.llm.generate.sample_candidates`. BLEU is blind to what a sentence asserts, so
the choice can also weigh each candidate's agreement with the findings of its own impression
(`impression_agreement`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from radreport.metrics.bleu_statistics import report_statistics, sentence_bleu
from radreport.metrics.finding_f1 import FindingCounts, example_f1
from radreport.metrics.labeler import binarize_labels, label_reports
from radreport.metrics.normalize import normalize_report
from radreport.metrics.settings import EvaluationSettings

# Whether an uncertain finding counts as stated: as finding F1 counts it by default.
_UNCERTAIN_AS = EvaluationSettings.model_fields["uncertain_as"].default


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


def expected_bleu(candidates: Sequence[str], references: Sequence[str] = ()) -> np.ndarray:
    """Each candidate's mean sentence BLEU-4 against the other candidates and the
    `references` (pseudo-references, never chosen); empty references are left out."""
    texts = [normalize_report(candidate) for candidate in candidates]
    pseudo_references = [text for text in map(normalize_report, references) if text]
    total_bleu = _agreement(texts).sum(axis=1)
    if pseudo_references:
        statistics = np.array(
            [report_statistics(text, ref) for text in texts for ref in pseudo_references]
        )
        total_bleu += sentence_bleu(statistics).reshape(len(texts), -1).sum(axis=1)
    return total_bleu / max(len(texts) - 1 + len(pseudo_references), 1)


def impression_agreement(candidates: Sequence[str], impression: str) -> np.ndarray:
    """Per candidate, the example-based F1 between the findings the labeler reads in it and
    in the impression (1 when neither states any): does the draft say what the radiologist
    concluded? Uncertain findings count as the evaluation counts them by default."""
    found = binarize_labels(label_reports([impression, *candidates]), _UNCERTAIN_AS)
    stated = np.repeat(found[:1], len(candidates), axis=0)
    return example_f1(FindingCounts.compare(stated, found[1:]))


def select_by_mbr(
    candidates: Sequence[str],
    references: Sequence[str] = (),
    impression: str | None = None,
    impression_weight: float = 0.0,
) -> int:
    """Index of the candidate with the highest mean BLEU against the other candidates and
    the `references` (`expected_bleu`), plus `impression_weight` times its agreement with
    the `impression`'s findings (`impression_agreement`).

    `references` are further pseudo-references that are scored against but never chosen,
    such as the retrieved training reports shown in the prompt: the choice then leans to the
    candidate that agrees with what radiologists wrote for similar impressions, while the
    report returned is still one the model wrote. Empty references are left out of the mean.
    BLEU is blind to what a sentence asserts ("no effusion" and "small effusion" share most
    words); the impression term prefers, among candidates BLEU rates alike, the one that
    does not contradict the radiologist.

    Ties go to the earliest candidate (the generator puts its greedy decode first), and an
    empty candidate, which agrees with nothing, is never preferred to a non-empty one.
    """
    if not candidates:
        raise ValueError("MBR selection needs at least one candidate")
    utility = expected_bleu(candidates, references)
    if impression_weight and impression is not None:
        utility = utility + impression_weight * impression_agreement(candidates, impression)
    return best_non_empty(candidates, utility)


def best_non_empty(candidates: Sequence[str], utility: np.ndarray) -> int:
    """Index of the highest `utility`, the earliest on ties, an empty candidate last."""
    # An empty report scores 0 against anything, as does one that shares nothing; ranking
    # the empty ones below every other keeps a tie of zeros from choosing an empty report.
    empty = np.array([not normalize_report(candidate) for candidate in candidates])
    return int(np.argmax(np.where(empty, -np.inf, utility)))


def select_reports(
    groups: Sequence[Sequence[str]],
    examples: Sequence[Sequence[tuple[str, str]]] | None = None,
    impressions: Sequence[str] | None = None,
    impression_weight: float = 0.0,
) -> list[str]:
    """The MBR choice of each candidate group; with `examples`, the reports of the i-th
    (impression, report) list are pseudo-references of the i-th choice (never chosen); with
    `impressions` and a weight above 0, the i-th choice also weighs agreement with the i-th
    impression."""
    shown = examples if examples is not None else [()] * len(groups)
    stated = impressions if impressions is not None else [None] * len(groups)
    return [
        group[select_by_mbr(group, [report for _, report in pairs], impression, impression_weight)]
        for group, pairs, impression in zip(groups, shown, stated, strict=True)
    ]
