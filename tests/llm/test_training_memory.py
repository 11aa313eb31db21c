"""gradient_checkpointing: auto on the CPU recomputes activations only where the longest
batch's would not fit in memory."""

from __future__ import annotations

import logging
import shutil
from types import SimpleNamespace

import pytest

from radreport.llm import cache_budget, device
from radreport.llm.base_model import resolve_base_model
from radreport.llm.device import resolve_for_device
from radreport.llm.settings import LLMSettings
from radreport.llm.training_memory import (
    activation_bytes_per_token,
    attention_keeps_scores,
    checkpointing_needed,
    fused_kernels_take,
)

GIB = 2**30


def llama(layers, hidden, mlp, heads, kv_heads):
    return SimpleNamespace(
        num_hidden_layers=layers,
        hidden_size=hidden,
        intermediate_size=mlp,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
    )


# The bundled SmolLM2-135M's shape, and the random-weight shapes the benchmark measured.
SMOLLM2 = llama(30, 576, 1536, 9, 3)
WIDE_HIDDEN = llama(12, 1152, 1536, 18, 6)
FULL_KV = llama(12, 1024, 2816, 16, 16)
WIDE_MLP = llama(12, 576, 3072, 9, 3)


def saved_part(config, dtype, rank=64, scores_row_tokens=0, **options):
    """The count less its working memory (128 bytes a width unit, 32 a score of the row):
    what it says a token keeps for the backward, in bytes."""
    width = config.hidden_size + config.intermediate_size
    working = 128 * width + 32 * config.num_attention_heads * scores_row_tokens
    return activation_bytes_per_token(config, dtype, rank, scores_row_tokens, **options) - working


def test_bytes_per_token_count_what_each_layer_saves():
    # Per layer 6 values per hidden unit, 3 per MLP unit, 2 per key/value unit (3 heads x 64)
    # and the rank in 7 projections, and the final hidden states, in the products' dtype;
    # plus 128 bytes per width unit.
    saved_values = 30 * (6 * 576 + 3 * 1536 + 2 * 192 + 7 * 64) + 576
    working = 128 * (576 + 1536)
    assert activation_bytes_per_token(SMOLLM2, "bfloat16", 64) == 2 * saved_values + working
    assert activation_bytes_per_token(SMOLLM2, "float32", 64) == 4 * saved_values + working
    # A lower rank keeps less: 7 projections x 48 values fewer per layer.
    fewer = activation_bytes_per_token(SMOLLM2, "float32", 64) - 30 * 4 * 7 * 48
    assert activation_bytes_per_token(SMOLLM2, "float32", 16) == fewer


@pytest.mark.parametrize(
    ("config", "dtype", "rank", "saved_kb", "peak_growth_kb"),
    [
        # benchmarks/results/train_memory_by_shape.json: kB a token of the batch kept for the
        # backward (saved-tensor hooks) and added to peak resident memory, LoRA rank 64 but
        # the one run at 16.
        (SMOLLM2, "bfloat16", 64, 536.3, 707.5),
        (SMOLLM2, "float32", 64, 1071.7, 1129.0),
        (WIDE_HIDDEN, "bfloat16", 64, 309.0, 491.1),
        (FULL_KV, "bfloat16", 64, 413.1, 642.3),
        (FULL_KV, "float32", 64, 825.7, 1274.9),
        (WIDE_MLP, "float32", 64, 651.1, 825.5),
        (llama(12, 576, 1536, 9, 3), "float32", 16, 414.2, 571.0),
    ],
)
def test_the_count_follows_the_measured_shapes(config, dtype, rank, saved_kb, peak_growth_kb):
    count = activation_bytes_per_token(config, dtype, rank)
    # What the step saves, to within 1 %.
    assert saved_part(config, dtype, rank) / 1000 == pytest.approx(saved_kb, rel=0.01)
    # The whole count is above what peak memory grew by.
    assert count / 1000 > peak_growth_kb


