"""Alpaca instruction format for impression -> detailed report, with a response-only loss mask.

The prompt (introduction, instruction = impression, the "### Response:" header) and the
response (the detailed report) are tokenized separately and concatenated, so the boundary
between masked and trained tokens is exact by construction: no marker search on token ids,
which is how "All labels in your dataset are -100" happens when a template and a collator
disagree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

IGNORE_INDEX = -100

INTRODUCTION = (
    "Below is an instruction that describes a task. The instruction holds a radiologist's "
    "impression of an imaging study. Write the detailed radiology report (the findings "
    "section) that is consistent with this impression."
)
INSTRUCTION_HEADER = "### Instruction:"
RESPONSE_HEADER = "### Response:"

OverlengthPolicy = Literal["truncate", "drop"]

# A line that opens a section of the template ("### Instruction:", "### Response:", ...).
_SECTION_HEADER = re.compile(r"^###[ \t]", re.MULTILINE)
_SECTION_MARK = re.compile(r"^###[ \t]+", re.MULTILINE)


def template_text(text: str) -> str:
    """`text` as the template holds it: stripped, and its lines that would open a template
    section ("### Response:" pasted into an impression, a Markdown heading "### FINDINGS" in
    a report) without their "### " mark. Left in, an impression's mark opened a second
    response in its prompt (the model answered the text after it), and a report's cut every
    report trained on it at that line (`response_text`)."""
    return _SECTION_MARK.sub("", text).strip()


def _instruction(impression: str, examples: Sequence[tuple[str, str]]) -> str:
    if not examples:
        return template_text(impression)
    shown = "\n\n".join(
        f"Impression: {template_text(example_impression)}\nReport: {template_text(example_report)}"
        for example_impression, example_report in examples
    )
    return (
        f"Reports of similar previous studies:\n\n{shown}\n\n"
        f"Impression of this study: {template_text(impression)}"
    )


def format_prompt(impression: str, examples: Sequence[tuple[str, str]] = ()) -> str:
    """Everything the model is given; the detailed report follows it directly.

    `examples` are (impression, report) pairs of similar studies placed in the instruction
    for retrieval-augmented prompting.
    """
    return (
        f"{INTRODUCTION}\n\n{INSTRUCTION_HEADER}\n{_instruction(impression, examples)}\n\n"
        f"{RESPONSE_HEADER}\n"
    )


def response_text(continuation: str) -> str:
    """The report in a model's continuation of `format_prompt`: the text before any line that
    opens another template section. A model that has not learned where a report ends (one
    trained for a few steps at a low rate) goes on with a new "### Response:" instead of stopping;
    what follows is never part of this report.
    """
    header = _SECTION_HEADER.search(continuation)
    return (continuation if header is None else continuation[: header.start()]).strip()


def opens_section(text: str) -> bool:
    """Whether a line of `text` opens a template section (see `response_text`)."""
    return _SECTION_HEADER.search(text) is not None


def format_example(impression: str, report: str, examples: Sequence[tuple[str, str]] = ()) -> str:
    """The full training text: prompt followed by the report."""
    return format_prompt(impression, examples) + template_text(report)


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    truncated: bool


# Texts are tokenized this many at a time: the same ids as one call per text, in about two
# thirds of the time (BENCHMARKS.md, forty-fifth session).
TOKENIZE_BATCH = 1024

# A row's prompt token ids and its report's (with the end-of-sequence token).
TokenizedParts = tuple[list[int], list[int]]


def encode_texts(tokenizer, texts: Sequence[str], **options):
    """`tokenizer(texts, **options)` with the text read as typed: a tokenizer's control
    tokens written in it ("<|im_end|>", "<|endoftext|>") are their characters, never the
    tokens. Read as tokens, SmolLM2's "<|im_end|>" in a report was its end-of-sequence
    token, trained mid-report as a stop, and "<|endoftext|>" in an impression ended the
    prompt's document (the model wrote unrelated web text). Every tokenization of
    template text goes through here: training, generation with every decoder, lengths."""
    return tokenizer(list(texts), split_special_tokens=True, **options)


def text_ids(tokenizer, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
    """Each text's token ids (`encode_texts`)."""
    return encode_texts(tokenizer, texts, add_special_tokens=add_special_tokens)["input_ids"]


