"""What `auto` token budgets cost and come to on IU X-Ray train: the time `format_alpaca`
spends sizing them (radreport.llm.prompt_table.resolve_token_budgets) beside the split
statistics it computes anyway, and the numbers they are sized to; and, since the
forty-fifth session, the step's tokenizing as it was before in the same run (each text in its
own tokenizer call, the train split tokenized once for the sizing and again for the
statistics), checked to give the same budgets and statistics.

Every IU X-Ray train pair with an impression and findings is one train row, prompts built
with the IU config's retrieval (3 examples); the bundled SmolLM2 tokenizer. Each timing is
repeated (`--rounds`); the first round also loads the tokenizer libraries. `--studies N`
draws N train rows from IU X-Ray train with replacement instead, a third of their
impressions made distinct (benchmarks/retrieval_scale.py's "repeats"). Run:
nice .venv/bin/python benchmarks/token_budget_sizing.py [--rounds 3] [--studies 50000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from unittest.mock import patch

import pandas as pd
from retrieval_scale import drawn_training_set

from radreport.config import load_run_config
from radreport.data import alpaca
from radreport.llm.prompt_table import (
    build_prompt_table,
    resolve_token_budgets,
    token_stats_by_split,
    tokenize_splits,
)

REPO = Path(__file__).resolve().parents[1]
IU = REPO.parent / "shared" / "data" / "iu_xray"


def iu_train_studies(studies: int | None = None) -> pd.DataFrame:
    rows = pd.read_csv(IU / "train.csv", dtype=str, keep_default_na=False)
    rows = rows[(rows["impression"].str.strip() != "") & (rows["findings"].str.strip() != "")]
    if studies is not None:
        impressions, reports, ids = drawn_training_set(rows, studies, "repeats")
        rows = pd.DataFrame({"study_id": ids, "impression": impressions, "findings": reports})
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
    parser.add_argument("--studies", type=int, default=None)
    args = parser.parse_args()
    config = load_run_config(REPO / "configs" / "iu_xray.yaml")
    table = build_prompt_table(
        iu_train_studies(args.studies), config.llm.retrieval_k, config.llm.retrieval_match
    )
    auto = config.llm.model_copy(update={"max_seq_length": "auto", "max_new_tokens": "auto"})
    print(f"{len(table)} train rows, retrieval_k {config.llm.retrieval_k}")
    for round_ in range(1, args.rounds + 1):
        # Before: one tokenizer call per text, and the train split tokenized twice.
        start = time.perf_counter()
        with patch.object(alpaca, "TOKENIZE_BATCH", 1):
            old_sized = resolve_token_budgets(table, auto)
            old_stats = token_stats_by_split(table, old_sized)
        before = time.perf_counter() - start
        start = time.perf_counter()
        tokens = tokenize_splits(table, auto)
        tokenizing = time.perf_counter() - start
        start = time.perf_counter()
        sized = resolve_token_budgets(table, auto, tokens)
        sizing = time.perf_counter() - start
        start = time.perf_counter()
        stats = token_stats_by_split(table, sized, tokens)
        statistics = time.perf_counter() - start
        assert (sized, stats) == (old_sized, old_stats), "not the budgets and statistics of before"
        now = tokenizing + sizing + statistics
        print(
            f"round {round_}: before {before:.2f} s; now {now:.2f} s (x{before / now:.1f}: "
            f"tokenizing {tokenizing:.2f} s, sizing {sizing:.2f} s, split statistics "
            f"{statistics:.2f} s); max_seq_length {sized.max_seq_length}, max_new_tokens "
            f"{sized.max_new_tokens}"
        )


if __name__ == "__main__":
    main()
