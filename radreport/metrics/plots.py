"""Plots of an evaluation, saved as PNG: metrics with intervals per system, F1 per finding,
the model's report lengths against the references'.

Figures are built with matplotlib's object API (no pyplot), so no display backend or global
figure state is involved and plotting is safe inside pipeline steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

COMPARED_METRICS = {
    "bleu1": "BLEU-1",
    "bleu4": "BLEU-4",
    "sentence_bleu": "sentence BLEU",
    "rouge_l": "ROUGE-L",
    "chrf": "chrF",
    "finding_f1_micro": "finding F1 micro",
    "finding_f1_macro": "finding F1 macro",
    "finding_f1_example": "finding F1 example",
}


def _has_interval(table: pd.DataFrame, metric: str) -> bool:
    return f"{metric}_ci_low" in table.columns and f"{metric}_ci_high" in table.columns


def _error_bars(table: pd.DataFrame, metric: str) -> np.ndarray:
    """Distances from the point to the interval ends, (2, n_systems); NaN, drawn as no bar,
    where the metric has no interval (a bar of width 0 would read as a certain score).

    A percentile interval need not contain the point (macro F1 over a varying set of
    observations, rounding at a score of 1), so a distance below 0 is drawn as 0."""
    point = table[metric].to_numpy(dtype=float)
    if not _has_interval(table, metric):
        return np.full((2, len(table)), np.nan)
    low = table[f"{metric}_ci_low"].to_numpy(dtype=float)
    high = table[f"{metric}_ci_high"].to_numpy(dtype=float)
    return np.clip(np.vstack([point - low, high - point]), 0.0, None)


def metric_comparison_figure(table: pd.DataFrame) -> Figure:
    """Grouped bars: one group per metric, one bar per system (rows of `table`), with CIs;
    a metric without intervals is labelled so."""
    metrics = [metric for metric in COMPARED_METRICS if metric in table.columns]
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    axes = figure.add_subplot()
    width = 0.8 / len(table)
    positions = np.arange(len(metrics))
    for offset, (system, row) in enumerate(table.iterrows()):
        errors = np.hstack([_error_bars(table.loc[[system]], metric) for metric in metrics])
        axes.bar(
            positions + offset * width,
            row[metrics].to_numpy(dtype=float),
            width,
            yerr=errors,
            capsize=2,
            label=str(system),
        )
    axes.set_xticks(positions + width * (len(table) - 1) / 2)
    labels = [
        COMPARED_METRICS[metric] + ("" if _has_interval(table, metric) else "\n(no CI)")
        for metric in metrics
    ]
    axes.set_xticklabels(labels, rotation=20)
    axes.set_ylim(0, 1)
    axes.set_ylabel("score (95 % bootstrap CI)")
    axes.legend(fontsize="small", ncols=min(len(table), 3))
    return figure


def plot_metric_comparison(table: pd.DataFrame, path: Path) -> Path:
    metric_comparison_figure(table).savefig(path, dpi=110)
    return path


def plot_per_finding_f1(per_finding_f1: pd.DataFrame, support: pd.Series, path: Path) -> Path:
    """Horizontal bars of F1 per observation (rows) and system (columns); `support` is the
    number of reference reports with each observation, shown in the labels."""
    figure = Figure(figsize=(8, 9), layout="constrained")
    axes = figure.add_subplot()
    height = 0.8 / len(per_finding_f1.columns)
    positions = np.arange(len(per_finding_f1))
    for offset, system in enumerate(per_finding_f1.columns):
        values = per_finding_f1[system].to_numpy(dtype=float)
        axes.barh(positions + offset * height, np.nan_to_num(values), height, label=system)
    axes.set_yticks(positions + height * (len(per_finding_f1.columns) - 1) / 2)
    axes.set_yticklabels([f"{name} (n={support[name]})" for name in per_finding_f1.index])
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_xlabel("F1 (rule-based labeler, approximates CheXbert)")
    axes.legend(fontsize="small", loc="lower right")
    figure.savefig(path, dpi=110)
    return path


def plot_report_lengths(samples: pd.DataFrame, length_ratio: float, path: Path) -> Path:
    """Each report's length against its reference's (`samples`' generated_length and
    reference_length: words and punctuation marks, as BLEU counts them), with the line where
    they are equal: points below it are reports shorter than their references, which BLEU's
    brevity penalty charges when they dominate. `length_ratio` is the corpus ratio, in the
    title."""
    generated = samples["generated_length"].to_numpy(dtype=float)
    reference = samples["reference_length"].to_numpy(dtype=float)
    figure = Figure(figsize=(6, 6), layout="constrained")
    axes = figure.add_subplot()
    axes.scatter(reference, generated, s=12, alpha=0.5)
    top = max(float(np.max(reference, initial=0)), float(np.max(generated, initial=0)), 1.0) * 1.05
    axes.plot([0, top], [0, top], color="grey", linewidth=1, label="as long as the reference")
    axes.set_xlim(0, top)
    axes.set_ylim(0, top)
    axes.set_xlabel("reference length (words and punctuation marks)")
    axes.set_ylabel("generated length")
    shorter = int(np.sum(generated < reference))
    axes.set_title(
        f"{len(samples)} reports: length ratio {length_ratio:.2f}, {shorter} shorter than "
        "their references",
        fontsize="medium",
    )
    axes.legend(fontsize="small", loc="upper left")
    figure.savefig(path, dpi=110)
    return path
