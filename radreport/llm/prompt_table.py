"""The Alpaca training table: one row per study with its prompt and, for
retrieval-augmented prompting, the similar training studies shown in it."""

from __future__ import annotations

import sys

import pandas as pd

from radreport.data.alpaca import (
    TokenizedParts,
    fit_alpaca_dataset,
    format_prompt,
    tokenize_rows,
)
from radreport.data.splits import SPLITS
from radreport.llm.base_model import resolve_base_model
from radreport.llm.report_shape import ReportShape
from radreport.llm.retrieval import ImpressionIndex
from radreport.llm.settings import LLMSettings, RetrievalMatch
from radreport.llm.token_budgets import sized_budget

PROMPT_COLUMNS = ("study_id", "split", "impression", "report", "examples", "prompt")
TOKEN_BUDGETS = ("max_seq_length", "max_new_tokens")


def build_prompt_table(
    studies: pd.DataFrame, retrieval_k: int, retrieval_match: RetrievalMatch = "characters"
) -> pd.DataFrame:
    """Examples come from the train split only, never from the study itself, so validation
    and test prompts see nothing a deployed model would not have."""
    table = studies[["study_id", "split", "impression", "report"]].reset_index(drop=True)
    train = table[table["split"] == "train"]
    if retrieval_k > 0 and not train.empty:
        index = ImpressionIndex.from_table(train, match=retrieval_match)
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


def train_report_shape(table: pd.DataFrame) -> ReportShape:
    """The shape of the reports the model was trained on: those of the train split."""
    return ReportShape.learn(table.loc[table["split"] == "train", "report"])


def split_rows(table: pd.DataFrame, split: str) -> list[dict]:
    """Rows of one split as dicts with impression, report and (impression, report) examples."""
    rows = table[table["split"] == split].to_dict("records")
    for row in rows:
        row["examples"] = [tuple(pair) for pair in row["examples"]]
    return rows


def _base_tokenizer(settings: LLMSettings):
    from transformers import AutoTokenizer

    from radreport.llm.tokenizer_checks import ready_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(settings.base_model))
    return ready_tokenizer(tokenizer, settings.base_model)


def tokenize_splits(table: pd.DataFrame, settings: LLMSettings) -> dict[str, list[TokenizedParts]]:
    """Each split's prompt and report token ids with the base model's tokenizer: tokenized
    once, for both the token budgets and the statistics."""
    tokenizer = _base_tokenizer(settings)
    return {split: tokenize_rows(split_rows(table, split), tokenizer) for split in SPLITS}


def resolve_token_budgets(
    table: pd.DataFrame,
    settings: LLMSettings,
    tokens: dict[str, list[TokenizedParts]] | None = None,
) -> LLMSettings:
    """`settings` with max_seq_length and max_new_tokens set to "auto" sized by the table's
    train split (radreport.llm.token_budgets.sized_budget); unchanged where both are numbers.
    `tokens`: the table's `tokenize_splits`, when the caller has them."""
    if all(getattr(settings, name) != "auto" for name in TOKEN_BUDGETS):
        return settings
    from transformers import AutoConfig

    path = resolve_base_model(settings.base_model)
    context = getattr(AutoConfig.from_pretrained(path), "max_position_embeddings", None)
    if tokens is None:
        train_tokens = tokenize_rows(split_rows(table, "train"), _base_tokenizer(settings))
    else:
        train_tokens = tokens["train"]
    # Nothing cut: the lengths are measured before any limit applies.
    train = fit_alpaca_dataset(train_tokens, sys.maxsize)
    longest = {
        "max_seq_length": max(train.source_lengths, default=0),
        "max_new_tokens": max(train.report_lengths, default=0),
    }
    return settings.model_copy(
        update={
            name: sized_budget(name, getattr(settings, name), longest[name], context)
            for name in TOKEN_BUDGETS
        }
    )


def token_stats_by_split(
    table: pd.DataFrame,
    settings: LLMSettings,
    tokens: dict[str, list[TokenizedParts]] | None = None,
) -> dict[str, dict]:
    """Per split: examples kept, truncated, dropped, token-length p50/p95/max of the whole
    examples and of the reports, and how many reports generation's budget (max_new_tokens)
    is too short for; with the base model's tokenizer and the training's length limit.
    `tokens`: the table's `tokenize_splits`, when the caller has them."""
    settings.require_token_budgets(*TOKEN_BUDGETS)
    if tokens is None:
        tokens = tokenize_splits(table, settings)
    stats = {}
    for split in SPLITS:
        data = fit_alpaca_dataset(tokens[split], settings.max_seq_length, settings.overlength)
        stats[split] = {
            **data.stats(),
            "reports_over_max_new_tokens": data.reports_longer_than(settings.max_new_tokens),
        }
    return stats
