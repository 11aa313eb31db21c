"""BLEU's sufficient statistics per report, and corpus BLEU from summed statistics.

Corpus BLEU is a function of sums over reports (clipped n-gram matches, n-gram totals,
hypothesis and reference lengths). Counting them once per report lets a bootstrap resample
the reports by weighting these rows, instead of re-running sacrebleu a thousand times.
`bleu_from_statistics` follows sacrebleu's corpus BLEU exactly (brevity penalty, "exp"
smoothing of zero-match orders, no effective order); a test checks it against
`sacrebleu.BLEU.corpus_score` on the same texts. The same statistics give each report's own
BLEU (`sentence_bleu`) without counting n-grams a second time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from sacrebleu.metrics import BLEU

MAX_ORDER = 4
# sacrebleu's log of a zero precision: a huge negative number rather than -inf, so a zero
# order gives a score of exactly 0 without warnings.
_LOG_OF_ZERO = -9999999999.0


def _ngrams(tokens: list[str], order: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + order]) for i in range(len(tokens) - order + 1))


def report_statistics(hypothesis: str, reference: str, max_order: int = MAX_ORDER) -> np.ndarray:
    """[hyp_len, ref_len, matches_1..max_order, totals_1..max_order] for one report.

    Tokens are whitespace-separated, as sacrebleu's tokenize="none" on normalised text.
    """
    hypothesis_tokens, reference_tokens = hypothesis.split(), reference.split()
    matches, totals = [], []
    for order in range(1, max_order + 1):
        hypothesis_ngrams = _ngrams(hypothesis_tokens, order)
        reference_ngrams = _ngrams(reference_tokens, order)
        matches.append(sum((hypothesis_ngrams & reference_ngrams).values()))
        totals.append(sum(hypothesis_ngrams.values()))
    return np.array([len(hypothesis_tokens), len(reference_tokens), *matches, *totals])


def corpus_statistics(
    hypotheses: Sequence[str], references: Sequence[str], max_order: int = MAX_ORDER
) -> np.ndarray:
    """Per-report statistics, shape (n_reports, 2 + 2 * max_order)."""
    pairs = zip(hypotheses, references, strict=True)
    rows = [report_statistics(h, r, max_order) for h, r in pairs]
    return np.array(rows, dtype=np.int64).reshape(len(rows), 2 + 2 * max_order)


def bleu_from_statistics(summed: np.ndarray, order: int) -> np.ndarray:
    """Corpus BLEU-`order` (0..1) from statistics summed over reports.

    `summed` has shape (..., 2 + 2 * max_order) with order <= max_order; leading axes are kept,
    so a (resamples, columns) array gives one score per bootstrap resample.
    """
    summed = np.asarray(summed, dtype=np.float64)
    max_order = (summed.shape[-1] - 2) // 2
    hypothesis_length, reference_length = summed[..., 0], summed[..., 1]
    matches = summed[..., 2 : 2 + order]
    totals = summed[..., 2 + max_order : 2 + max_order + order]
    log_precisions = _smoothed_log_precisions(matches, totals)
    with np.errstate(divide="ignore"):
        brevity_penalty = np.where(
            hypothesis_length < reference_length,
            np.exp(1.0 - reference_length / np.maximum(hypothesis_length, 1e-300)),
            1.0,
        )
    score = brevity_penalty * np.exp(log_precisions.sum(axis=-1) / order)
    # As sacrebleu: no matched n-gram of any order, or no hypothesis token, scores 0.
    nothing_matched = matches.sum(axis=-1) == 0
    return np.where(nothing_matched | (hypothesis_length == 0), 0.0, score)


def _smoothed_log_precisions(matches: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """log n-gram precisions with sacrebleu's "exp" smoothing of orders without a match.

    The k-th order without a match (counting from the lowest) gets precision 1 / (2^k * total);
    an order with no hypothesis n-gram at all contributes log 0, as in sacrebleu.
    """
    zero_match = matches == 0
    times_halved = np.cumsum(zero_match, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(zero_match, 1.0 / (2.0**times_halved * totals), matches / totals)
        log_precision = np.log(precision)
    return np.where((totals == 0) | ~np.isfinite(log_precision), _LOG_OF_ZERO, log_precision)


def sentence_bleu(statistics: np.ndarray) -> np.ndarray:
    """BLEU-4 of each report on its own, from its row of statistics, by sacrebleu's
    sentence-level formula (exp smoothing, effective order): the per-report figure whose mean
    the original talk reported (0.33 on validation)."""
    max_order = (statistics.shape[1] - 2) // 2
    return np.array(
        [
            BLEU.compute_bleu(
                correct=row[2 : 2 + max_order].tolist(),
                total=row[2 + max_order :].tolist(),
                sys_len=int(row[0]),
                ref_len=int(row[1]),
                smooth_method="exp",
                effective_order=True,
                max_ngram_order=max_order,
            ).score
            / 100.0
            for row in statistics
        ]
    )
