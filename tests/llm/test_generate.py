"""Decoding mechanics on a tiny random Llama: padding, stopping, beams, input order."""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import partial

import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from radreport.data.alpaca import format_prompt
from radreport.llm.bundled import bundled_model_dir
from radreport.llm.decode_rules import DecodeRules
from radreport.llm.generate import (
    PromptTooLong,
    ReportGenerator,
    greedy_decode,
    load_generation_model,
    sample_candidates,
    study_generators,
)
from radreport.llm.mbr import select_by_mbr
from radreport.llm.predictions import (
    kept_reports,
    kept_reports_table,
    predict_fitting_impressions,
    predict_splits,
)
from radreport.llm.repeat_blocking import RepeatedNgramBlocker
from radreport.llm.settings import LLMSettings
from tests.llm.impressions import IMPRESSIONS


@pytest.fixture(scope="module")
def generator(tiny_llama_dir) -> ReportGenerator:
    return ReportGenerator(tiny_llama_dir, dtype=torch.float32, max_new_tokens=10)


def test_control_tokens_typed_in_an_impression_reach_the_model_as_text(generator):
    typed = "Small effusion.<|endoftext|> <|im_end|>"
    prompts = generator._prompts([typed, "No acute disease."], None)
    _, input_ids, attention_mask, *_ = generator._decode_args(prompts, 10)
    control = set(generator.tokenizer.all_special_ids)
    assert not control & set(input_ids[attention_mask.bool()].tolist())
    assert generator._token_counts(prompts) == attention_mask.sum(dim=1).tolist()


def test_impressions_their_prompt_holds_alike_draw_alike():
    # One prompt for both, so one draw: the first row took the second's otherwise.
    first, second, other = study_generators(
        ["Small effusion.", "  Small effusion.\n", "Large effusion."], 3, torch.device("cpu")
    )
    draws = [torch.rand(4, generator=generator).tolist() for generator in (first, second, other)]
    assert draws[0] == draws[1] != draws[2]


def test_batched_greedy_equals_one_at_a_time(generator):
    # Prompts of different lengths share a left-padded batch; padding must not change output.
    batched = generator.generate(IMPRESSIONS, batch_size=len(IMPRESSIONS), progress=False)
    alone = [generator.generate([text], batch_size=1, progress=False)[0] for text in IMPRESSIONS]
    assert batched == alone
    assert all(batched)


def test_a_prompt_near_the_context_end_leaves_the_others_reports_unchanged(tiny_llama_dir):
    """The longest prompt's room caps a whole batch; a study's report must not depend on
    which prompts share its batch."""
    probe = ReportGenerator(tiny_llama_dir, dtype=torch.float32, max_new_tokens=10)
    lengths = probe._token_counts(probe._prompts(IMPRESSIONS, None))
    assert max(lengths) - min(lengths) > 10
    cramped = ReportGenerator(tiny_llama_dir, dtype=torch.float32, max_new_tokens=10)
    cramped.context_length = max(lengths) + 4  # the longest prompt has room for 4 tokens
    batched = cramped.generate(IMPRESSIONS, batch_size=len(IMPRESSIONS), progress=False)
    alone = [cramped.generate([text], batch_size=1, progress=False)[0] for text in IMPRESSIONS]
    assert batched == alone
    shortest = lengths.index(min(lengths))
    assert batched[shortest] == probe.generate([IMPRESSIONS[shortest]], progress=False)[0]


def test_reports_come_back_in_input_order(generator):
    reversed_reports = generator.generate(IMPRESSIONS[::-1], batch_size=2, progress=False)
    assert reversed_reports[::-1] == generator.generate(IMPRESSIONS, batch_size=2, progress=False)


def _encode(generator, impressions):
    prompts = [format_prompt(impression) for impression in impressions]
    encoded = generator.tokenizer(prompts, padding=True, return_tensors="pt")
    return encoded["input_ids"], encoded["attention_mask"]


def test_each_row_stops_at_its_own_stop_token(generator):
    input_ids, attention_mask = _encode(generator, IMPRESSIONS[:2])
    pad = generator.tokenizer.pad_token_id
    free_run = greedy_decode(generator.model, input_ids, attention_mask, 8, DecodeRules([], pad))
    stop_token = int(free_run[0, 2])  # make the first row's third token a stop token
    stopped = greedy_decode(
        generator.model, input_ids, attention_mask, 8, DecodeRules([stop_token], pad)
    )

    first_row = stopped[0].tolist()
    assert first_row[:3] == free_run[0, :3].tolist()
    assert all(token == pad for token in first_row[3:])
    # The other row runs on until it meets the stop token itself (or the budget ends).
    second_free = free_run[1].tolist()
    cut = second_free.index(stop_token) + 1 if stop_token in second_free else len(second_free)
    assert stopped[1, :cut].tolist() == second_free[:cut]


