"""How generated reports are judged: lexical metrics, clinical finding F1, baselines, reports.

Entry points:
- `evaluate_reports(samples, train, settings, output_dir)`: a model's reports with all
  metrics and bootstrap intervals, beside the baselines on the same studies, plus tables and
  an HTML report (evaluate.py).
- `score_baselines_from_csv(train_csv, reports_csv)`: the baselines alone on a split, for
  `run.py baselines` (baseline_table.py).
The protocol (R2Gen normalisation, sacrebleu BLEU, ROUGE-L beta 1.2, finding F1 as an
approximation of CheXbert F1) is described in ../shared/knowledge/evaluation.md.
"""

from radreport.metrics.baseline_table import (
    baseline_table_json,
    baseline_table_text,
    score_baselines,
    score_baselines_from_csv,
)
from radreport.metrics.evaluate import EvaluationResult, evaluate_reports
from radreport.metrics.report_tables import read_report_table, standardize_report_table
from radreport.metrics.settings import EvaluationSettings

__all__ = [
    "EvaluationResult",
    "EvaluationSettings",
    "baseline_table_json",
    "baseline_table_text",
    "evaluate_reports",
    "read_report_table",
    "score_baselines",
    "score_baselines_from_csv",
    "standardize_report_table",
]
