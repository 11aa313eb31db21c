"""The ONNX Runtime GenAI decoder: an export of base + adapter that writes the same reports
as the fp32 PyTorch generator, cached by content, with clear failures."""

from __future__ import annotations

import json
import shutil
from functools import partial

import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from radreport.llm import onnx_export
from radreport.llm.base_model import BaseModelMissing
from radreport.llm.bundled import bundled_model_dir
from radreport.llm.decode_rules import DecodeRules
from radreport.llm.decoder_support import DecoderUnavailable
from radreport.llm.generate import ReportGenerator
from radreport.llm.onnx_export import OnnxExportError, export_key, onnx_model_dir
from radreport.llm.onnx_generate import OnnxReportGenerator, onnx_greedy_decode
from radreport.llm.settings import LLMSettings
from radreport.llm.trained_generator import trained_report_generator
from tests.llm.tiny_llama import copy_as_model_type

# Different lengths, so a batch of them is padded.
IMPRESSIONS = [
    "Cardiomegaly with mild bibasilar infiltrates and small bilateral pleural effusions.",
    "No acute disease.",
    "Stable postoperative changes of the chest without acute process.",
    "Clear lungs.",
]


@pytest.fixture(scope="module")
def onnx_dir(tiny_llama_dir, tiny_adapter_dir, tmp_path_factory):
    return onnx_model_dir(tiny_llama_dir, tiny_adapter_dir, tmp_path_factory.mktemp("onnx"))


def test_onnx_decoder_writes_the_reports_of_fp32_torch_with_the_adapter(
    onnx_dir, tiny_llama_dir, tiny_adapter_dir
):
    settings = dict(max_new_tokens=16, batch_size=3)
    # Control tokens typed in an impression are text to both (test_generate.py).
    impressions = [*IMPRESSIONS, "Clear lungs.<|endoftext|>"]
    torch_reports = ReportGenerator(
        tiny_llama_dir, tiny_adapter_dir, dtype=torch.float32, **settings
    ).generate(impressions, progress=False)
    onnx_reports = OnnxReportGenerator(onnx_dir, num_threads=1, **settings).generate(
        impressions, progress=False
    )
    assert onnx_reports == torch_reports
    assert all(onnx_reports)
    base_only = ReportGenerator(tiny_llama_dir, dtype=torch.float32, **settings)
    assert base_only.generate(impressions, progress=False) != onnx_reports  # adapter merged


def test_onnx_batches_count_the_fp32_cache_of_the_exported_model(onnx_dir, tiny_llama_dir):
    torch_generator = ReportGenerator(tiny_llama_dir, dtype=torch.float32)
    onnx_generator = OnnxReportGenerator(onnx_dir, num_threads=1)
    assert onnx_generator.cache_bytes_per_position() == 2 * 2 * 2 * 16 * 4
    assert onnx_generator.cache_bytes_per_position() == torch_generator.cache_bytes_per_position()
    onnx_generator.batch_tokens = 1  # every prompt alone, and the same reports
    assert onnx_generator.generate(IMPRESSIONS, progress=False) == OnnxReportGenerator(
        onnx_dir, num_threads=1, batch_tokens=None
    ).generate(IMPRESSIONS, progress=False)


def test_onnx_decoder_blocks_repeats_like_the_torch_decoder(tmp_path):
    # The bundled SmolLM2 (untuned) loops on this impression: a real case for the blocking.
    impressions = ["Stable chronic lung changes.", "No acute disease."]
    settings = dict(max_new_tokens=48, batch_size=2, no_repeat_ngram_size=4)
    exported = onnx_model_dir(bundled_model_dir(), None, tmp_path)
    blocked = OnnxReportGenerator(exported, **settings).generate(impressions, progress=False)
    torch_generator = ReportGenerator(bundled_model_dir(), dtype=torch.float32, **settings)
    assert blocked == torch_generator.generate(impressions, progress=False)
    unblocked = OnnxReportGenerator(exported, **{**settings, "no_repeat_ngram_size": 0})
    assert unblocked.generate(impressions, progress=False) != blocked


def test_onnx_decoding_keeps_a_rows_stop_token_and_nothing_after_it(onnx_dir):
    generator = OnnxReportGenerator(onnx_dir, max_new_tokens=16, num_threads=1)
    prompts = generator.tokenizer(IMPRESSIONS)["input_ids"]
    pad = generator.rules.pad_id
    free = onnx_greedy_decode(generator.onnx_model, prompts, 16, DecodeRules([], pad))
    assert [len(row) for row in free] == [16] * len(IMPRESSIONS)
    # The third token of the first row becomes a stop token: that row ends there; rows that
    # never produce it run to the budget.
    stop = free[0][2]
    stopped = onnx_greedy_decode(generator.onnx_model, prompts, 16, DecodeRules([stop], pad))
    for row, tokens in zip(free, stopped, strict=True):
        expected = row[: row.index(stop) + 1] if stop in row else row
        assert tokens == expected


