"""Token budgets set to "auto": sized by the training table's train split, no longer than the
base model's context, and refused by the code that needs a number before they are sized."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError
from transformers import AutoTokenizer

from radreport.llm.finetune import finetune
from radreport.llm.generate import ReportGenerator
from radreport.llm.prompt_table import (
    build_prompt_table,
    resolve_token_budgets,
    token_stats_by_split,
    tokenize_splits,
)
from radreport.llm.settings import LLMSettings
from radreport.llm.token_budgets import budget_shortfalls, sized_budget, token_budgets

TINY_CONTEXT = 1024  # tests.llm.tiny_llama's max_position_embeddings


def studies(reports: dict[str, list[str]]) -> pd.DataFrame:
    rows = [
        {"study_id": f"{split}-{i}", "split": split, "impression": f"Finding {i}.", "report": r}
        for split, split_reports in reports.items()
        for i, r in enumerate(split_reports)
    ]
    return pd.DataFrame(rows)


def token_count(tokenizer, text: str, special: bool) -> int:
    return len(tokenizer(text, add_special_tokens=special)["input_ids"])


def test_a_number_is_kept_and_auto_is_the_longest_within_the_context():
    assert sized_budget("max_new_tokens", 96, longest=300, context=1024) == 96
    assert sized_budget("max_new_tokens", "auto", longest=300, context=1024) == 300
    assert sized_budget("max_seq_length", "auto", longest=5000, context=1024) == 1024
    assert sized_budget("max_seq_length", "auto", longest=5000, context=None) == 5000
    with pytest.raises(ValueError, match="llm.max_seq_length 'auto' .* no examples"):
        sized_budget("max_seq_length", "auto", longest=0, context=1024)


def test_auto_budgets_are_the_train_split_s_longest_example_and_report(tiny_llama_dir):
    long_train = "The lungs are clear. " * 12
    table = build_prompt_table(
        studies(
            {
                "train": ["No effusion.", long_train, "Heart normal."],
                # Longer than any train report: validation data does not size the budgets.
                "val": ["Mild cardiomegaly. " * 30],
                "test": ["Clear."],
            }
        ),
        retrieval_k=1,
    )
    settings = LLMSettings(
        base_model=str(tiny_llama_dir), max_seq_length="auto", max_new_tokens="auto"
    )
    sized = resolve_token_budgets(table, settings)

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    train = table[table["split"] == "train"]
    reports = [token_count(tokenizer, r.strip(), False) + 1 for r in train["report"]]  # + EOS
    examples = [
        token_count(tokenizer, p, True) + n for p, n in zip(train["prompt"], reports, strict=True)
    ]
    assert sized.max_new_tokens == max(reports) == reports[1]
    assert sized.max_seq_length == max(examples)
    # Sized to the data, the budgets hold all of it: nothing truncated, no shortfall said.
    stats = token_stats_by_split(table, sized)
    assert stats["train"]["truncated"] == stats["train"]["dropped"] == 0
    # The step tokenizes once for both: the same budgets and statistics.
    tokens = tokenize_splits(table, settings)
    assert resolve_token_budgets(table, settings, tokens) == sized
    assert token_stats_by_split(table, sized, tokens) == stats
    assert stats["train"]["reports_over_max_new_tokens"] == 0
    budgets = token_budgets(stats["train"], sized.max_seq_length, sized.max_new_tokens)
    assert budget_shortfalls(budgets) == []
    # Everything else is the config's.
    assert sized.model_dump(exclude={"max_seq_length", "max_new_tokens"}) == settings.model_dump(
        exclude={"max_seq_length", "max_new_tokens"}
    )


def test_numbers_stay_and_one_auto_budget_is_sized_alone(tiny_llama_dir):
    table = build_prompt_table(studies({"train": ["No effusion."], "val": ["Clear."]}), 0)
    fixed = LLMSettings(base_model=str(tiny_llama_dir), max_seq_length=64, max_new_tokens=8)
    assert resolve_token_budgets(table, fixed) is fixed
    one = resolve_token_budgets(table, fixed.model_copy(update={"max_new_tokens": "auto"}))
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    assert (one.max_seq_length, one.max_new_tokens) == (
        64,
        token_count(tokenizer, "No effusion.", False) + 1,
    )


def test_a_train_report_past_the_model_s_context_sizes_the_budgets_to_the_context(
    tiny_llama_dir,
):
    table = build_prompt_table(
        studies({"train": ["Clear. " * 700, "No effusion."], "val": ["Clear."]}), 0
    )
    settings = LLMSettings(
        base_model=str(tiny_llama_dir), max_seq_length="auto", max_new_tokens="auto"
    )
    sized = resolve_token_budgets(table, settings)
    assert sized.max_seq_length == sized.max_new_tokens == TINY_CONTEXT
    # The one example that does not fit is still said.
    stats = token_stats_by_split(table, sized)
    assert stats["train"]["truncated"] == 1
    budgets = token_budgets(stats["train"], sized.max_seq_length, sized.max_new_tokens)
    assert [line.split(" (")[0] for line in budget_shortfalls(budgets)] == [
        "1 of 2 train reports",
        "1 of 2 train examples",
    ]


def test_auto_is_a_budget_and_other_words_or_zero_are_refused():
    settings = LLMSettings(max_seq_length="auto", max_new_tokens="auto")
    assert (settings.max_seq_length, settings.max_new_tokens) == ("auto", "auto")
    for value in ("longest", 0, -5):
        with pytest.raises(ValidationError, match="max_new_tokens"):
            LLMSettings(max_new_tokens=value)


def test_training_or_decoding_with_an_unsized_budget_is_one_clear_error(tiny_llama_dir, tmp_path):
    unsized = LLMSettings(base_model=str(tiny_llama_dir), max_seq_length="auto")
    row = {"impression": "Clear.", "report": "No effusion.", "examples": []}
    with pytest.raises(ValueError, match="llm.max_seq_length is 'auto'.*resolve_token_budgets"):
        finetune([row], [row], unsized, tmp_path)
    assert not any(tmp_path.iterdir())  # refused before anything was written
    with pytest.raises(ValueError, match="llm.max_new_tokens is 'auto'"):
        ReportGenerator.from_settings(LLMSettings(max_new_tokens="auto"), tiny_llama_dir)
    with pytest.raises(ValueError, match="llm.max_seq_length is 'auto'"):
        token_stats_by_split(build_prompt_table(studies({"train": ["x"]}), 0), unsized)
