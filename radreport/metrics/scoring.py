"""All metrics, with bootstrap confidence intervals, for several systems on the same reports.

Every system is resampled with the same bootstrap weights (a paired bootstrap), so a model
and its baselines are compared on identical resamples. Metric keys (on a 0..1 scale but
length_ratio):

    bleu1 .. bleu4         corpus BLEU-n (sacrebleu, tokenize="none", normalised text)
    sentence_bleu          mean per-report BLEU-4, the original talk's figure
    rouge_l                mean per-report ROUGE-L (LCS F-measure, beta 1.2)
    chrf                   corpus chrF (no interval: it is not a headline metric)
    finding_f1_micro       finding F1 from the rule-based labeler, approximating CheXbert F1;
    finding_f1_macro         see finding_f1.py for the three averages
    finding_f1_example
    finding_precision_micro, finding_recall_micro
    n_reports
    length_ratio           generated length / reference length over all reports, in words and
                             punctuation marks of the normalised text (the brevity penalty's
                             ratio; not on the 0..1 scale: 1 is the references' length)
and <key>_ci_low, <key>_ci_high, the bootstrap interval, for bleu1..4, sentence_bleu, rouge_l,
the three finding F1s and length_ratio. Per report, besides its scores: generated_length and
reference_length.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from radreport.metrics.bleu_statistics import (
    bleu_from_statistics,
    corpus_statistics,
    sentence_bleu,
)
from radreport.metrics.bootstrap import percentile_interval, resample_weights
from radreport.metrics.finding_f1 import FindingCounts, example_f1, finding_f1, per_finding_table
from radreport.metrics.labeler import OBSERVATIONS, binarize_labels, label_reports
from radreport.metrics.lexical import corpus_bleu, corpus_chrf
from radreport.metrics.normalize import normalize_report
from radreport.metrics.rouge import rouge_l_scores
from radreport.metrics.settings import EvaluationSettings


@dataclass(frozen=True)
class SystemScores:
    """One system's scores: flat metrics, one row per report, one row per observation."""

    metrics: dict[str, float]
    per_sample: pd.DataFrame
    per_finding: pd.DataFrame


@dataclass(frozen=True)
class _References:
    """What every system is compared against, computed once."""

    normalized: list[str]
    presence: np.ndarray
    weights: np.ndarray
    settings: EvaluationSettings


def _with_interval(
    name: str, point: float, resampled: np.ndarray, confidence: float
) -> dict[str, float]:
    low, high = percentile_interval(resampled, confidence)
    return {name: float(point), f"{name}_ci_low": low, f"{name}_ci_high": high}


def _lexical_metrics(
    generated: list[str], references: _References
) -> tuple[dict[str, float], pd.DataFrame]:
    weights, confidence = references.weights, references.settings.confidence_level
    statistics = corpus_statistics(generated, references.normalized)
    resampled_statistics = weights @ statistics
    metrics: dict[str, float] = {}
    for order, point in corpus_bleu(generated, references.normalized, max_order=4).items():
        resampled = bleu_from_statistics(resampled_statistics, order)
        metrics |= _with_interval(f"bleu{order}", point, resampled, confidence)
    per_report = pd.DataFrame(
        {
            "sentence_bleu": sentence_bleu(statistics),
            "rouge_l": rouge_l_scores(generated, references.normalized),
        }
    )
    for name, values in per_report.items():
        values = values.to_numpy()
        resampled = weights @ values / len(values)
        metrics |= _with_interval(name, values.mean(), resampled, confidence)
    metrics["chrf"] = corpus_chrf(generated, references.normalized)
    # The generated reports' length per unit of the references', in BLEU's units (words and
    # punctuation marks of the normalised text), as its brevity penalty counts them: below 1
    # that penalty charges every n-gram order; far above, reports ramble.
    generated_length, reference_length = statistics[:, 0], statistics[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        resampled = resampled_statistics[:, 0] / resampled_statistics[:, 1]
    point = _ratio(generated_length.sum(), reference_length.sum())
    metrics |= _with_interval("length_ratio", point, resampled, confidence)
    per_report["generated_length"] = generated_length
    per_report["reference_length"] = reference_length
    return metrics, per_report


def _finding_mismatches(
    reference: np.ndarray, generated: np.ndarray
) -> tuple[list[str], list[str]]:
    """Per report, the observations the draft missed and those it stated falsely."""
    names = np.array(OBSERVATIONS)
    missed = ["; ".join(names[row]) for row in reference & ~generated]
    false = ["; ".join(names[row]) for row in ~reference & generated]
    return missed, false


def _finding_metrics(
    generated: Sequence[str], references: _References
) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame]:
    settings = references.settings
    presence = binarize_labels(label_reports(generated), settings.uncertain_as)
    counts = FindingCounts.compare(references.presence, presence)
    point = finding_f1(counts, np.ones((1, len(generated))))
    resampled = finding_f1(counts, references.weights)
    metrics: dict[str, float] = {}
    for name in point:
        metrics |= _with_interval(name, point[name][0], resampled[name], settings.confidence_level)
    table = per_finding_table(counts)
    true_positive = table["true_positive"].sum()
    metrics["finding_precision_micro"] = _ratio(true_positive, table["generated_positive"].sum())
    metrics["finding_recall_micro"] = _ratio(true_positive, table["reference_positive"].sum())
    missed, false = _finding_mismatches(references.presence, presence)
    per_report = pd.DataFrame(
        {
            "finding_f1": example_f1(counts),
            "finding_agreement": (references.presence == presence).mean(axis=1),
            "missed_findings": missed,
            "false_findings": false,
        }
    )
    return metrics, per_report, table


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else float("nan")


def _score_system(generated: Sequence[str], references: _References) -> SystemScores:
    normalized = [normalize_report(text) for text in generated]
    lexical, lexical_per_report = _lexical_metrics(normalized, references)
    findings, findings_per_report, per_finding = _finding_metrics(generated, references)
    metrics = {**lexical, **findings, "n_reports": float(len(generated))}
    per_sample = pd.concat([lexical_per_report, findings_per_report], axis=1)
    return SystemScores(metrics=metrics, per_sample=per_sample, per_finding=per_finding)


def score_systems(
    references: Sequence[str],
    generated_by_system: Mapping[str, Sequence[str]],
    settings: EvaluationSettings,
) -> dict[str, SystemScores]:
    """Score each system's reports against the same references and bootstrap resamples.

    Texts are raw reports: they are normalised here for the lexical metrics and labelled
    as written for the finding metrics.
    """
    for system, generated in generated_by_system.items():
        if len(generated) != len(references):
            raise ValueError(f"{system}: {len(generated)} reports for {len(references)} references")
    weights = resample_weights(len(references), settings.bootstrap_resamples, settings.seed)
    shared = _References(
        normalized=[normalize_report(text) for text in references],
        presence=binarize_labels(label_reports(references), settings.uncertain_as),
        weights=weights.astype(np.float64),
        settings=settings,
    )
    return {system: _score_system(texts, shared) for system, texts in generated_by_system.items()}