def test_export_is_reused_for_the_same_files_and_redone_for_a_changed_adapter(
    onnx_dir, tiny_llama_dir, tiny_adapter_dir, tmp_path, monkeypatch
):
    def no_builder(*args):
        raise AssertionError("the cached export should have been reused")

    with monkeypatch.context() as patch:
        patch.setattr(onnx_export, "_run_builder", no_builder)
        assert onnx_model_dir(tiny_llama_dir, tiny_adapter_dir, onnx_dir.parent) == onnx_dir

    changed = tmp_path / "adapter"
    shutil.copytree(tiny_adapter_dir, changed)
    config = json.loads((changed / "adapter_config.json").read_text())
    config["lora_alpha"] = 2 * config["lora_alpha"]
    (changed / "adapter_config.json").write_text(json.dumps(config))
    assert export_key(tiny_llama_dir, changed) != export_key(tiny_llama_dir, tiny_adapter_dir)
    assert export_key(tiny_llama_dir, None) != export_key(tiny_llama_dir, tiny_adapter_dir)


def test_a_model_the_builder_cannot_export_fails_with_one_line_naming_it(tiny_llama_dir, tmp_path):
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_llama_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    config["architectures"] = ["NoSuchModelForCausalLM"]
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(OnnxExportError, match="broken-model") as failure:
        onnx_model_dir(broken, None, tmp_path / "onnx")
    assert "\n" not in str(failure.value)
    # No half-written export left behind (the root keeps only its record of file digests).
    assert not [path for path in (tmp_path / "onnx").iterdir() if path.is_dir()]


def test_an_empty_model_folder_is_named_in_the_error(tmp_path):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="empty-model"):
        onnx_model_dir(empty, None, tmp_path / "onnx")


def test_settings_route_to_the_onnx_decoder(tiny_llama_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("RADREPORT_CACHE_DIR", str(tmp_path))
    settings = LLMSettings(decoder="onnxruntime", max_new_tokens=5, no_repeat_ngram_size=3)
    generator = ReportGenerator.from_settings(settings, tiny_llama_dir)
    assert isinstance(generator, OnnxReportGenerator)
    assert generator.rules.no_repeat_ngram_size == 3 and generator.max_new_tokens == 5
    assert (tmp_path / "onnx" / export_key(tiny_llama_dir, None) / "model.onnx").is_file()


@pytest.mark.parametrize("other", [{"mbr_candidates": 4}, {"num_beams": 2}])
def test_onnx_decoder_with_beams_or_mbr_is_rejected(other):
    with pytest.raises(ValidationError, match="decoder 'onnxruntime' decodes greedily"):
        LLMSettings(decoder="onnxruntime", **other)


def test_onnx_decoding_applies_the_stop_logit_bias(onnx_dir):
    generator = OnnxReportGenerator(onnx_dir, max_new_tokens=8, num_threads=1)
    prompts = generator.tokenizer(IMPRESSIONS[:2])["input_ids"]
    pad = generator.rules.pad_id
    free = onnx_greedy_decode(generator.onnx_model, prompts, 8, DecodeRules([], pad))
    stop = free[0][2]
    decode = partial(onnx_greedy_decode, generator.onnx_model, prompts, 8)
    later = decode(DecodeRules([stop], pad, stop_logit_bias=-1e4))
    assert [len(row) for row in later] == [8, 8] and stop not in later[0]
    assert later[0][:2] == free[0][:2]
    assert decode(DecodeRules([stop], pad, stop_logit_bias=1e4)) == [[stop], [stop]]
    assert OnnxReportGenerator(onnx_dir, stop_logit_bias=-2.0).rules.stop_logit_bias == -2.0


def test_a_model_type_the_onnx_decoder_cannot_run_is_refused_before_any_export(
    tiny_llama_dir, tmp_path
):
    gemma = copy_as_model_type(tiny_llama_dir, tmp_path / "gemma2-model", "gemma2")
    with pytest.raises(DecoderUnavailable, match="model_type is 'gemma2'"):
        onnx_model_dir(gemma, None, tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()


def test_a_version_whose_base_model_folder_is_gone_says_so(tiny_adapter_dir, tmp_path):
    settings = LLMSettings(base_model=str(tmp_path / "moved"), max_new_tokens=5)
    with pytest.raises(BaseModelMissing, match="moved' does not exist"):
        trained_report_generator(settings, tiny_adapter_dir, pd.DataFrame())