def tokenize_rows(rows: Iterable[Mapping], tokenizer) -> list[TokenizedParts]:
    """Each row's prompt and report token ids (rows with keys `impression`, `report` and
    optionally `examples`, the retrieved (impression, report) pairs its prompt shows)."""
    rows = list(rows)
    parts: list[TokenizedParts] = []
    for start in range(0, len(rows), TOKENIZE_BATCH):
        chunk = rows[start : start + TOKENIZE_BATCH]
        prompts = [
            format_prompt(
                row["impression"], tuple(tuple(pair) for pair in row.get("examples") or ())
            )
            for row in chunk
        ]
        reports = [template_text(row["report"]) for row in chunk]
        prompt_ids = text_ids(tokenizer, prompts, add_special_tokens=True)
        report_ids = text_ids(tokenizer, reports, add_special_tokens=False)
        parts.extend(
            (list(prompt), [*report, tokenizer.eos_token_id])
            for prompt, report in zip(prompt_ids, report_ids, strict=True)
        )
    return parts


def _fit(
    prompt_ids: list[int],
    response_ids: list[int],
    max_seq_length: int,
    overlength: OverlengthPolicy,
) -> TokenizedExample | None:
    room = max_seq_length - len(prompt_ids)
    too_long = len(response_ids) > room
    if room <= 0 or (too_long and overlength == "drop"):
        return None
    kept = response_ids[:room]
    return TokenizedExample(
        input_ids=prompt_ids + kept,
        labels=[IGNORE_INDEX] * len(prompt_ids) + kept,
        truncated=too_long,
    )


def tokenize_example(
    tokenizer,
    impression: str,
    report: str,
    max_seq_length: int,
    examples: Sequence[tuple[str, str]] = (),
    overlength: OverlengthPolicy = "truncate",
) -> TokenizedExample | None:
    """Token ids with labels = -100 on every prompt token and the report (+ EOS) trained.

    Over-length examples keep their whole prompt and lose the end of the report
    ("truncate"; the EOS goes too, since the report did not end there) or are skipped
    ("drop", returns None). An example whose prompt alone fills `max_seq_length` has
    nothing left to learn from and is always dropped.
    """
    row = {"impression": impression, "report": report, "examples": examples}
    [(prompt_ids, response_ids)] = tokenize_rows([row], tokenizer)
    return _fit(prompt_ids, response_ids, max_seq_length, overlength)


def token_length_stats(lengths: Sequence[int]) -> dict[str, float]:
    """p50 / p95 / max of token lengths (zeros for an empty set, so logging never fails)."""
    if len(lengths) == 0:
        return {"p50": 0.0, "p95": 0.0, "max": 0.0}
    values = np.asarray(lengths)
    return {
        "p50": float(np.percentile(values, 50)),
        "p95": float(np.percentile(values, 95)),
        "max": float(values.max()),
    }


@dataclass
class AlpacaDataset:
    """Tokenized examples plus what happened to the ones that did not fit."""

    examples: list[TokenizedExample] = field(default_factory=list)
    truncated: int = 0
    dropped: int = 0
    # Lengths before any truncation: they tell whether max_seq_length suits the data.
    source_lengths: list[int] = field(default_factory=list)
    # Each report's tokens with its end-of-sequence token: what generation must have room
    # to write (max_new_tokens).
    report_lengths: list[int] = field(default_factory=list)

    def stats(self) -> dict[str, float]:
        lengths = token_length_stats(self.source_lengths)
        reports = token_length_stats(self.report_lengths)
        return {
            "examples": len(self.examples),
            "truncated": self.truncated,
            "dropped": self.dropped,
            **{f"tokens_{name}": value for name, value in lengths.items()},
            **{f"report_tokens_{name}": value for name, value in reports.items()},
        }

    def reports_longer_than(self, tokens: int) -> int:
        """How many reports (end-of-sequence token included) need more than `tokens`."""
        return sum(length > tokens for length in self.report_lengths)


def build_alpaca_dataset(
    rows: Iterable[Mapping],
    tokenizer,
    max_seq_length: int,
    overlength: OverlengthPolicy = "truncate",
) -> AlpacaDataset:
    """Tokenize rows with keys `impression`, `report` and optionally `examples`.

    `examples` (a sequence of (impression, report) pairs) trains with the retrieval-augmented
    prompt; without it the plain prompt is used.
    """
    return fit_alpaca_dataset(tokenize_rows(rows, tokenizer), max_seq_length, overlength)


def fit_alpaca_dataset(
    parts: Sequence[TokenizedParts],
    max_seq_length: int,
    overlength: OverlengthPolicy = "truncate",
) -> AlpacaDataset:
    """The dataset of rows already tokenized (`tokenize_rows`), fitted to `max_seq_length`:
    one tokenization serves several limits."""
    dataset = AlpacaDataset()
    for prompt_ids, response_ids in parts:
        dataset.source_lengths.append(len(prompt_ids) + len(response_ids))
        dataset.report_lengths.append(len(response_ids))
        example = _fit(prompt_ids, response_ids, max_seq_length, overlength)
        if example is None:
            dataset.dropped += 1
            continue
        dataset.truncated += example.truncated
        dataset.examples.append(example)
    return dataset
