"""Generated reports for the evaluation splits of an Alpaca table."""

from __future__ import annotations

import pandas as pd

from radreport.llm.generate import ReportGenerator

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
