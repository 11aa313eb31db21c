"""Wall time to score 590 reports (the size of the IU X-Ray test split) with bootstrap CIs.

The 296 validation studies are topped up to 590 by drawing studies again (seeded); the
"model" is the TF-IDF neighbour's report, so the numbers are realistic. Timed: the whole
`evaluate_reports` (model + 4 baselines, 1,000 resamples) without and with the HTML report,
and, for scale, the naive bootstrap it replaces (sacrebleu re-run on every resample),
measured on 20 resamples and scaled to 1,000. Goal: under 30 s on 2 cores.

    .venv/bin/python benchmarks/scoring_speed.py [--data ../shared/data/iu_xray]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from radreport.metrics import EvaluationSettings, evaluate_reports, read_report_table
from radreport.metrics.baselines import baseline_reports
from radreport.metrics.lexical import corpus_bleu
from radreport.metrics.normalize import normalize_report

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "iu_xray"
N_REPORTS = 590
NAIVE_RESAMPLES = 20


def samples_of_size(train: pd.DataFrame, val: pd.DataFrame, size: int) -> pd.DataFrame:
    extra = val.sample(size - len(val), replace=True, random_state=0)
    reports = pd.concat([val, extra], ignore_index=True)
    generated = baseline_reports(train, reports["impression"].tolist())
    return reports.assign(generated=generated["tfidf_nearest_impression"])


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def naive_bootstrap_seconds(samples: pd.DataFrame, resamples: int) -> float:
    generated = [normalize_report(text) for text in samples["generated"]]
    references = [normalize_report(text) for text in samples["reference"]]
    rng = np.random.default_rng(0)

    def run() -> None:
        for _ in range(resamples):
            rows = rng.integers(0, len(generated), len(generated))
            corpus_bleu([generated[i] for i in rows], [references[i] for i in rows])

    return timed(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    train = read_report_table(args.data / "train.csv")
    samples = samples_of_size(train, read_report_table(args.data / "val.csv"), N_REPORTS)
    settings = EvaluationSettings(bootstrap_resamples=1000)
    evaluate_reports(samples.head(20), train, settings)  # warm-up: imports and caches

    scoring = timed(lambda: evaluate_reports(samples, train, settings))
    with tempfile.TemporaryDirectory() as directory:
        with_report = timed(lambda: evaluate_reports(samples, train, settings, directory))
    naive = naive_bootstrap_seconds(samples, NAIVE_RESAMPLES) * 1000 / NAIVE_RESAMPLES
    print(f"{N_REPORTS} reports, model + 4 baselines, 1,000 bootstrap resamples")
    print(f"evaluate_reports, metrics only:        {scoring:6.1f} s")
    print(f"evaluate_reports, with HTML and plots: {with_report:6.1f} s")
    print(f"naive bootstrap, BLEU only, one system (sacrebleu per resample): {naive:6.0f} s")


if __name__ == "__main__":
    main()
