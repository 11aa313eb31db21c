"""Rows stop once they open another template section or, given the training reports' shape,
begin a second report, on the bundled SmolLM2 tokenizer."""

from __future__ import annotations

import pytest
import torch

from radreport.data.alpaca import RESPONSE_HEADER, format_prompt, response_text
from radreport.llm.decode_rules import DecodeRules
from radreport.llm.generate import ReportGenerator, _decode_loop
from radreport.llm.report_shape import ReportShape
from radreport.llm.section_stop import TAIL_TOKENS, SectionStop

REPORT = (
    "The heart is normal in size. The mediastinum is unremarkable. The lungs are clear "
    "without focal consolidation, pleural effusion or pneumothorax."
)

SECTIONED = (
    "COMPARISON: None.\n"
    "LUNGS AND AIRWAYS: There is no suspicious pulmonary nodule or mass. No consolidation.\n"
    "PLEURA: No pleural effusion. No pneumothorax.\n"
    "HEART AND MEDIASTINUM: The heart is normal in size."
)
BOTH_MARKS = ReportShape(ends_at_blank_line=True, ends_at_repeated_label=True)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from radreport.llm.bundled import bundled_model_dir

    return AutoTokenizer.from_pretrained(bundled_model_dir())


def first_stop(stop: SectionStop, ids: list[int]) -> int | None:
    """The number of generated ids after which `stop` first says the row has ended."""
    return next((k for k in range(1, len(ids) + 1) if stop.ended(ids[:k])), None)


def test_a_row_ends_at_the_header_it_opens_and_not_before(tokenizer):
    stop = SectionStop(tokenizer)
    ids = tokenizer(f"{REPORT}\n\n{RESPONSE_HEADER}\n{REPORT}")["input_ids"]
    assert len(tokenizer(REPORT)["input_ids"]) > TAIL_TOKENS  # the tail path is exercised
    k = first_stop(stop, ids)
    assert k is not None
    text = tokenizer.decode(ids[:k])
    assert "\n###" in text and "###" not in tokenizer.decode(ids[: k - 2])
    assert response_text(text) == REPORT


def test_a_header_right_at_the_start_ends_the_row(tokenizer):
    stop = SectionStop(tokenizer)
    ids = tokenizer(f"{RESPONSE_HEADER}\n{REPORT}")["input_ids"]
    assert first_stop(stop, ids) is not None and first_stop(stop, ids) <= 3


def test_hashes_inside_a_line_never_end_a_row(tokenizer):
    stop = SectionStop(tokenizer)
    text = f"{REPORT} Nodule #3 is stable; see ### above.\n#1 rib fracture. {REPORT}"
    assert first_stop(stop, tokenizer(text)["input_ids"]) is None


def assert_ended_rows_agrees_with_ended(stop: SectionStop, rows: list[list[int]]) -> None:
    """At every step of the shortest row, the batched check says what the per-row one does."""
    width = min(len(row) for row in rows)
    for steps in range(1, width + 1):
        batch = torch.tensor([row[:steps] for row in rows])
        assert stop.ended_rows(batch).tolist() == [stop.ended(row[:steps]) for row in rows]


def test_ended_rows_agrees_with_ended_per_row(tokenizer):
    texts = [f"{REPORT}\n\n{RESPONSE_HEADER}", f"{REPORT} {REPORT}", f"{RESPONSE_HEADER} x"]
    rows = [tokenizer(text)["input_ids"] for text in texts]
    assert_ended_rows_agrees_with_ended(SectionStop(tokenizer), rows)


def test_decoding_stops_a_row_at_its_header_and_the_others_run_on(tiny_llama_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    header_row = tokenizer(f"{REPORT}\n\n{RESPONSE_HEADER}\n{REPORT}")["input_ids"]
    plain_row = tokenizer(f"{REPORT} {REPORT}")["input_ids"]
    script = torch.tensor([header_row[:48], plain_row[:48]])

    tokenizer.padding_side = "left"
    encoded = tokenizer([format_prompt("Normal chest."), format_prompt("Clear lungs.")],
                        padding=True, return_tensors="pt")  # fmt: skip
    stop = SectionStop(tokenizer)
    pad = tokenizer.pad_token_id
    step = {"n": 0}

    def choose(logits, rows):
        # The model runs for real; which token each row takes is scripted, so row 0 writes
        # a header and row 1 plain text whatever the random weights would choose.
        chosen = script[rows, step["n"]]
        step["n"] += 1
        return chosen

    output = _decode_loop(
        model, encoded["input_ids"], encoded["attention_mask"], 48,
        DecodeRules([], pad, section_stop=stop), 1, choose,
    )  # fmt: skip
    k = first_stop(stop, header_row)
    assert k < 48
    assert output[0, :k].tolist() == header_row[:k]
    assert set(output[0, k:].tolist()) <= {pad}
    assert output[1].tolist() == plain_row[:48]


@pytest.mark.parametrize(
    ("second", "mark"),
    [
        ("\n\nCOMPARISON: [NAME] [DATE].", "\n\n"),
        # The longest label of the report, 10 tokens with its newline, without a blank line.
        ("\nHEART AND MEDIASTINUM: Mild cardiomegaly.", "\nHEART AND MEDIASTINUM:"),
    ],
)
def test_with_the_shape_a_row_ends_once_it_begins_a_second_report(tokenizer, second, mark):
    ids = tokenizer(SECTIONED + second)["input_ids"]
    assert first_stop(SectionStop(tokenizer), ids) is None
    k = first_stop(SectionStop(tokenizer, BOTH_MARKS), ids)
    assert k is not None
    # It ends on the token that completes the mark, not before.
    assert tokenizer.decode(ids[:k]).endswith(mark)
    assert BOTH_MARKS.cut(tokenizer.decode(ids[:k])) == SECTIONED
    assert first_stop(SectionStop(tokenizer, ReportShape(False, False)), ids) is None


def test_with_the_shape_a_report_that_ends_as_trained_runs_to_its_end(tokenizer):
    ids = tokenizer(f"{SECTIONED}\nBONES: No acute osseous abnormality.")["input_ids"]
    assert first_stop(SectionStop(tokenizer, BOTH_MARKS), ids) is None


def test_with_the_shape_ended_rows_agrees_with_ended_per_row(tokenizer):
    stop = SectionStop(tokenizer, BOTH_MARKS)
    texts = [f"{SECTIONED}\n\n{SECTIONED}", f"{SECTIONED}\n{SECTIONED}", f"{REPORT}\n{REPORT}"]
    rows = [tokenizer(text)["input_ids"] for text in texts]
    assert_ended_rows_agrees_with_ended(stop, rows)
    assert any(stop.ended(row) for row in rows[:2]) and not stop.ended(rows[2])


def test_the_generator_cuts_a_second_report_only_once_it_follows_the_shape(tiny_llama_dir):
    generator = ReportGenerator(tiny_llama_dir, dtype=torch.float32, max_new_tokens=8)
    tokenizer = generator.tokenizer
    eos = generator.rules.stop_ids[0]
    ids = [*tokenizer(f"{SECTIONED}\n\nCOMPARISON: [DATE].")["input_ids"], eos]
    assert generator._text_before_stop(ids) == f"{SECTIONED}\n\nCOMPARISON: [DATE]."
    shape = ReportShape.learn([SECTIONED])
    assert generator.follow_report_shape(shape) is generator
    assert generator.rules.section_stop.shape == shape
    assert generator._text_before_stop(ids) == SECTIONED