def test_decoding_ends_when_every_row_stopped(generator):
    input_ids, attention_mask = _encode(generator, IMPRESSIONS[:1])
    pad = generator.tokenizer.pad_token_id
    first_token = int(
        greedy_decode(generator.model, input_ids, attention_mask, 1, DecodeRules([], pad))[0, 0]
    )
    stopped = greedy_decode(
        generator.model, input_ids, attention_mask, 8, DecodeRules([first_token], pad)
    )
    assert stopped.shape == (1, 1)


def test_stop_token_and_what_follows_are_not_in_the_report(generator):
    input_ids, attention_mask = _encode(generator, IMPRESSIONS[:1])
    pad = generator.tokenizer.pad_token_id
    free_run = greedy_decode(generator.model, input_ids, attention_mask, 10, DecodeRules([], pad))[
        0
    ].tolist()
    original_rules = generator.rules
    generator.rules = replace(original_rules, stop_ids=(free_run[3],))
    try:
        report = generator.generate(IMPRESSIONS[:1], progress=False)[0]
    finally:
        generator.rules = original_rules
    expected = generator.tokenizer.decode(
        free_run[: free_run.index(free_run[3])],
        skip_special_tokens=True,
        clean_up_tokenization_spaces=False,
    )
    assert report == expected.strip()


def test_reports_the_token_budget_cut_are_counted_in_a_warning(generator, caplog):
    original_rules = generator.rules
    try:
        # No stop id at all: every row runs to the budget.
        generator.rules = replace(original_rules, stop_ids=())
        with caplog.at_level(logging.WARNING, logger="radreport.llm.generate"):
            generator.generate(IMPRESSIONS, progress=False)
        assert "4 of 4 reports ran out of room before they ended (max_new_tokens 10" in caplog.text
        assert generator.last_out_of_room == (True,) * 4 and generator.reports_out_of_room == 4
        caplog.clear()
        # Every row's first token as the stop: every row is ended by the model.
        input_ids, attention_mask = _encode(generator, IMPRESSIONS)
        pad = generator.tokenizer.pad_token_id
        first = greedy_decode(generator.model, input_ids, attention_mask, 1, DecodeRules([], pad))
        generator.rules = replace(original_rules, stop_ids=tuple(first[:, 0].tolist()))
        with caplog.at_level(logging.WARNING, logger="radreport.llm.generate"):
            generator.generate(IMPRESSIONS, progress=False)
        assert "ran out of room" not in caplog.text
        assert generator.last_out_of_room == (False,) * 4 and generator.reports_out_of_room == 0
    finally:
        generator.rules = original_rules


def test_beam_search_returns_a_report_per_impression(generator):
    reports = generator.generate(IMPRESSIONS, num_beams=3, batch_size=2, progress=False)
    assert len(reports) == len(IMPRESSIONS)
    assert all(isinstance(report, str) and report for report in reports)


def test_one_example_list_per_impression(generator):
    examples = [[("Clear lungs.", "The lungs are clear. No effusion.")]] * 2
    assert len(generator.generate(IMPRESSIONS[:2], examples=examples, progress=False)) == 2
    with pytest.raises(ValueError, match="example lists"):
        generator.generate(IMPRESSIONS, examples=examples, progress=False)


def test_repeated_ngram_blocker_bans_only_what_would_repeat_the_rows_own_text():
    blocker = RepeatedNgramBlocker(batch=2, size=3)
    for step in ([1, 7], [2, 7], [3, 7], [1, 7], [2, 7]):
        blocker.append(step)
    logits = blocker.block(torch.zeros(2, 10))
    # Row 0 wrote 1 2 3 1 2: a 3 now would repeat "1 2 3"; nothing else is banned.
    assert logits[0].isinf().nonzero().flatten().tolist() == [3]
    # Row 1 wrote 7 7 7 7 7: another 7 would repeat "7 7 7".
    assert logits[1].isinf().nonzero().flatten().tolist() == [7]


