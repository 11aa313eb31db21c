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

from __future__ import annotations

import importlib

# Each name is imported from its module on first use (PEP 562), not with the package: the
# baselines and the evaluation import scikit-learn (about a second), and a command that
# only reads a report table or a config (`run.py evaluate` refusing a bad CSV) needs none.
_MODULE_OF = {
    "EvaluationResult": "radreport.metrics.evaluate",
    "EvaluationSettings": "radreport.metrics.settings",
    "baseline_table_json": "radreport.metrics.baseline_table",
    "baseline_table_text": "radreport.metrics.baseline_table",
    "evaluate_reports": "radreport.metrics.evaluate",
    "read_report_table": "radreport.metrics.report_tables",
    "score_baselines": "radreport.metrics.baseline_table",
    "score_baselines_from_csv": "radreport.metrics.baseline_table",
    "standardize_report_table": "radreport.metrics.report_tables",
}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULE_OF[name]), name)
