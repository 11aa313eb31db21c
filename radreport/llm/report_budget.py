"""Whether generation's token budget (max_new_tokens) has room for the reports the model
learns to write.

A report that needs more tokens than the budget is cut where the budget ends, mid-sentence,
and nothing in the report says so. Real CT findings run to hundreds of words, so a budget
copied from a config for short chest X-ray reports (IU X-Ray: 128 tokens) would cut most of
them. The training reports' lengths say so before any is written.
"""

from __future__ import annotations

# A budget is said to be short when more than this share of the training reports needs more.
# The few longest reports of a set are outliers, not what a budget is set for: the IU X-Ray
# config's 128 tokens leave out 9 of 1,868 (0.5 %, the longest 194 tokens).
TOLERATED_SHARE = 0.01


def report_budget(train_stats: dict, max_new_tokens: int) -> dict:
    """The budget against the train split's reports (token_stats_by_split's "train" entry):
    how many of them need more, and the longest."""
    return {
        "max_new_tokens": max_new_tokens,
        "train_reports": int(train_stats["examples"] + train_stats["dropped"]),
        "longer_train_reports": int(train_stats["reports_over_max_new_tokens"]),
        "longest_train_report_tokens": int(train_stats["report_tokens_max"]),
    }


def budget_shortfall(budget: dict) -> str | None:
    """One line for the user when more than TOLERATED_SHARE of the training reports need more
    than the budget."""
    longer, reports = budget["longer_train_reports"], budget["train_reports"]
    if longer <= TOLERATED_SHARE * reports:
        return None
    longest = budget["longest_train_report_tokens"]
    return (
        f"{longer} of {reports} train reports ({longer / reports:.0%}) need more than "
        f"max_new_tokens {budget['max_new_tokens']} (the longest: {longest} tokens with its "
        "end); reports that long are cut there: raise llm.max_new_tokens"
    )
