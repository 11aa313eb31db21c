"""The bar a model must clear: the baselines scored on a split, as a table, text or JSON.

Behind `python run.py baselines --train CSV --reports CSV [--json]`: users see what
retrieval alone achieves on their data before they train anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from radreport.metrics.baselines import BASELINE_LABELS, baseline_reports
from radreport.metrics.report_tables import read_report_table
from radreport.metrics.scoring import score_systems
from radreport.metrics.settings import EvaluationSettings

TEXT_COLUMNS = {
    "bleu1": "BLEU-1",
    "bleu4": "BLEU-4",
    "rouge_l": "ROUGE-L",
    "sentence_bleu": "sent.BLEU",
    "chrf": "chrF",
    "finding_f1_micro": "F1 micro",
    "finding_f1_macro": "F1 macro",
    "length_ratio": "length",  # generated / reference length, as BLEU counts it
}


def score_baselines(
    train: pd.DataFrame, reports: pd.DataFrame, settings: EvaluationSettings | None = None
) -> pd.DataFrame:
    """Every baseline's metrics on `reports` (rows: baseline names, columns: metric keys).

    Both tables have study_id, impression, reference columns (`read_report_table`).
    """
    settings = settings or EvaluationSettings()
    generated = baseline_reports(train, reports["impression"].tolist())
    scores = score_systems(reports["reference"].tolist(), generated, settings)
    return pd.DataFrame.from_dict(
        {name: system.metrics for name, system in scores.items()}, orient="index"
    )


def score_baselines_from_csv(
    train_path: str | Path, reports_path: str | Path, settings: EvaluationSettings | None = None
) -> pd.DataFrame:
    """`score_baselines` on two CSVs in the IU X-Ray or manifest layout."""
    return score_baselines(read_report_table(train_path), read_report_table(reports_path), settings)


def baseline_table_text(table: pd.DataFrame) -> str:
    """A fixed-width table of the headline metrics, one baseline per line."""
    shown = table[list(TEXT_COLUMNS)].rename(columns=TEXT_COLUMNS)
    shown.index = [BASELINE_LABELS.get(name, name) for name in shown.index]
    return shown.to_string(float_format="{:.3f}".format)


def baseline_table_json(table: pd.DataFrame) -> str:
    """{baseline name: {metric key: value}}, every key including intervals; NaN as null."""
    records = {
        name: {key: None if pd.isna(value) else float(value) for key, value in row.items()}
        for name, row in table.iterrows()
    }
    return json.dumps(records, indent=2)
