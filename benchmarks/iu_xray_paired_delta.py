"""Paired bootstrap of model minus exact-impression lookup (or minus another prediction column)
on saved IU X-Ray val predictions.

The evaluation report gives each system its own interval; whether a model is better than the
lookup is a question about their difference on the same resampled studies. This resamples
the val studies with the evaluation's own bootstrap (same weights for both systems) and
prints, for corpus BLEU-4 and finding F1 (micro), the point difference, its 95 % interval
and the share of resamples where the model scores at least as well as the lookup.

Several columns (one model setting trained under several seeds, say) are scored as one
model whose score is their mean on each resample, so the difference to the lookup is the
setting's, not one training run's.

Run: .venv/bin/python benchmarks/iu_xray_paired_delta.py \
         benchmarks/results/iu_xray_predictions_k3.csv generated_mbr8 [MORE ...] \
         [--against COLUMN]

With --against, the second system is that column of the same CSV instead of the lookup
(two decodings of one model, say). With --lookup-from NAME:VERSION the lookup searches that
model version's train split, the pairs the model itself trained on and retrieves from, in
place of all of IU X-Ray train: the same data on both sides.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from radreport.metrics.baselines import baseline_reports
from radreport.metrics.bleu_statistics import bleu_from_statistics, corpus_statistics
from radreport.metrics.bootstrap import percentile_interval, resample_weights
from radreport.metrics.finding_f1 import FindingCounts, finding_f1
from radreport.metrics.labeler import binarize_labels, label_reports
from radreport.metrics.normalize import normalize_report
from radreport.metrics.report_tables import read_report_table
from radreport.metrics.settings import EvaluationSettings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "iu_xray"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions", type=Path, help="CSV with impression, reference, COLUMN")
    parser.add_argument(
        "columns", nargs="+", help="the model's prediction column(s); several are averaged"
    )
    parser.add_argument("--against", help="a second prediction column instead of the lookup")
    parser.add_argument(
        "--lookup-from",
        metavar="NAME:VERSION",
        help="build the lookup from that model version's train split (the pairs the model "
        "trained on and retrieves from) instead of all of IU X-Ray train",
    )
    parser.add_argument("--resamples", type=int, default=10_000)
    args = parser.parse_args()

    settings = EvaluationSettings()
    predictions = pd.read_csv(args.predictions).fillna("")
    references = predictions["reference"].astype(str).tolist()
    if args.against:
        other = predictions[args.against].astype(str).tolist()
    else:
        if args.lookup_from:
            from pipelines.model_versions import load_trained_model

            train_pairs = load_trained_model(args.lookup_from).train_pairs
            train = train_pairs.rename(columns={"report": "reference"})
        else:
            train = read_report_table(DATA / "train.csv")
        train = train[train["impression"].str.strip() != ""]
        other = baseline_reports(train, predictions["impression"].tolist())[
            "exact_impression_lookup"
        ]
    columns = {column: predictions[column].astype(str).tolist() for column in args.columns}
    weights = resample_weights(len(references), args.resamples, settings.seed)
    everyone = np.ones((1, len(references)), dtype=np.int64)
    normalized_references = [normalize_report(text) for text in references]
    reference_presence = binarize_labels(label_reports(references), settings.uncertain_as)

    def scores(texts: list[str], rows: np.ndarray) -> dict[str, np.ndarray]:
        statistics = corpus_statistics([normalize_report(t) for t in texts], normalized_references)
        presence = binarize_labels(label_reports(texts), settings.uncertain_as)
        counts = FindingCounts.compare(reference_presence, presence)
        return {
            "bleu4": bleu_from_statistics(rows @ statistics, 4),
            "finding_f1_micro": finding_f1(counts, rows)["finding_f1_micro"],
        }

    def mean_scores(rows: np.ndarray) -> dict[str, np.ndarray]:
        each = [scores(texts, rows) for texts in columns.values()]
        return {metric: np.mean([s[metric] for s in each], axis=0) for metric in each[0]}

    point = {"model": mean_scores(everyone), "other": scores(other, everyone)}
    resampled = {"model": mean_scores(weights), "other": scores(other, weights)}
    model_label = "+".join(args.columns) + (" (mean)" if len(args.columns) > 1 else "")
    lookup = f"exact-impression lookup{' of ' + args.lookup_from if args.lookup_from else ''}"
    print(f"{args.predictions.name}:{model_label} vs {args.against or lookup}, "
          f"{len(references)} studies, {args.resamples} paired resamples")  # fmt: skip
    other_label = args.against or "lookup"
    for metric in ("bleu4", "finding_f1_micro"):
        difference = point["model"][metric][0] - point["other"][metric][0]
        samples = resampled["model"][metric] - resampled["other"][metric]
        low, high = percentile_interval(samples, settings.confidence_level)
        at_least = float(np.mean(samples[np.isfinite(samples)] >= 0))
        print(
            f"  {metric}: model {point['model'][metric][0]:.3f}, {other_label} "
            f"{point['other'][metric][0]:.3f}, difference {difference:+.3f} "
            f"(95 % interval {low:+.3f} to {high:+.3f}); model >= {other_label} in "
            f"{at_least:.0%} of resamples"
        )


if __name__ == "__main__":
    main()