def test_greedy_decoding_with_blocking_never_repeats_an_ngram():
    # The bundled SmolLM2 (untuned) loops on this prompt: a real case for the blocking.
    model, tokenizer = load_generation_model(bundled_model_dir(), device="cpu")
    encoded = tokenizer([format_prompt("Stable chronic lung changes.")], return_tensors="pt")
    args = (model, encoded["input_ids"], encoded["attention_mask"], 48)
    pad = tokenizer.pad_token_id

    def repeated_4grams(row: list[int]) -> int:
        grams = [tuple(row[i : i + 4]) for i in range(len(row) - 3)]
        return len(grams) - len(set(grams))

    assert repeated_4grams(greedy_decode(*args, DecodeRules([], pad))[0].tolist()) > 0
    blocked = greedy_decode(*args, DecodeRules([], pad, no_repeat_ngram_size=4))[0].tolist()
    assert repeated_4grams(blocked) == 0 and len(blocked) == 48


def test_repeat_blocking_is_rejected_with_beams_and_for_size_one():
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        LLMSettings(no_repeat_ngram_size=4, num_beams=2)
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        LLMSettings(no_repeat_ngram_size=1)


def test_a_row_that_stops_leaves_the_batch_without_changing_the_others(generator):
    # Row 0 stops at its third token and is dropped from the batch (with its KV cache and
    # n-gram state); row 1 must decode exactly as it does alone.
    input_ids, attention_mask = _encode(generator, IMPRESSIONS[:2])
    pad = generator.tokenizer.pad_token_id
    free_run = greedy_decode(
        generator.model, input_ids, attention_mask, 12, DecodeRules([], pad, 2)
    )
    stop_token = int(free_run[0, 2])
    batched = greedy_decode(
        generator.model, input_ids, attention_mask, 12, DecodeRules([stop_token], pad, 2)
    )
    alone_ids, alone_mask = _encode(generator, IMPRESSIONS[1:2])
    alone = greedy_decode(
        generator.model, alone_ids, alone_mask, 12, DecodeRules([stop_token], pad, 2)
    )
    assert batched[0, :3].tolist() == free_run[0, :3].tolist()
    assert set(batched[0, 3:].tolist()) <= {pad}
    assert batched[1, : alone.shape[1]].tolist() == alone[0].tolist()


def test_sampled_candidates_start_with_the_greedy_decode_and_repeat_with_the_seed(generator):
    input_ids, attention_mask = _encode(generator, IMPRESSIONS[:2])
    pad = generator.tokenizer.pad_token_id
    args = (generator.model, input_ids, attention_mask, 8, DecodeRules([], pad))
    greedy = greedy_decode(*args)

    def sample(seed: int, epsilon: float = 1e-6) -> torch.Tensor:
        generators = [torch.Generator().manual_seed(seed + prompt) for prompt in range(2)]
        return sample_candidates(*args, 3, epsilon, generators)

    candidates = sample(0)
    assert candidates.shape == (6, 8)  # grouped by prompt: rows 0-2 prompt 0, 3-5 prompt 1
    assert candidates[0].tolist() == greedy[0].tolist()
    assert candidates[3].tolist() == greedy[1].tolist()
    assert torch.equal(candidates, sample(0))
    assert not torch.equal(candidates, sample(1))
    # With a cut-off above every token but the most probable, sampling is greedy decoding.
    assert torch.equal(sample(0, epsilon=0.999), greedy.repeat_interleave(3, dim=0))


def test_mbr_decoding_returns_one_report_per_impression_reproducibly(generator):
    generator.mbr_candidates, generator.mbr_epsilon = 4, 1e-6
    try:
        reports = generator.generate(IMPRESSIONS, batch_size=2, progress=False)
        again = generator.generate(IMPRESSIONS, batch_size=2, progress=False)
        generator.mbr_epsilon = 0.999  # every candidate is the greedy decode
        degenerate = generator.generate(IMPRESSIONS, batch_size=2, progress=False)
    finally:
        generator.mbr_candidates, generator.mbr_epsilon = 0, 0.02
    assert len(reports) == len(IMPRESSIONS) and all(reports)
    assert reports == again
    assert degenerate == generator.generate(IMPRESSIONS, batch_size=2, progress=False)


