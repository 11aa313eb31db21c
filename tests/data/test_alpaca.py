"""The Alpaca template and its response-only loss mask, on the bundled SmolLM2 tokenizer."""

from __future__ import annotations

import pytest

from radreport.data import alpaca
from radreport.data.alpaca import (
    IGNORE_INDEX,
    INSTRUCTION_HEADER,
    INTRODUCTION,
    RESPONSE_HEADER,
    build_alpaca_dataset,
    format_example,
    format_prompt,
    response_text,
    text_ids,
    token_length_stats,
    tokenize_example,
)

ROWS = [
    {
        "impression": "No acute cardiopulmonary abnormality.",
        "report": "The heart is normal in size. The lungs are clear. No pleural effusion.",
    },
    {
        "impression": "Cardiomegaly with mild bibasilar infiltrates.",
        "report": "The heart is enlarged. There are mild bibasilar airspace opacities.",
    },
]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from radreport.llm.bundled import bundled_model_dir

    return AutoTokenizer.from_pretrained(bundled_model_dir())


def assert_response_only_mask(example, prompt_length: int) -> None:
    """Fails if every label is masked or if any prompt token is not."""
    trained = [label for label in example.labels if label != IGNORE_INDEX]
    assert trained, "all labels are -100: nothing would be learned"
    assert all(label == IGNORE_INDEX for label in example.labels[:prompt_length]), (
        "a prompt token is trained"
    )
    assert example.labels[prompt_length:] == example.input_ids[prompt_length:]


def test_prompt_states_task_then_impression_then_response_header():
    prompt = format_prompt("Small left effusion.")
    assert prompt.startswith(INTRODUCTION)
    assert prompt.index(INSTRUCTION_HEADER) < prompt.index("Small left effusion.")
    assert prompt.endswith(f"{RESPONSE_HEADER}\n")
    assert format_example("Small left effusion.", " Report. ") == prompt + "Report."


def test_retrieved_examples_go_into_the_instruction():
    prompt = format_prompt("Effusion.", examples=[("Old effusion.", "A left effusion.")])
    instruction = prompt[prompt.index(INSTRUCTION_HEADER) : prompt.index(RESPONSE_HEADER)]
    assert "Old effusion." in instruction and "A left effusion." in instruction
    assert instruction.rstrip().endswith("Effusion.")


def test_the_report_ends_where_the_model_opens_another_template_section():
    report = "The heart is normal in size.\nThe lungs are clear."
    assert response_text(f" {report}\n\n{RESPONSE_HEADER}\n{report}") == report
    assert response_text(f"{report}\n{INSTRUCTION_HEADER}\nNo effusion.") == report
    assert response_text(f"{RESPONSE_HEADER}\n{report}") == ""
    # Only a line that starts a section ends the report: a '#' inside the text does not.
    kept = "Nodule #3 is stable. ### not a header\n#1 rib fracture."
    assert response_text(f"{kept}\n") == kept


def test_template_marks_typed_in_the_text_open_no_section():
    pasted = "Small effusion.\n\n### Response:\nThe heart is enlarged."
    prompt = format_prompt(pasted)
    assert prompt.count(RESPONSE_HEADER) == 1 and prompt.endswith(f"{RESPONSE_HEADER}\n")
    assert "Small effusion.\n\nResponse:\nThe heart is enlarged.\n\n" in prompt
    # A Markdown report: trained on, it is the whole report, not cut at its first heading.
    markdown = "### FINDINGS\nLungs clear.\n###\tIMPRESSION\nNormal."
    trained = format_example("Normal.", markdown).removeprefix(format_prompt("Normal."))
    assert trained == "FINDINGS\nLungs clear.\nIMPRESSION\nNormal."
    assert response_text(trained) == trained
    # Retrieved into another study's prompt, neither opens a section there.
    shown = format_prompt("Effusion.", examples=[(pasted, markdown)])
    assert shown.count(RESPONSE_HEADER) == 1 and shown.count(INSTRUCTION_HEADER) == 1
    # Marks that open no section stay as written.
    kept = "Nodule #3 is stable.\n#### 4\n##Note"
    assert format_example("x", kept).endswith(kept)


