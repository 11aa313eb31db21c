"""Generated reports for the evaluation splits of an Alpaca table."""

from __future__ import annotations

import pandas as pd

from radreport.llm.generate import PromptTooLong, ReportGenerator
from radreport.llm.retrieval import ImpressionIndex

EVALUATION_SPLITS = ("val", "test")
PREDICTION_COLUMNS = ("study_id", "split", "impression", "reference", "generated")


def predict_splits(
    generator: ReportGenerator, alpaca_table: pd.DataFrame, splits=EVALUATION_SPLITS
) -> pd.DataFrame:
    """One row per study of `splits`, prompted exactly as in training (same examples)."""
    rows = alpaca_table[alpaca_table["split"].isin(splits)].reset_index(drop=True)
    examples = [[tuple(pair) for pair in row] for row in rows["examples"]]
    generated = generator.generate(rows["impression"].tolist(), examples)
    predictions = rows[["study_id", "split", "impression"]].copy()
    predictions["reference"] = rows["report"]
    predictions["generated"] = generated
    return predictions[list(PREDICTION_COLUMNS)]


def predict_impressions(
    generator: ReportGenerator,
    impressions: list[str],
    train: pd.DataFrame | None = None,
    retrieval_k: int = 0,
) -> list[str]:
    """Reports for new impressions; with retrieval_k > 0 the prompts show the k most similar
    studies of `train` (impression, report), as the model saw in training. PromptTooLong
    for the first impression whose prompt fills the model's context."""
    return generator.generate(impressions, _retrieved_examples(impressions, train, retrieval_k))


def predict_fitting_impressions(
    generator: ReportGenerator,
    impressions: list[str],
    train: pd.DataFrame | None = None,
    retrieval_k: int = 0,
) -> tuple[list[str | None], list[PromptTooLong]]:
    """predict_impressions for every impression whose prompt fits the model's context; the
    others get None in place of a report, and their PromptTooLong (in input order)."""
    examples = _retrieved_examples(impressions, train, retrieval_k)
    too_long = generator.prompts_too_long(impressions, examples)
    skipped = {error.index for error in too_long}
    kept = [index for index in range(len(impressions)) if index not in skipped]
    reports: list[str | None] = [None] * len(impressions)
    if kept:
        written = generator.generate(
            [impressions[index] for index in kept],
            [examples[index] for index in kept] if examples is not None else None,
        )
        for index, report in zip(kept, written, strict=True):
            reports[index] = report
    return reports, too_long


def _retrieved_examples(
    impressions: list[str], train: pd.DataFrame | None, retrieval_k: int
) -> list[list[tuple[str, str]]] | None:
    if retrieval_k > 0 and train is not None and not train.empty:
        return ImpressionIndex.from_table(train).nearest(impressions, retrieval_k)
    return None
