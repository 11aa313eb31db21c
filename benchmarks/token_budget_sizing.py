"""What `auto` token budgets cost and come to on IU X-Ray train: the time `format_alpaca`
spends sizing them (radreport.llm.prompt_table.resolve_token_budgets) beside the split
statistics it computes anyway, and the numbers they are sized to.

Every IU X-Ray train pair with an impression and findings is one train row, prompts built
with the IU config's retrieval (3 examples); the bundled SmolLM2 tokenizer. Each timing is
repeated (`--rounds`); the first round also loads the tokenizer libraries. Run:
nice .venv/bin/python benchmarks/token_budget_sizing.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from radreport.config import load_run_config
from radreport.llm.prompt_table import (
    build_prompt_table,
    resolve_token_budgets,
    token_stats_by_split,
)

REPO = Path(__file__).resolve().parents[1]
IU = REPO.parent / "shared" / "data" / "iu_xray"


def iu_train_studies() -> pd.DataFrame:
    rows = pd.read_csv(IU / "train.csv", dtype=str, keep_default_na=False)
    rows = rows[(rows["impression"].str.strip() != "") & (rows["findings"].str.strip() != "")]
    return pd.DataFrame(
        {
            "study_id": rows["study_id"],
            "split": "train",
            "impression": rows["impression"],
            "report": rows["findings"],
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    config = load_run_config(REPO / "configs" / "iu_xray.yaml")
    table = build_prompt_table(
        iu_train_studies(), config.llm.retrieval_k, config.llm.retrieval_match
    )
    auto = config.llm.model_copy(update={"max_seq_length": "auto", "max_new_tokens": "auto"})
    print(f"{len(table)} train rows, retrieval_k {config.llm.retrieval_k}")
    for round_ in range(1, args.rounds + 1):
        start = time.perf_counter()
        sized = resolve_token_budgets(table, auto)
        sizing = time.perf_counter() - start
        start = time.perf_counter()
        token_stats_by_split(table, sized)
        stats = time.perf_counter() - start
        print(
            f"round {round_}: sizing {sizing:.2f} s, split statistics {stats:.2f} s; "
            f"max_seq_length {sized.max_seq_length}, max_new_tokens {sized.max_new_tokens}"
        )


if __name__ == "__main__":
    main()