@pytest.mark.parametrize(
    ("config", "dtype", "saved_gib"),
    [
        # The same file: GiB saved for the backward by steps of 2 rows of 128 and of 384
        # tokens, which take the grouped eager attention kernel (scores kept), LoRA rank 64.
        (SMOLLM2, "float32", (0.7563, 1.5304)),
        (SMOLLM2, "bfloat16", (0.3782, 0.7653)),
        (WIDE_HIDDEN, "float32", (0.6135, 1.1183)),
        (FULL_KV, "bfloat16", (0.4252, 0.7156)),
    ],
)
def test_rows_whose_attention_keeps_scores_count_them(config, dtype, saved_gib):
    def saved_by_two_rows(tokens):
        return 2 * tokens * saved_part(config, dtype, scores_row_tokens=tokens)

    grown = (saved_gib[1] - saved_gib[0]) * GIB
    assert grown == pytest.approx(saved_by_two_rows(384) - saved_by_two_rows(128), rel=0.01)
    # Without the scores the count would miss a third of the growth at these lengths.
    without = 2 * (384 - 128) * saved_part(config, dtype)
    assert grown > 1.3 * without


def test_the_cpu_attention_keeps_scores_up_to_its_eager_limit():
    assert attention_keeps_scores("grouped_eager_or_sdpa", 416)
    assert not attention_keeps_scores("grouped_eager_or_sdpa", 417)
    assert attention_keeps_scores("eager", 4096)
    assert not attention_keeps_scores("sdpa", 128)


QWEN2_LIKE = llama(8, 896, 4864, 14, 2)


@pytest.mark.parametrize(
    ("config", "dtype", "saved_kb"),
    [
        # The same file, with transformers' own norm and MLP modules (fused_elementwise off
        # on Llama shapes, or a Qwen2 model, which our kernels do not take): kB a token saved.
        (llama(12, 576, 1536, 9, 3), "float32", 504.1),
        (FULL_KV, "bfloat16", 530.0),
        (QWEN2_LIKE, "float32", 821.8),
        (QWEN2_LIKE, "bfloat16", 439.8),
    ],
)
def test_stock_modules_count_what_they_keep(config, dtype, saved_kb):
    stock = saved_part(config, dtype, fused_kernels=False)
    assert stock / 1000 == pytest.approx(saved_kb, rel=0.01)
    # Our kernels keep less: one value fewer per MLP unit (and fp32 norms' extra in bf16).
    assert saved_part(config, dtype) < stock


@pytest.mark.parametrize(
    ("config", "dtype", "saved_kb"),
    [
        # The same file, LoRA dropout 0.05 (PEFT's own LoRA forward): kB a token saved.
        (llama(12, 576, 1536, 9, 3), "float32", 773.6),
        (WIDE_MLP, "bfloat16", 534.5),
        (WIDE_HIDDEN, "float32", 1230.3),
        (FULL_KV, "bfloat16", 720.5),
    ],
)
def test_lora_dropout_counts_what_it_keeps(config, dtype, saved_kb):
    with_dropout = saved_part(config, dtype, lora_dropout=True)
    assert with_dropout / 1000 == pytest.approx(saved_kb, rel=0.01)
    # Without the term the count would miss a third or more of it.
    assert saved_kb * 1000 > 1.4 * saved_part(config, dtype)


def test_the_fused_kernels_take_llama_models_only():
    from transformers import AutoConfig, Qwen2Config

    llama_config = AutoConfig.from_pretrained(resolve_base_model(LLMSettings().base_model))
    assert fused_kernels_take(llama_config, LLMSettings(), "bfloat16")
    assert fused_kernels_take(llama_config, LLMSettings(), "float32")
    assert not fused_kernels_take(llama_config, LLMSettings(), "float16")
    assert not fused_kernels_take(llama_config, LLMSettings(fused_elementwise=False), "float32")
    qwen2 = Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2)
    assert not fused_kernels_take(qwen2, LLMSettings(), "float32")


def test_needed_only_past_the_share_of_available_memory():
    available = 20 * GIB
    share = int(cache_budget.AUTO_MEMORY_SHARE * available)
    assert not checkpointing_needed(share, available)
    assert checkpointing_needed(share + 1, available)


@pytest.fixture
def cpu(monkeypatch):
    monkeypatch.setattr(device, "cuda_available", lambda: False)
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: False)

    def with_memory(gib: float) -> None:
        monkeypatch.setattr(cache_budget, "available_memory_bytes", lambda _: int(gib * GIB))

    return with_memory


def test_auto_keeps_activations_where_the_longest_batch_fits(cpu):
    cpu(24)
    # 8 rows of 679 tokens (the IU X-Ray config's longest example): 6.8 GiB counted in fp32.
    settings = LLMSettings(max_seq_length=679, per_device_batch_size=8)
    assert resolve_for_device(settings).gradient_checkpointing is False