def test_a_studys_mbr_report_does_not_depend_on_the_others_in_its_batch(generator):
    generator.mbr_candidates, generator.mbr_epsilon = 4, 1e-6
    try:
        together = generator.candidate_groups(IMPRESSIONS, batch_size=4, progress=False)
        alone = [
            generator.candidate_groups([impression], batch_size=1, progress=False)[0]
            for impression in IMPRESSIONS
        ]
        generator.seed += 1
        other_seed = generator.candidate_groups(IMPRESSIONS, batch_size=4, progress=False)
    finally:
        generator.mbr_candidates, generator.mbr_epsilon = 0, 0.02
        generator.seed -= 1
    assert together == alone
    assert any(len(set(group)) > 1 for group in together)  # the candidates are sampled
    assert other_seed != together


def test_mbr_can_also_score_candidates_against_the_retrieved_reports(generator):
    generator.mbr_candidates, generator.mbr_epsilon = 4, 1e-6
    changed = []
    try:
        # A random model's text hardly depends on the example in its prompt, and a study
        # draws the same random numbers whatever its examples, so a report that one decode
        # wrote, shown as the example, is close to one of the next decode's candidates: it
        # can steer the choice. Three such reports are tried.
        first = generator.candidate_groups(IMPRESSIONS, [[("Prior study.", "x")]] * 4, batch_size=2)
        for column in (1, 2, 3):
            examples = [[("Prior study.", group[column])] for group in first]
            groups = generator.candidate_groups(IMPRESSIONS, examples, batch_size=2)
            generator.mbr_example_references = False
            plain = generator.generate(IMPRESSIONS, examples, batch_size=2, progress=False)
            generator.mbr_example_references = True
            steered = generator.generate(IMPRESSIONS, examples, batch_size=2, progress=False)
            assert all(len(group) == 4 for group in groups)
            assert plain == [group[select_by_mbr(group)] for group in groups]
            shown = [[report for _, report in pairs] for pairs in examples]
            expected = [
                group[select_by_mbr(group, refs)] for group, refs in zip(groups, shown, strict=True)
            ]
            assert steered == expected
            # What is returned is always one of the model's candidates.
            assert all(report in group for report, group in zip(steered, groups, strict=True))
            changed.append(steered != plain)
    finally:
        generator.mbr_candidates, generator.mbr_epsilon = 0, 0.02
        generator.mbr_example_references = False
    assert any(changed)  # the retrieved reports changed at least one choice


def test_mbr_example_references_need_mbr_and_retrieval():
    for settings in ({"mbr_candidates": 4}, {"retrieval_k": 3}):
        with pytest.raises(ValueError, match="mbr_example_references needs"):
            LLMSettings(mbr_example_references=True, **settings)
    settings = LLMSettings(mbr_example_references=True, mbr_candidates=4, retrieval_k=3)
    assert settings.mbr_example_references


def test_mbr_impression_weight_needs_mbr():
    with pytest.raises(ValueError, match="mbr_impression_weight needs MBR"):
        LLMSettings(mbr_impression_weight=0.1)
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        LLMSettings(mbr_impression_weight=-0.1, mbr_candidates=4)
    assert LLMSettings(mbr_impression_weight=0.1, mbr_candidates=4).mbr_impression_weight == 0.1


def test_mbr_is_rejected_with_beams():
    with pytest.raises(ValueError, match="mbr_candidates"):
        LLMSettings(mbr_candidates=4, num_beams=2)


def test_mbr_settings_reach_the_generator(tiny_llama_dir):
    settings = LLMSettings(
        mbr_candidates=3,
        mbr_epsilon=0.05,
        mbr_impression_weight=0.2,
        seed=7,
        compute_dtype="float32",
    )
    generator = ReportGenerator.from_settings(settings, tiny_llama_dir)
    assert (generator.mbr_candidates, generator.mbr_epsilon, generator.seed) == (3, 0.05, 7)
    assert generator.mbr_impression_weight == 0.2
    assert len(generator.generate(IMPRESSIONS[:2], max_new_tokens=4, progress=False)) == 2


def test_mbr_selection_weighs_each_reports_agreement_with_its_own_impression(
    generator, monkeypatch
):
    # A random model writes no findings, so the candidates are given: two that call the
    # heart normal and one that calls it enlarged, for each of two impressions.
    contradicting = "The heart is normal in size. The lungs are clear. No effusion."
    agreeing = "The heart is enlarged. The lungs are clear. No effusion."
    group = [contradicting, contradicting, agreeing]
    monkeypatch.setattr(generator, "candidate_groups", lambda impressions, *_: [group] * 2)
    monkeypatch.setattr(generator, "mbr_candidates", 3)
    impressions = ["Cardiomegaly.", "No acute cardiopulmonary disease."]
    assert generator.generate(impressions, progress=False) == [contradicting] * 2  # BLEU alone
    monkeypatch.setattr(generator, "mbr_impression_weight", 1.0)
    assert generator.generate(impressions, progress=False) == [agreeing, contradicting]


