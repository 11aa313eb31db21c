"""Whether the token budgets of a run hold its training data: max_seq_length the training
examples (prompt and report), max_new_tokens the reports the model learns to write. Either
can be "auto" instead, sized by `sized_budget` to what the training data needs.

A number that is short fails quietly. An example longer than max_seq_length loses the end
of its report and its end-of-sequence token ("truncate") or is left out ("drop"), so the
model learns less of where reports end; a report that needs more than max_new_tokens is cut
mid-sentence. Real CT findings run to hundreds of tokens, and a budget copied from a config
for short chest X-ray reports (IU X-Ray's were 736 and 128) would cut most of them. The
training data's lengths say so before any report is written.
"""

from __future__ import annotations

# A budget is said to be short when more than this share of the training data needs more.
# The few longest reports of a set are outliers, not what a budget is set for: the IU X-Ray
# config's 128 new tokens, before it sized them by the data, left out 9 of 1,868 reports
# (0.5 %, the longest 194 tokens).
TOLERATED_SHARE = 0.01


def sized_budget(name: str, requested: int | str, longest: int, context: int | None) -> int:
    """`requested` where it is a number. For "auto", `longest`: the train split's longest
    example (max_seq_length) or report (max_new_tokens) in tokens, so no training example is
    cut and no report the model was taught is cut either; no more than the base model's
    `context` (the positions it was trained for), past which training and decoding stop
    anyway. The longest, not a percentile: a budget costs only the rows that use it, since
    batches are padded to their own longest row and decoding stops at the report's end."""
    if requested != "auto":
        return int(requested)
    if longest <= 0:
        raise ValueError(f"llm.{name} 'auto' is sized by the train split, which has no examples")
    return min(longest, context) if context else longest


def token_budgets(train_stats: dict, max_seq_length: int, max_new_tokens: int) -> dict:
    """The budgets against the train split (token_stats_by_split's "train" entry): how many
    examples and reports need more, and the longest of each (end-of-sequence token included)."""
    return {
        "max_seq_length": max_seq_length,
        "train_examples": int(train_stats["examples"] + train_stats["dropped"]),
        "truncated_train_examples": int(train_stats["truncated"]),
        "dropped_train_examples": int(train_stats["dropped"]),
        "longest_train_example_tokens": int(train_stats["tokens_max"]),
        "max_new_tokens": max_new_tokens,
        "longer_train_reports": int(train_stats["reports_over_max_new_tokens"]),
        "longest_train_report_tokens": int(train_stats["report_tokens_max"]),
    }


# What "auto" sizes each budget to, and the record's key for that length.
_SIZED_TO = {
    "max_seq_length": ("the longest train example", "longest_train_example_tokens"),
    "max_new_tokens": ("the longest train report", "longest_train_report_tokens"),
}


def auto_budget_summary(config_llm: dict, budgets: dict) -> str:
    """The budgets that the config (its `llm:` section as written) left to "auto", with the
    numbers the run sized them to and why, as in "max_new_tokens 194 (the longest train
    report)"; empty where the config gave numbers."""
    said = []
    for name, (longest, key) in _SIZED_TO.items():
        if config_llm.get(name) == "auto":
            # Sized below the data's longest only where the model's context stopped it.
            why = "the base model's context" if budgets[key] > budgets[name] else longest
            said.append(f"{name} {budgets[name]} ({why})")
    return ", ".join(said)


def budget_shortfalls(budgets: dict) -> list[str]:
    """One line per budget that more than TOLERATED_SHARE of the training data needs more of."""
    total = budgets["train_examples"]
    lines = []
    if _short(over := budgets["longer_train_reports"], total):
        lines.append(
            f"{over} of {total} train reports ({over / total:.0%}) need more than "
            f"max_new_tokens {budgets['max_new_tokens']} (the longest: "
            f"{budgets['longest_train_report_tokens']} tokens with its end); reports that long "
            "are cut there: raise llm.max_new_tokens or set it to auto"
        )
    truncated, dropped = budgets["truncated_train_examples"], budgets["dropped_train_examples"]
    if _short(over := truncated + dropped, total):
        fate = ", ".join(
            f"{count} {what}"
            for count, what in ((truncated, "truncated"), (dropped, "dropped"))
            if count
        )
        lines.append(
            f"{over} of {total} train examples ({over / total:.0%}) are longer than "
            f"max_seq_length {budgets['max_seq_length']} (the longest: "
            f"{budgets['longest_train_example_tokens']} tokens; {fate}): the ends of their "
            "reports are not learned; raise llm.max_seq_length (or set it to auto) or lower "
            "llm.retrieval_k"
        )
    return lines


def _short(count: int, total: int) -> bool:
    return count > TOLERATED_SHARE * total