def test_auto_recomputes_where_the_longest_batch_would_not_fit(cpu, caplog):
    cpu(24)
    # 8 rows of 2,048 tokens in fp32: 20.4 GiB counted (19.2 GiB peak measured), over 12.
    settings = LLMSettings(max_seq_length=2048, per_device_batch_size=8)
    with caplog.at_level(logging.INFO, logger="radreport.llm.training_memory"):
        assert resolve_for_device(settings).gradient_checkpointing is True
    assert "gradient checkpointing on (auto): batches of 8 x 2048 tokens" in caplog.text
    assert "50 % of the 24.0 GiB available" in caplog.text
    # Smaller batches of the same examples fit again.
    smaller = settings.model_copy(update={"per_device_batch_size": 2})
    assert resolve_for_device(smaller).gradient_checkpointing is False


def test_explicit_choices_and_unsized_lengths_are_left_alone(cpu):
    cpu(0.5)
    off = LLMSettings(max_seq_length=2048, gradient_checkpointing=False)
    assert resolve_for_device(off).gradient_checkpointing is False
    # "auto" lengths are sized by the data when the prompts are made; finetune gets numbers.
    assert resolve_for_device(LLMSettings(max_seq_length="auto")).gradient_checkpointing is False
    assert resolve_for_device(LLMSettings(max_seq_length=2048)).gradient_checkpointing is True


def test_a_model_config_out_of_reach_is_left_to_the_loader(cpu, tmp_path):
    # A folder without config.json: loading the model names what is missing, in its words.
    cpu(0.5)
    settings = LLMSettings(base_model=str(tmp_path), max_seq_length=2048)
    assert resolve_for_device(settings).gradient_checkpointing is False


def test_a_model_without_llama_size_names_is_not_counted_and_says_so(
    cpu, tmp_path, caplog, tiny_llama_dir
):
    # GPT-2's config names its MLP width n_inner (None by default), not intermediate_size.
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=2, n_head=2)).save_pretrained(tmp_path)
    shutil.copy(tiny_llama_dir / "tokenizer.json", tmp_path)
    cpu(0.5)
    settings = LLMSettings(base_model=str(tmp_path), max_seq_length=2048)
    with caplog.at_level(logging.INFO, logger="radreport.llm.training_memory"):
        assert resolve_for_device(settings).gradient_checkpointing is False
    assert "does not name its layer sizes as Llama's does" in caplog.text


def test_short_rows_count_the_scores_the_cpu_attention_keeps(cpu):
    # 16 rows of 400 tokens take the grouped eager kernel: 12.1 GB counted in fp32 with their
    # scores, over half of 20 GiB; rows of 417 take SDPA and keep no scores: 8.9 GB.
    cpu(20)
    eager_rows = LLMSettings(max_seq_length=400, per_device_batch_size=16)
    assert resolve_for_device(eager_rows).gradient_checkpointing is True
    sdpa_rows = eager_rows.model_copy(update={"max_seq_length": 417})
    assert resolve_for_device(sdpa_rows).gradient_checkpointing is False
    # SDPA asked for by name keeps no scores at 400 tokens either.
    named_sdpa = eager_rows.model_copy(update={"attention": "sdpa"})
    assert resolve_for_device(named_sdpa).gradient_checkpointing is False


def test_auto_always_recomputes_with_unsloth_on_the_cpu(cpu):
    # Its recomputation took no longer there, and its CPU path keeps more than the count.
    cpu(24)
    settings = LLMSettings(backend="unsloth", max_seq_length=128, per_device_batch_size=1)
    assert resolve_for_device(settings).gradient_checkpointing is True
    hf = settings.model_copy(update={"backend": "hf"})
    assert resolve_for_device(hf).gradient_checkpointing is False


def test_lora_dropout_moves_the_switch(cpu):
    # 8 rows of 1,000 tokens in fp32 on 24 GiB: 10.7 GB counted without dropout, kept; with
    # dropout 17.6 GB, over half of it.
    cpu(24)
    plain = LLMSettings(max_seq_length=1000, per_device_batch_size=8)
    assert resolve_for_device(plain).gradient_checkpointing is False
    dropout = plain.model_copy(update={"lora_dropout": 0.05})
    assert resolve_for_device(dropout).gradient_checkpointing is True