def _impression_of_prompt_length(generator, tokens: int) -> str:
    """An impression whose prompt is exactly `tokens` tokens long."""
    one_word = len(generator.tokenizer(format_prompt("lung"))["input_ids"])
    impression = " ".join(["lung"] * (tokens - one_word + 1))  # one token per further word
    assert len(generator.tokenizer(format_prompt(impression))["input_ids"]) == tokens
    return impression


def test_a_prompt_that_fills_the_context_is_refused_naming_its_row(generator):
    context = generator.model.config.max_position_embeddings
    too_long = _impression_of_prompt_length(generator, context)
    expected = f"is {context} tokens .* context is {context}"
    with pytest.raises(PromptTooLong, match=expected) as error:
        generator.generate(["Clear lungs.", too_long])
    assert error.value.index == 1


def test_only_the_impressions_that_do_not_fit_are_left_without_a_report(generator):
    context = generator.model.config.max_position_embeddings
    fits = _impression_of_prompt_length(generator, context - 1)
    too_long = _impression_of_prompt_length(generator, context)
    impressions = [too_long, "Clear lungs.", fits, too_long]
    assert [error.index for error in generator.prompts_too_long(impressions)] == [0, 3]
    reports, out_of_room, errors = predict_fitting_impressions(generator, impressions)
    assert [error.index for error in errors] == [0, 3]
    assert reports[0] is None and reports[3] is None
    assert reports[1:3] == generator.generate(impressions[1:3], progress=False)
    # The prompt one token short of the context has room for one token only: the context's
    # end cuts its report, and the row says so; the rows without a report are not cut.
    assert out_of_room == [False, *generator.last_out_of_room, False]
    assert out_of_room[2] is True


def _split_table(generator) -> pd.DataFrame:
    """A train study, two val studies (v1's prompt fills the context) and a test study."""
    too_long = _impression_of_prompt_length(
        generator, generator.model.config.max_position_embeddings
    )
    return pd.DataFrame(
        {
            "study_id": ["t1", "v1", "v2", "s1"],
            "split": ["train", "val", "val", "test"],
            "impression": ["Clear lungs.", too_long, "Small effusion.", "Clear lungs."],
            "report": ["Lungs are clear.", "Long.", "Effusion.", "Clear."],
            "examples": [[], [], [], []],
        }
    )


def test_the_pipeline_writes_the_studies_that_fit_and_records_the_others(generator):
    context = generator.model.config.max_position_embeddings
    table = _split_table(generator)
    predictions, rejected = predict_splits(generator, table)
    assert predictions["study_id"].tolist() == ["v2", "s1"]
    assert predictions["reference"].tolist() == ["Effusion.", "Clear."]
    written = generator.generate(["Small effusion.", "Clear lungs."], progress=False)
    assert predictions["generated"].tolist() == written
    assert rejected[["study_id", "split"]].values.tolist() == [["v1", "val"]]
    assert f"is {context} tokens" in rejected["reason"].iloc[0]
    with pytest.raises(ValueError, match="no val or test study can be written: all 1 .* v1"):
        predict_splits(generator, table[table["study_id"].isin(["t1", "v1"])])


def test_reports_already_decoded_are_kept_and_only_the_others_decoded(generator):
    table = _split_table(generator)
    predictions, rejected = predict_splits(generator, table, decoded={"v2": "Written before."})
    assert predictions["study_id"].tolist() == ["v2", "s1"]
    assert predictions["generated"].tolist() == [
        "Written before.",
        *generator.generate(["Clear lungs."], progress=False),
    ]
    assert rejected["study_id"].tolist() == ["v1"]
    with pytest.raises(ValueError, match="1 reports given as decoded are for no val or test "):
        predict_splits(generator, table, decoded={"t1": "A train study is never generated."})
    with pytest.raises(
        ValueError, match="a report was given for study v1, whose prompt does not fit"
    ):
        predict_splits(generator, table, decoded={"v1": "Its prompt overflows the context."})


