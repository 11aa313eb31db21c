"""Seeded bootstrap over reports, as a matrix of resampling weights.

A resample of n reports drawn with replacement is represented by how many times each report
was drawn. Any metric that is a function of per-report sums (BLEU statistics, finding counts)
or means (sentence BLEU, ROUGE-L) is then evaluated on all resamples at once with one matrix
product, which is what keeps 1,000 resamples of 590 reports to a fraction of a second.
Every system scored with the same weights is resampled on the same reports (a paired
bootstrap), so their intervals are comparable.
"""

from __future__ import annotations

import numpy as np


def resample_weights(n_items: int, n_resamples: int, seed: int) -> np.ndarray:
    """Draw counts, shape (n_resamples, n_items); each row sums to n_items."""
    if n_items <= 0:
        raise ValueError("cannot bootstrap an empty set of reports")
    draws = np.random.default_rng(seed).integers(0, n_items, size=(n_resamples, n_items))
    # Row r's draws land in the flat slots r * n_items + item, so one bincount counts them all.
    flat_slots = draws + np.arange(n_resamples)[:, None] * n_items
    return np.bincount(flat_slots.ravel(), minlength=n_resamples * n_items).reshape(
        n_resamples, n_items
    )


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central `confidence` interval of bootstrap samples (percentile method).

    Resamples where the metric is undefined (NaN) are left out; all undefined gives (nan, nan).
    """
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)
