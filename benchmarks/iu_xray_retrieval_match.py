"""The retriever's first study alone as the report, by characters and by words, on IU X-Ray val.

Retrieval-augmented prompts show the model the training studies whose impressions are most
like the new one (`llm.retrieval_match`); the first of them is the model's best template
and, with `mbr_example_references`, a pseudo-reference for MBR. This scores that first
study's findings as if they were the report, for both rules, beside the exact-impression
lookup, with the evaluation's own code on the halves of `iu_xray_halves.py` (a choice is
made on dev and scored on held-out) and split by whether the val impression occurs in train
as written (the same characters) or not. A second lookup, `lookup_as_written`, matches the
impression as written rather than normalised (the most common report among the training
studies with exactly that impression, else the lookup's report): the writer-aware bar a
retriever by characters should be held to. No model runs; about 20 seconds.

    .venv/bin/python benchmarks/iu_xray_retrieval_match.py

Writes benchmarks/results/iu_xray_retrieval_match.{csv,json}; the CSV is in the layout of
iu_xray_paired_delta.py (`... iu_xray_paired_delta.py
benchmarks/results/iu_xray_retrieval_match.csv first_by_characters`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from iu_xray_finetune import load_studies
from iu_xray_halves import halves_table

from radreport.llm.retrieval import ImpressionIndex
from radreport.metrics.baselines import baseline_reports, exact_lookup_reports
from radreport.metrics.normalize import normalize_report
from radreport.metrics.scoring import score_systems
from radreport.metrics.settings import EvaluationSettings

RESULTS = Path(__file__).resolve().parent / "results"
MATCHES = ("characters", "words")


def main() -> None:
    studies = load_studies()
    train = studies[studies["split"] == "train"]
    val = studies[studies["split"] == "val"].reset_index(drop=True)
    impressions = val["impression"].tolist()
    table = val[["study_id", "impression"]].assign(reference=val["report"])
    table["exact_impression_lookup"] = baseline_reports(
        train.rename(columns={"report": "reference"}), impressions
    )["exact_impression_lookup"]
    train_reports = train["report"].tolist()
    table["lookup_as_written"] = exact_lookup_reports(
        train["impression"].tolist(),
        train_reports,
        [normalize_report(report) for report in train_reports],
        impressions,
        table["exact_impression_lookup"].tolist(),
    )
    for match in MATCHES:
        index = ImpressionIndex.from_table(train, match=match)
        table[f"first_by_{match}"] = [row[0][1] for row in index.nearest(impressions, k=1)]
    columns = [
        "exact_impression_lookup",
        "lookup_as_written",
        *(f"first_by_{match}" for match in MATCHES),
    ]
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "iu_xray_retrieval_match.csv", index=False)

    result = halves_table(table, columns)
    written_before = set(train["impression"])
    seen = np.array([text in written_before for text in impressions])
    for part, rows in (("seen as written", seen), ("not seen as written", ~seen)):
        scores = score_systems(
            table.loc[rows, "reference"].tolist(),
            {column: table.loc[rows, column].tolist() for column in columns},
            EvaluationSettings(bootstrap_resamples=1),
        )
        result[f"{part} ({int(rows.sum())})"] = {
            column: {k: scores[column].metrics[k] for k in ("bleu4", "finding_f1_micro")}
            for column in columns
        }
    for part, systems in result.items():
        for column, scores in systems.items():
            print(
                f"{part:26s} {column:24s} BLEU-4 {scores['bleu4']:.4f}  "
                f"finding F1 {scores['finding_f1_micro']:.4f}"
            )
    (RESULTS / "iu_xray_retrieval_match.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