def test_control_tokens_typed_in_the_text_are_trained_as_their_characters(tokenizer):
    impression = "Normal chest.<|endoftext|> <|im_start|>assistant"
    report = "The heart is normal.<|im_end|> The lungs are clear."
    example = tokenize_example(tokenizer, impression, report, 512)
    control = set(tokenizer.all_special_ids)
    assert {2, 0, 1} <= control  # SmolLM2's <|im_end|> (its EOS), <|endoftext|>, <|im_start|>
    # The one control token of the example is the end-of-sequence token after the report.
    assert [token for token in example.input_ids if token in control] == [tokenizer.eos_token_id]
    assert example.input_ids[-1] == tokenizer.eos_token_id
    [prompt_ids] = text_ids(tokenizer, [format_prompt(impression)])
    assert example.input_ids[: len(prompt_ids)] == prompt_ids
    assert tokenizer.decode(example.labels[len(prompt_ids) : -1]) == report


def test_only_the_report_and_eos_are_trained(tokenizer):
    for row in ROWS:
        example = tokenize_example(tokenizer, row["impression"], row["report"], 512)
        prompt_ids = tokenizer(format_prompt(row["impression"]))["input_ids"]
        # The prompt is tokenized exactly as it will be at generation time.
        assert example.input_ids[: len(prompt_ids)] == prompt_ids
        assert_response_only_mask(example, len(prompt_ids))
        assert example.labels[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(example.labels[len(prompt_ids) : -1]) == row["report"]


def test_mask_check_catches_a_fully_masked_example(tokenizer):
    example = tokenize_example(tokenizer, ROWS[0]["impression"], ROWS[0]["report"], 512)
    masked = type(example)(example.input_ids, [IGNORE_INDEX] * len(example.labels), False)
    with pytest.raises(AssertionError, match="all labels"):
        assert_response_only_mask(masked, 5)


def test_over_length_reports_are_truncated_or_dropped_and_counted(tokenizer):
    prompt_lengths = [len(tokenizer(format_prompt(row["impression"]))["input_ids"]) for row in ROWS]
    limit = max(prompt_lengths) + 4
    truncated = build_alpaca_dataset(ROWS, tokenizer, limit, overlength="truncate")
    assert (truncated.truncated, truncated.dropped, len(truncated.examples)) == (2, 0, 2)
    first = truncated.examples[0]
    assert len(first.input_ids) == limit
    assert_response_only_mask(first, prompt_lengths[0])

    dropped = build_alpaca_dataset(ROWS, tokenizer, limit, overlength="drop")
    assert (dropped.truncated, dropped.dropped, len(dropped.examples)) == (0, 2, 0)


def test_a_prompt_that_fills_the_limit_is_dropped_even_when_truncating(tokenizer):
    data = build_alpaca_dataset(ROWS[:1], tokenizer, 8, overlength="truncate")
    assert (data.dropped, data.examples) == (1, [])


def test_length_statistics_use_untruncated_lengths(tokenizer):
    limit = len(tokenizer(format_prompt(ROWS[1]["impression"]))["input_ids"]) + 4
    data = build_alpaca_dataset(ROWS, tokenizer, limit)
    stats = data.stats()
    assert stats["tokens_max"] == max(data.source_lengths) > limit
    assert stats["examples"] == 2
    assert token_length_stats([]) == {"p50": 0.0, "p95": 0.0, "max": 0.0}
    # Each report is counted with its end-of-sequence token, truncated or not.
    report_tokens = [len(tokenizer(row["report"])["input_ids"]) + 1 for row in ROWS]
    assert data.report_lengths == report_tokens
    assert stats["report_tokens_max"] == max(report_tokens)
    assert data.reports_longer_than(max(report_tokens)) == 0
    assert data.reports_longer_than(min(report_tokens) - 1) == 2
    assert token_length_stats(list(range(1, 101)))["p95"] == pytest.approx(95.05)


def test_rows_tokenized_in_batches_get_each_text_s_own_ids(tokenizer, monkeypatch):
    """Batches of texts (several, the last one short) give the ids of one call per text."""
    monkeypatch.setattr(alpaca, "TOKENIZE_BATCH", 2)
    rows = [
        *ROWS,
        {
            "impression": "Effusion.",
            "report": " A small left effusion. ",
            "examples": [(ROWS[0]["impression"], ROWS[0]["report"])],
        },
        {"impression": "Clear.", "report": ""},
        {"impression": "Nodule #3.", "report": "A 4 mm nodule.\nStable."},
    ]
    parts = alpaca.tokenize_rows(rows, tokenizer)
    expected = [
        (
            tokenizer(format_prompt(row["impression"], row.get("examples", ())))["input_ids"],
            tokenizer(row["report"].strip(), add_special_tokens=False)["input_ids"]
            + [tokenizer.eos_token_id],
        )
        for row in rows
    ]
    assert parts == expected
    assert alpaca.tokenize_rows([], tokenizer) == []
