"""Generated reports for the evaluation splits of an Alpaca table."""

from __future__ import annotations

import pandas as pd

from radreport.llm.generate import ReportGenerator
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
    studies of `train` (impression, report), as the model saw in training."""
    examples = None
    if retrieval_k > 0 and train is not None and not train.empty:
        examples = ImpressionIndex.from_table(train).nearest(impressions, retrieval_k)
    return generator.generate(impressions, examples)
