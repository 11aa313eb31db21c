"""Retrieval for a training set's prompts at hospital-archive sizes: this code against the
forty-fourth session's.

Every training run retrieves examples for every one of its studies (`format_alpaca`: the
training set queries itself), so that cost grows with the square of the data. Until the
forty-fifth session each query was ranked by a full sort of every training pair; now
similarities are computed once per distinct impression (and per distinct query text), and
each query's pairs are ranked among those of its 32 most similar distinct impressions, with
the full sort as the fallback (radreport/llm/retrieval.py). The examples must be the same:
this script checks them equal on every query it times with both.

Data: IU X-Ray train itself (every query, both codes), then larger sets drawn from IU X-Ray
train with replacement, in two kinds:
- "repeats": a third of the impressions made distinct by an appended number, the rest
  IU's own texts (an archive in which common impressions recur, as they do in IU X-Ray:
  911 distinct impressions for 2,069 studies);
- "distinct": every impression made distinct (the case the deduplication cannot help).
The new code is also timed on one core, to tell the ranking and the deduplication from the
threads. The old code is timed on the first `--sample` queries and its time per query scaled to all
queries (it is quadratic; a full run at 100,000 takes about 40 minutes); the new code runs
every query.

    .venv/bin/python benchmarks/retrieval_scale.py [--sizes 20000 50000] [--sample 1024]

The old code is read from git (`git show BASELINE:radreport/llm/retrieval.py`), so run it in
a clone with history. Writes benchmarks/results/retrieval_scale.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pandas as pd

from radreport.llm import retrieval
from radreport.llm.retrieval import ImpressionIndex

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
IU_TRAIN = ROOT.parent / "shared" / "data" / "iu_xray" / "train.csv"
BASELINE = "12d7805"  # the last commit that ranked every pair for every query
K = 3  # configs/iu_xray.yaml's retrieval_k


def baseline_index_class(commit: str):
    """ImpressionIndex as it was at `commit`, imported from git under another name."""
    try:
        source = subprocess.run(
            ["git", "show", f"{commit}:radreport/llm/retrieval.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit(f"cannot read the baseline {commit} from git ({exc}): run in a full clone")
    path = Path(tempfile.mkdtemp()) / "retrieval_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("retrieval_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ImpressionIndex


def drawn_training_set(train: pd.DataFrame, size: int, kind: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(train), size)
    impressions = train["impression"].to_numpy()[rows].astype(object)
    reports = train["findings"].to_numpy()[rows].astype(object)
    changed = rng.random(size) < (1 / 3 if kind == "repeats" else 1.0)
    numbers = rng.permutation(10 * size)[: changed.sum()]
    impressions[changed] = [
        f"{text} {n}" for text, n in zip(impressions[changed], numbers, strict=True)
    ]
    study_ids = [f"s{i}" for i in range(size)]
    return list(impressions), list(reports), study_ids


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def measure(old_class, impressions, reports, study_ids, sample: int | None) -> dict:
    """Both codes' build and self-query times; the examples checked equal where both ran."""
    new_index, new_build = timed(lambda: ImpressionIndex(impressions, reports, study_ids))
    old_index, old_build = timed(lambda: old_class(impressions, reports, study_ids))
    n = len(impressions)
    asked = n if sample is None else min(sample, n)
    old_examples, old_query = timed(
        lambda: old_index.nearest(impressions[:asked], K, study_ids=study_ids[:asked])
    )
    new_examples, new_query = timed(lambda: new_index.nearest(impressions, K, study_ids=study_ids))
    # The same on one core: what the ranking and the deduplication give without the threads.
    with patch.object(retrieval, "usable_cores", lambda: 1):
        one_core, new_query_1 = timed(
            lambda: new_index.nearest(impressions, K, study_ids=study_ids)
        )
    assert one_core == new_examples
    if new_examples[:asked] != old_examples:
        differing = sum(a != b for a, b in zip(new_examples[:asked], old_examples, strict=True))
        sys.exit(f"the examples differ from the baseline's for {differing} of {asked} queries")
    old_all_queries = old_query * n / asked
    return {
        "studies": n,
        "distinct_impressions": int(new_index.text_matrix.shape[0]),
        "queries_checked_equal": asked,
        "old_build_s": round(old_build, 2),
        "new_build_s": round(new_build, 2),
        "old_query_s": round(old_query, 2),
        "old_query_all_s": round(old_all_queries, 1),
        "old_query_all_scaled": asked < n,
        "new_query_all_s": round(new_query, 2),
        "new_query_all_1_core_s": round(new_query_1, 2),
        "speedup_queries": round(old_all_queries / new_query, 1),
        "speedup_queries_1_core": round(old_all_queries / new_query_1, 1),
        "speedup_build_and_queries": round(
            (old_build + old_all_queries) / (new_build + new_query), 1
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 50_000])
    parser.add_argument("--sample", type=int, default=1024)
    parser.add_argument("--kinds", nargs="+", default=["repeats", "distinct"])
    args = parser.parse_args()
    old_class = baseline_index_class(BASELINE)
    train = pd.read_csv(IU_TRAIN, dtype=str, keep_default_na=False)
    rows = []
    iu = measure(
        old_class,
        train["impression"].tolist(),
        train["findings"].tolist(),
        train["study_id"].tolist(),
        sample=None,
    )
    rows.append({"data": "IU X-Ray train", **iu})
    for kind in args.kinds:
        for size in args.sizes:
            data = drawn_training_set(train, size, kind)
            rows.append({"data": kind, **measure(old_class, *data, sample=args.sample)})
            print(rows[-1], flush=True)
    header = (
        "| data | studies | distinct impressions | old: build + all queries (s) | "
        "new: build + all queries (s) | new, queries on 1 core (s) | queries old / new "
        "(1 core) | all old / new |"
    )
    print(header)
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        scaled = " (scaled)" if row["old_query_all_scaled"] else ""
        print(
            f"| {row['data']} | {row['studies']:,} | {row['distinct_impressions']:,} | "
            f"{row['old_build_s']} + {row['old_query_all_s']}{scaled} | "
            f"{row['new_build_s']} + {row['new_query_all_s']} | {row['new_query_all_1_core_s']} | "
            f"x{row['speedup_queries']} (x{row['speedup_queries_1_core']}) | "
            f"x{row['speedup_build_and_queries']} |"
        )
    RESULTS.mkdir(exist_ok=True)
    record = {
        "baseline_commit": BASELINE,
        "k": K,
        "machine": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": rows,
    }
    (RESULTS / "retrieval_scale.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
