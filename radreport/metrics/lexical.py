"""Word-overlap metrics from sacrebleu on normalised reports: corpus BLEU-1..4 and chrF.

All texts must already be normalised (`normalize_report`): sacrebleu runs with
tokenize="none", so its tokens are the normalised words and the " ." sentence marks, as in the
R2Gen protocol. Scores are returned on a 0..1 scale like the reference table, not sacrebleu's
0..100.
"""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics import BLEU, CHRF

SMOOTHING = "exp"  # sacrebleu's default; only matters when an n-gram order has no match


def corpus_bleu(
    hypotheses: Sequence[str], references: Sequence[str], max_order: int = 4
) -> dict[int, float]:
    """Corpus BLEU-1 .. BLEU-`max_order`, {order: score}, from one pass of sacrebleu.

    BLEU-n uses the same pooled statistics as BLEU-4 (lengths, per-order matches), so the
    lower orders are sacrebleu's formula applied to the first n orders of one corpus score.
    """
    # force=True: normalised text ends in " ." on purpose; without it sacrebleu warns that
    # the input looks tokenised.
    bleu = BLEU(tokenize="none", max_ngram_order=max_order, force=True)
    score = bleu.corpus_score(list(hypotheses), [list(references)])
    return {
        order: BLEU.compute_bleu(
            correct=score.counts[:order],
            total=score.totals[:order],
            sys_len=score.sys_len,
            ref_len=score.ref_len,
            smooth_method=SMOOTHING,
            max_ngram_order=order,
        ).score
        / 100.0
        for order in range(1, max_order + 1)
    }


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (character 6-grams, beta 2): credits near-miss wordings BLEU scores as 0."""
    return CHRF().corpus_score(list(hypotheses), [list(references)]).score / 100.0
