"""Score any set of generated reports, beside the baselines, on the same studies.

`evaluate_reports` is the one entry point of an evaluation: metrics with bootstrap intervals
for the model and for every baseline (built from the training table for these very studies),
the per-observation finding table, a per-report sample table, and optionally an HTML report
with plots written to a directory. It returns plain Python and pandas objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from radreport.metrics.baselines import baseline_reports
from radreport.metrics.report_tables import standardize_report_table
from radreport.metrics.scoring import score_systems
from radreport.metrics.settings import EvaluationSettings

MODEL = "model"
SAMPLE_COLUMNS = ("study_id", "impression", "reference", "generated")
# Kept in the sample table when given: whether the token budget cut the report, which its
# text does not show and which explains a low score.
OUT_OF_ROOM = "out_of_room"


@dataclass
class EvaluationResult:
    """Everything one evaluation produced.

    metrics: the model's flat metrics ("bleu4", "bleu4_ci_low", "finding_f1_micro", ...; keys
        in scoring.py). baselines: the same keys per baseline name (baselines.BASELINE_LABELS).
    per_finding: the model's precision / recall / F1 per CheXpert observation.
    per_finding_f1: F1 per observation (rows) for the model and each baseline (columns).
    samples: one row per report: study_id, impression, reference, generated (out_of_room
        when the reports came with it), sentence_bleu, rouge_l, generated_length,
        reference_length, finding_f1, finding_agreement, missed_findings, false_findings.
    html_path, plot_paths: files written by `evaluate_reports(output_dir=...)`, else empty.
    """

    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    per_finding: pd.DataFrame
    per_finding_f1: pd.DataFrame
    samples: pd.DataFrame
    settings: EvaluationSettings
    html_path: Path | None = None
    plot_paths: list[Path] = field(default_factory=list)

    def comparison_table(self) -> pd.DataFrame:
        """One row per system (the model first, then the baselines), one column per metric."""
        return pd.DataFrame.from_dict({MODEL: self.metrics, **self.baselines}, orient="index")

    def flat_metrics(self) -> dict[str, float]:
        """The model's metrics plus each baseline's as "baseline_<name>_<key>", for a tracker."""
        flat = dict(self.metrics)
        for name, metrics in self.baselines.items():
            flat |= {f"baseline_{name}_{key}": value for key, value in metrics.items()}
        return flat

    def to_json(self) -> str:
        """All of it as JSON (NaN becomes null); `from_json` reads it back."""
        payload = {
            "metrics": self.metrics,
            "baselines": self.baselines,
            "per_finding": json.loads(self.per_finding.to_json(orient="records")),
            "per_finding_f1": json.loads(self.per_finding_f1.to_json(orient="split")),
            "samples": json.loads(self.samples.to_json(orient="records")),
            "settings": self.settings.model_dump(),
            "html_path": str(self.html_path) if self.html_path else None,
            "plot_paths": [str(path) for path in self.plot_paths],
        }
        return json.dumps(_nan_to_none(payload), indent=2)

    @classmethod
    def from_json(cls, text: str) -> EvaluationResult:
        payload = json.loads(text)
        f1 = payload["per_finding_f1"]
        return cls(
            metrics=_none_to_nan(payload["metrics"]),
            baselines={k: _none_to_nan(v) for k, v in payload["baselines"].items()},
            per_finding=pd.DataFrame(payload["per_finding"]),
            per_finding_f1=pd.DataFrame(f1["data"], index=f1["index"], columns=f1["columns"]),
            samples=pd.DataFrame(payload["samples"]),
            settings=EvaluationSettings(**payload["settings"]),
            html_path=Path(payload["html_path"]) if payload["html_path"] else None,
            plot_paths=[Path(path) for path in payload["plot_paths"]],
        )


def _nan_to_none(value):
    if isinstance(value, dict):
        return {key: _nan_to_none(item) for key, item in value.items()}
    if isinstance(value, float) and value != value:
        return None
    return value


def _none_to_nan(metrics: dict[str, float | None]) -> dict[str, float]:
    return {key: float("nan") if value is None else value for key, value in metrics.items()}


def _check_samples(samples: pd.DataFrame) -> pd.DataFrame:
    missing = [column for column in SAMPLE_COLUMNS if column not in samples.columns]
    if missing:
        raise ValueError(f"generated reports: missing column '{missing[0]}'")
    if samples.empty:
        raise ValueError("generated reports: no rows to evaluate")
    checked = samples[list(SAMPLE_COLUMNS)].fillna("").astype(str).reset_index(drop=True)
    if OUT_OF_ROOM in samples.columns:
        flags = samples[OUT_OF_ROOM]
        if flags.isna().any() or not flags.isin([True, False]).all():
            raise ValueError(f"generated reports: column '{OUT_OF_ROOM}' must be true or false")
        checked[OUT_OF_ROOM] = flags.astype(bool).to_numpy()
    return checked


def evaluate_reports(
    samples: pd.DataFrame,
    train: pd.DataFrame,
    settings: EvaluationSettings | None = None,
    output_dir: str | Path | None = None,
) -> EvaluationResult:
    """Score generated reports and the baselines on the same studies.

    samples: columns study_id, impression, reference, generated (raw text); optionally
        out_of_room (bool), kept in the sample table.
    train: the training pairs the baselines retrieve from, in either table layout
        (study_id, impression, findings) or (study_id, patient_id, impression, report), or
        already standardised (study_id, impression, reference).
    output_dir: when given, evaluation.html, samples.csv and the PNG plots are written there.
    """
    settings = settings or EvaluationSettings()
    samples = _check_samples(samples)
    if "reference" not in train.columns:
        train = standardize_report_table(train, "training table")
    systems = {MODEL: samples["generated"].tolist()}
    systems |= baseline_reports(train, samples["impression"].tolist())
    scores = score_systems(samples["reference"].tolist(), systems, settings)
    result = EvaluationResult(
        metrics=scores[MODEL].metrics,
        baselines={name: s.metrics for name, s in scores.items() if name != MODEL},
        per_finding=scores[MODEL].per_finding,
        per_finding_f1=pd.DataFrame(
            {name: s.per_finding.set_index("observation")["f1"] for name, s in scores.items()}
        ),
        samples=pd.concat([samples, scores[MODEL].per_sample], axis=1),
        settings=settings,
    )
    if output_dir is not None:
        # Imported here: plotting pulls in matplotlib, which scoring alone does not need.
        from radreport.metrics.report_html import write_evaluation_report

        result.html_path, result.plot_paths = write_evaluation_report(result, Path(output_dir))
    return result
