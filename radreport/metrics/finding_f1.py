"""Finding F1 between generated and reference reports: does the draft state the same findings?

Both reports are labelled with the rule-based labeler (`labeler.py`), an offline
approximation of CheXbert, so these scores approximate the "CheXbert F1" of the literature;
they are not comparable digit for digit with numbers from CheXbert itself.

- micro F1: true/false positives and misses pooled over all reports and observations.
- macro F1: F1 per observation, averaged over the observations that are positive in some
  reference or generated report (an observation nobody mentions has no F1 and is left out).
- example-based F1: F1 between the two label sets of each report, averaged over reports;
  two empty sets agree perfectly (1).

Scores are computed for a matrix of report weights, so the same code gives the point estimate
(all weights 1) and every bootstrap resample at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from radreport.metrics.labeler import OBSERVATIONS


@dataclass(frozen=True)
class FindingCounts:
    """Per report and observation (n_reports, 14): hits, false findings, missed findings."""

    true_positive: np.ndarray
    false_positive: np.ndarray
    false_negative: np.ndarray

    @classmethod
    def compare(cls, reference: np.ndarray, generated: np.ndarray) -> FindingCounts:
        """Counts from presence matrices (`binarize_labels`) of the same reports."""
        if reference.shape != generated.shape:
            raise ValueError(f"label shapes differ: {reference.shape} vs {generated.shape}")
        return cls(
            true_positive=(reference & generated).astype(np.float64),
            false_positive=(~reference & generated).astype(np.float64),
            false_negative=(reference & ~generated).astype(np.float64),
        )


def _f1(
    true_positive: np.ndarray, false_positive: np.ndarray, false_negative: np.ndarray
) -> np.ndarray:
    denominator = 2 * true_positive + false_positive + false_negative
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, 2 * true_positive / denominator, np.nan)


def finding_f1(counts: FindingCounts, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Micro, macro and example-based F1 for each row of `weights` (n_weightings, n_reports)."""
    tp = weights @ counts.true_positive
    fp = weights @ counts.false_positive
    fn = weights @ counts.false_negative
    per_observation = _f1(tp, fp, fn)
    defined = np.isfinite(per_observation)
    with np.errstate(invalid="ignore"):
        macro = np.where(defined, per_observation, 0.0).sum(axis=1) / defined.sum(axis=1)
    return {
        "finding_f1_micro": _f1(tp.sum(axis=1), fp.sum(axis=1), fn.sum(axis=1)),
        "finding_f1_macro": macro,
        "finding_f1_example": weights @ example_f1(counts) / weights.sum(axis=1),
    }


def example_f1(counts: FindingCounts) -> np.ndarray:
    """F1 between the label sets of each report (1 when both are empty)."""
    per_report = _f1(
        counts.true_positive.sum(axis=1),
        counts.false_positive.sum(axis=1),
        counts.false_negative.sum(axis=1),
    )
    return np.where(np.isnan(per_report), 1.0, per_report)


def per_finding_table(counts: FindingCounts) -> pd.DataFrame:
    """Precision, recall and F1 per observation, with how often each side reports it."""
    tp = counts.true_positive.sum(axis=0)
    fp = counts.false_positive.sum(axis=0)
    fn = counts.false_negative.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
    return pd.DataFrame(
        {
            "observation": list(OBSERVATIONS),
            "reference_positive": (tp + fn).astype(int),
            "generated_positive": (tp + fp).astype(int),
            "true_positive": tp.astype(int),
            "precision": precision,
            "recall": recall,
            "f1": _f1(tp, fp, fn),
        }
    )
