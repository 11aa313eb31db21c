"""Wall time of `run.py` commands with and without the start-up collector settings
(`radreport/start_up_gc.py`), in the same run, alternating.

"with": `python run.py CMD`, whose `main` pauses full collections until start-up is over and
freezes the heap at exit. "without": the same click command called in a process that does
not (`python -c "import run; run.cli()"`), as every command ran before. Each trial is a
fresh process; the two alternate, so a busy moment of the shared machine hits both.

Needs the demo model in the ZenML store (`make demo`) for `generate` and `evaluate`; `data`
is then a cache hit of the demo data pipeline. Run:
nice .venv/bin/python benchmarks/cli_start_up_gc.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IU = REPO.parent / "shared" / "data" / "iu_xray"
WITHOUT = "import sys; sys.argv = ['run.py', *sys.argv[1:]]; import run; run.cli()"


def commands(scratch: Path) -> dict[str, list[str]]:
    rows = (IU / "val.csv").read_text().splitlines(keepends=True)[:4]  # header + 3 rows
    (scratch / "val3.csv").write_text("".join(rows))
    return {
        "setup": ["setup"],
        "baselines (IU train vs val)": [
            "baselines", "--train", str(IU / "train.csv"), "--reports", str(IU / "val.csv"),
        ],
        "data --config configs/demo.yaml (cache hit)": ["data", "--config", "configs/demo.yaml"],
        "generate (demo model)": ["generate", "--impression", "Small right pleural effusion."],
        "evaluate (3 IU rows, demo model)": [
            "evaluate", "--reports", str(scratch / "val3.csv"), "--out", str(scratch / "out"),
        ],
    }  # fmt: skip


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    python = sys.executable
    print("| command | without (s) | with (s) | with / without |")
    print("| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as scratch:
        for name, command in commands(Path(scratch)).items():
            without, with_ = [], []
            for _ in range(args.rounds):
                without.append(timed([python, "-c", WITHOUT, *command]))
                with_.append(timed([python, "run.py", *command]))
            a, b = statistics.median(without), statistics.median(with_)
            print(f"| {name} | {a:.2f} | {b:.2f} | {b / a:.2f} |", flush=True)


if __name__ == "__main__":
    main()
