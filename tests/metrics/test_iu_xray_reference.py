"""The baselines reproduce the reference table of evaluation.md on IU X-Ray train -> val."""

from pathlib import Path

import pytest

from radreport.metrics import EvaluationSettings, read_report_table, score_baselines_from_csv
from radreport.metrics.baselines import baseline_reports
from radreport.metrics.bleu_statistics import bleu_from_statistics, corpus_statistics
from radreport.metrics.lexical import corpus_bleu
from radreport.metrics.normalize import normalize_report

IU_XRAY = Path(__file__).resolve().parents[3] / "shared" / "data" / "iu_xray"
# baseline: (BLEU-1, BLEU-4, ROUGE-L) from ../shared/knowledge/evaluation.md
REFERENCE_TABLE = {
    "most_frequent_report": (0.189, 0.061, 0.294),
    "copy_impression": (0.027, 0.010, 0.164),
    "tfidf_nearest_impression": (0.507, 0.265, 0.453),
    "exact_impression_lookup": (0.506, 0.288, 0.476),
}


needs_data = pytest.mark.skipif(not IU_XRAY.is_dir(), reason=f"no IU X-Ray data at {IU_XRAY}")


@needs_data
def test_baselines_reproduce_the_reference_table():
    table = score_baselines_from_csv(
        IU_XRAY / "train.csv",
        IU_XRAY / "val.csv",
        EvaluationSettings(bootstrap_resamples=10),
    )
    for baseline, expected in REFERENCE_TABLE.items():
        measured = tuple(table.loc[baseline, ["bleu1", "bleu4", "rouge_l"]])
        assert measured == pytest.approx(expected, abs=0.005), baseline


@needs_data
def test_bootstrap_statistics_give_sacrebleu_corpus_bleu_on_the_validation_split():
    train, val = (read_report_table(IU_XRAY / f"{split}.csv") for split in ("train", "val"))
    generated = baseline_reports(train, val["impression"])["exact_impression_lookup"]
    hypotheses = [normalize_report(text) for text in generated]
    references = [normalize_report(text) for text in val["reference"]]
    summed = corpus_statistics(hypotheses, references).sum(axis=0)
    for order, expected in corpus_bleu(hypotheses, references).items():
        assert bleu_from_statistics(summed, order) == pytest.approx(expected, abs=1e-12)
