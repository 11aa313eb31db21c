"""The Alpaca training table: one row per study with its prompt and, for
retrieval-augmented prompting, the similar training studies shown in it."""

from __future__ import annotations

import pandas as pd

from radreport.data.alpaca import format_prompt
from radreport.llm.retrieval import ImpressionIndex

PROMPT_COLUMNS = ("study_id", "split", "impression", "report", "examples", "prompt")


def build_prompt_table(studies: pd.DataFrame, retrieval_k: int) -> pd.DataFrame:
    """Examples come from the train split only, never from the study itself, so validation
    and test prompts see nothing a deployed model would not have."""
    table = studies[["study_id", "split", "impression", "report"]].reset_index(drop=True)
    train = table[table["split"] == "train"]
    if retrieval_k > 0 and not train.empty:
        index = ImpressionIndex.from_table(train)
        examples = index.nearest(
            table["impression"].tolist(), retrieval_k, study_ids=table["study_id"].tolist()
        )
    else:
        examples = [[] for _ in range(len(table))]
    table["examples"] = [[list(pair) for pair in row] for row in examples]
    table["prompt"] = [
        format_prompt(impression, [tuple(pair) for pair in row])
        for impression, row in zip(table["impression"], table["examples"], strict=True)
    ]
    return table[list(PROMPT_COLUMNS)]


def split_rows(table: pd.DataFrame, split: str) -> list[dict]:
    """Rows of one split as dicts with impression, report and (impression, report) examples."""
    rows = table[table["split"] == split].to_dict("records")
    for row in rows:
        row["examples"] = [tuple(pair) for pair in row["examples"]]
    return rows
