"""The baselines on IU X-Ray train -> val, against the reference table of evaluation.md.

Prints BLEU-1, BLEU-4 and ROUGE-L of each baseline with its bootstrap 95 % interval, the
reference value and the difference (the acceptance criterion is |difference| <= 0.005),
then the other metrics.

    .venv/bin/python benchmarks/iu_baselines.py [--data ../shared/data/iu_xray]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from radreport.metrics import baseline_table_text, score_baselines_from_csv
from radreport.metrics.baselines import BASELINE_LABELS

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "iu_xray"
# (BLEU-1, BLEU-4, ROUGE-L) from ../shared/knowledge/evaluation.md
REFERENCE_TABLE = {
    "most_frequent_report": (0.189, 0.061, 0.294),
    "copy_impression": (0.027, 0.010, 0.164),
    "tfidf_nearest_impression": (0.507, 0.265, 0.453),
    "exact_impression_lookup": (0.506, 0.288, 0.476),
}
COMPARED = ("bleu1", "bleu4", "rouge_l")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    start = time.perf_counter()
    table = score_baselines_from_csv(args.data / "train.csv", args.data / "val.csv")
    elapsed = time.perf_counter() - start
    print(f"{'baseline':<52} {'metric':<8} {'measured [95% CI]':<25} reference  difference")
    worst = 0.0
    for name, reference in REFERENCE_TABLE.items():
        row = table.loc[name]
        for metric, expected in zip(COMPARED, reference, strict=True):
            measured, low, high = row[[metric, f"{metric}_ci_low", f"{metric}_ci_high"]]
            interval = f"{measured:.4f} [{low:.3f}, {high:.3f}]"
            worst = max(worst, abs(measured - expected))
            print(
                f"{BASELINE_LABELS[name]:<52} {metric:<8} {interval:<25} {expected:<10.3f} "
                f"{measured - expected:+.4f}"
            )
    print(f"largest |difference| {worst:.4f} (tolerance 0.005)")
    print()
    print(baseline_table_text(table))
    print(f"scored in {elapsed:.1f} s (1,000 bootstrap resamples)")


if __name__ == "__main__":
    main()
