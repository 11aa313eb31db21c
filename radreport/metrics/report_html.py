"""A self-contained HTML report of an evaluation, with its plots and sample table beside it.

Files written to the output directory:
    evaluation.html        tables and plots (PNG embedded as base64, so the file stands alone)
    metric_comparison.png  metrics with bootstrap intervals, model vs baselines
    per_finding_f1.png     F1 per CheXpert observation, model vs baselines
    report_lengths.png     each generated report's length against its reference's
    samples.csv            the per-report table
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from radreport.metrics.baselines import BASELINE_LABELS
from radreport.metrics.plots import (
    COMPARED_METRICS,
    plot_metric_comparison,
    plot_per_finding_f1,
    plot_report_lengths,
)
from radreport.metrics.report_files import PLOT_FILES, REPORT_FILE, SAMPLES_FILE

if TYPE_CHECKING:
    from radreport.metrics.evaluate import EvaluationResult

EXAMPLE_COLUMNS = [
    "study_id",
    "impression",
    "reference",
    "generated",
    "out_of_room",
    "sentence_bleu",
    "finding_f1",
    "missed_findings",
    "false_findings",
]
_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1200px; }
table { border-collapse: collapse; font-size: 0.9em; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }
img { max-width: 100%; }
.note { color: #555; }
"""


def _with_interval(metrics: dict[str, float], key: str) -> str:
    point = metrics.get(key, float("nan"))
    low, high = metrics.get(f"{key}_ci_low"), metrics.get(f"{key}_ci_high")
    if low is None or high is None:
        return f"{point:.3f}"
    return f"{point:.3f} [{low:.3f}, {high:.3f}]"


def _comparison_html(result: EvaluationResult) -> str:
    systems = {"model": result.metrics, **result.baselines}
    rows = {
        BASELINE_LABELS.get(name, name): {
            label: _with_interval(metrics, key) for key, label in COMPARED_METRICS.items()
        }
        for name, metrics in systems.items()
    }
    return pd.DataFrame.from_dict(rows, orient="index").to_html()


def _examples_html(samples: pd.DataFrame, n_examples: int) -> str:
    columns = [column for column in EXAMPLE_COLUMNS if column in samples.columns]
    ranked = samples.sort_values("sentence_bleu", kind="stable")
    worst = ranked.head(n_examples)[columns]
    best = ranked.tail(n_examples).iloc[::-1][columns]
    return (
        f"<h3>Worst {len(worst)} by sentence BLEU</h3>{worst.to_html(index=False)}"
        f"<h3>Best {len(best)} by sentence BLEU</h3>{best.to_html(index=False)}"
    )


def _out_of_room_html(samples: pd.DataFrame) -> str:
    if "out_of_room" not in samples.columns:
        return ""
    cut = int(samples["out_of_room"].sum())
    return (
        f"<p>{cut} of {len(samples)} reports ran out of room: the token budget cut them "
        "before the model ended them (<code>out_of_room</code> in the examples and "
        f"{SAMPLES_FILE}).</p>"
    )


def _embedded_png(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{encoded}">'


def write_evaluation_report(result: EvaluationResult, output_dir: Path) -> tuple[Path, list[Path]]:
    """Write the report files; returns the HTML path and the PNG paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    plots = [
        plot_metric_comparison(result.comparison_table(), output_dir / PLOT_FILES[0]),
        plot_per_finding_f1(
            result.per_finding_f1,
            result.per_finding.set_index("observation")["reference_positive"],
            output_dir / PLOT_FILES[1],
        ),
        plot_report_lengths(
            result.samples, result.metrics["length_ratio"], output_dir / PLOT_FILES[2]
        ),
    ]
    result.samples.to_csv(output_dir / SAMPLES_FILE, index=False)
    settings = result.settings
    body = f"""
<h1>Evaluation of generated reports</h1>
<p>{len(result.samples)} reports; {settings.bootstrap_resamples} bootstrap resamples
(seed {settings.seed}), {settings.confidence_level:.0%} intervals; uncertain findings count as
{"present" if settings.uncertain_as else "absent"}.</p>
<p class="note">Finding F1 comes from a rule-based labeler of the 14 CheXpert observations,
an offline approximation of CheXbert F1. BLEU counts shared words only: read it beside the
finding metrics and the baselines.</p>
<h2>Model and baselines</h2>
{_comparison_html(result)}
{_embedded_png(plots[0])}
<h2>Findings (model)</h2>
{result.per_finding.to_html(index=False, float_format="{:.3f}".format, na_rep="-")}
{_embedded_png(plots[1])}
<h2>Report lengths (model)</h2>
<p>Length ratio (generated / reference, in words and punctuation marks, as BLEU counts them):
{_with_interval(result.metrics, "length_ratio")}.</p>
{_out_of_room_html(result.samples)}
{_embedded_png(plots[2])}
<h2>Examples</h2>
{_examples_html(result.samples, settings.n_examples)}
"""
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Evaluation</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )
    html_path = output_dir / REPORT_FILE
    html_path.write_text(page, encoding="utf-8")
    return html_path, plots