def test_each_prediction_says_whether_its_report_ran_out_of_room(generator):
    table = _split_table(generator)
    original_rules = generator.rules
    try:
        # No stop id: s1, decoded here, runs to the budget; v2's flag is what it was given.
        generator.rules = replace(original_rules, stop_ids=())
        predictions, _ = predict_splits(generator, table, decoded={"v2": "Ended."})
        assert predictions.set_index("study_id")["out_of_room"].to_dict() == {
            "v2": False,
            "s1": True,
        }
        # s1's first token as the stop: the model ends it.
        input_ids, attention_mask = _encode(generator, ["Clear lungs."])
        pad = generator.tokenizer.pad_token_id
        first = greedy_decode(generator.model, input_ids, attention_mask, 1, DecodeRules([], pad))
        generator.rules = replace(original_rules, stop_ids=(first[0, 0].item(),))
        predictions, _ = predict_splits(
            generator, table, decoded={"v2": "Cut"}, decoded_out_of_room=["v2"]
        )
        assert predictions.set_index("study_id")["out_of_room"].to_dict() == {
            "v2": True,
            "s1": False,
        }
    finally:
        generator.rules = original_rules
    with pytest.raises(ValueError, match="1 studies are said to have run out of room but have no"):
        predict_splits(generator, table, decoded_out_of_room=["v2"])


def test_kept_reports_pass_through_their_table_with_their_flags():
    table = kept_reports_table([("v1", "Kept."), ("v2", "Cut")], out_of_room=["v2"])
    assert list(table.columns) == ["study_id", "generated", "out_of_room"]
    assert kept_reports(table) == ({"v1": "Kept.", "v2": "Cut"}, ["v2"])
    assert kept_reports(kept_reports_table()) == ({}, [])


def test_decoding_stops_at_the_end_of_the_context(tiny_llama_dir):
    generator = ReportGenerator(tiny_llama_dir, dtype=torch.float32, max_new_tokens=50)
    context = generator.model.config.max_position_embeddings
    impression = _impression_of_prompt_length(generator, context - 3)
    decode_args = generator._decode_args([format_prompt(impression)], 50)
    assert decode_args[1].shape[1] == context - 3
    assert decode_args[3] == 3  # the token budget the context leaves, not 50
    assert greedy_decode(*decode_args).shape[1] <= 3
    assert isinstance(generator.generate([impression])[0], str)


def test_a_stop_logit_bias_ends_rows_sooner_or_later(generator):
    input_ids, attention_mask = _encode(generator, IMPRESSIONS[:2])
    pad = generator.tokenizer.pad_token_id
    free_run = greedy_decode(generator.model, input_ids, attention_mask, 8, DecodeRules([], pad))
    stop_token = int(free_run[0, 2])  # row 0 would stop at its third token
    decode = partial(greedy_decode, generator.model, input_ids, attention_mask, 8)
    later = decode(DecodeRules([stop_token], pad, stop_logit_bias=-1e4))
    assert later.shape == (2, 8) and stop_token not in later.tolist()[0]
    sooner = decode(DecodeRules([stop_token], pad, stop_logit_bias=1e4))
    assert sooner.tolist() == [[stop_token], [stop_token]]
    # The bias moves only the stop token: before it would be chosen, nothing changes.
    assert later[0, :2].tolist() == free_run[0, :2].tolist()


def test_the_stop_logit_bias_reaches_beams_and_mbr_from_the_settings(tiny_llama_dir):
    settings = LLMSettings(compute_dtype="float32", stop_logit_bias=10.0)
    generator = ReportGenerator.from_settings(settings, tiny_llama_dir)
    assert generator.rules.stop_logit_bias == 10.0
    # Every row's first choice is then a stop token.
    generator.rules = replace(generator.rules, stop_logit_bias=1e4)
    assert generator.generate(IMPRESSIONS[:2], num_beams=2, progress=False) == ["", ""]
    generator.mbr_candidates = 3
    assert generator.generate(IMPRESSIONS[:2], progress=False) == ["", ""]
    with pytest.raises(ValidationError, match="stop_logit_bias"):
        LLMSettings(stop_logit_bias=25)


def test_num_threads_sets_the_threads_generation_runs_on(tiny_llama_dir):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        settings = LLMSettings(decoder="torch", num_threads=1, max_new_tokens=2)
        ReportGenerator.from_settings(settings, tiny_llama_dir)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
