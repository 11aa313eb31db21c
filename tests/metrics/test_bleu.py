import numpy as np
import pytest
from sacrebleu.metrics import BLEU

from radreport.metrics.bleu_statistics import (
    bleu_from_statistics,
    corpus_statistics,
    sentence_bleu,
)
from radreport.metrics.lexical import corpus_bleu

HYPOTHESES = [
    "the heart is normal in size . the lungs are clear .",
    "no pneumothorax .",
    "mild cardiomegaly . small left pleural effusion .",
    "heart size normal .",
    "the lungs are clear .",
]
REFERENCES = [
    "the heart is normal in size . the mediastinum is unremarkable . the lungs are clear .",
    "no pleural effusion or pneumothorax . heart size is normal .",
    "moderate cardiomegaly . no pleural effusion .",
    "cardiac silhouette within normal limits . lungs clear .",
    "the lungs are clear .",
]


def _sacrebleu_corpus(hypotheses, references, order):
    bleu = BLEU(tokenize="none", max_ngram_order=order, force=True)
    return bleu.corpus_score(hypotheses, [references]).score / 100.0


def test_identical_reports_score_one_and_disjoint_zero():
    assert corpus_bleu(REFERENCES, REFERENCES)[4] == pytest.approx(1.0)
    disjoint = ["alpha beta gamma delta epsilon"] * len(REFERENCES)
    assert corpus_bleu(disjoint, REFERENCES)[4] == 0.0


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_order_equals_its_own_sacrebleu_run(order):
    assert corpus_bleu(HYPOTHESES, REFERENCES)[order] == pytest.approx(
        _sacrebleu_corpus(HYPOTHESES, REFERENCES, order), abs=1e-12
    )


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("rows", [slice(None), slice(1, 2), slice(3, 4), slice(2, 4)])
def test_bleu_from_statistics_equals_sacrebleu(order, rows):
    # Single short reports have orders without any match: this checks the exp smoothing.
    hypotheses, references = HYPOTHESES[rows], REFERENCES[rows]
    summed = corpus_statistics(hypotheses, references).sum(axis=0)
    assert bleu_from_statistics(summed, order) == pytest.approx(
        _sacrebleu_corpus(hypotheses, references, order), abs=1e-12
    )


def test_bleu_from_statistics_scores_every_row_of_a_batch():
    statistics = corpus_statistics(HYPOTHESES, REFERENCES)
    batch = np.vstack([statistics.sum(axis=0), statistics[:2].sum(axis=0)])
    scores = bleu_from_statistics(batch, 4)
    assert scores[0] == pytest.approx(_sacrebleu_corpus(HYPOTHESES, REFERENCES, 4))
    assert scores[1] == pytest.approx(_sacrebleu_corpus(HYPOTHESES[:2], REFERENCES[:2], 4))


def test_sentence_bleu_equals_sacrebleu_sentence_score():
    bleu = BLEU(tokenize="none", effective_order=True)
    expected = [
        bleu.sentence_score(h, [r]).score / 100.0
        for h, r in zip(HYPOTHESES, REFERENCES, strict=True)
    ]
    statistics = corpus_statistics(HYPOTHESES, REFERENCES)
    np.testing.assert_allclose(sentence_bleu(statistics), expected, atol=1e-12)
    assert sentence_bleu(statistics)[-1] == pytest.approx(1.0)
