"""The native decoder: a C decode step that computes the fp32 PyTorch model's logits and
writes its reports, compiled for this machine, with clear failures."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from radreport.data.alpaca import text_ids
from radreport.llm import generate, native_kernel
from radreport.llm.bundled import bundled_model_dir
from radreport.llm.decode_rules import DecodeRules
from radreport.llm.generate import ReportGenerator
from radreport.llm.native_generate import (
    NativeLlama,
    NativeReportGenerator,
    RowCache,
    UnsupportedModel,
    _prefill,
    native_decode,
    round_matrices_to_bfloat16,
)
from radreport.llm.native_kernel import NativeKernelError
from radreport.llm.settings import LLMSettings
from tests.llm.odd_llama import odd_llama
from tests.llm.tiny_llama import save_tiny_llama

IMPRESSIONS = [
    "Cardiomegaly with mild bibasilar infiltrates and small bilateral pleural effusions.",
    "No acute disease.",
    "Stable postoperative changes of the chest without acute process.",
    "Clear lungs.",
]


def _round_linear_inputs_to_bfloat16(model) -> None:
    """The reference for bfloat16 products: every linear layer's input rounded to bfloat16
    (the products of two bfloat16 values are exact in fp32, so only the order of the fp32
    sums can differ from the kernel's)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.register_forward_pre_hook(lambda _, inputs: (inputs[0].bfloat16().float(),))


@pytest.mark.parametrize(
    ("tie", "matrix_dtype", "head_dim", "products"),
    [
        (True, torch.float32, None, torch.float32),  # 8: the kernel's any-size attention
        (False, torch.float32, None, torch.float32),
        (True, torch.bfloat16, None, torch.float32),
        (True, torch.float32, 64, torch.float32),  # SmolLM2's: query and sums in registers
        (True, torch.bfloat16, 128, torch.float32),  # Llama 3's
        (True, torch.bfloat16, None, torch.bfloat16),  # the CPU's bf16 dot products
        (False, torch.bfloat16, 64, torch.bfloat16),
    ],
)
@torch.inference_mode()
def test_each_native_step_gives_the_logits_of_the_pytorch_model(
    tie, matrix_dtype, head_dim, products
):
    if products == torch.bfloat16 and not native_kernel.load_kernel().llama_has_bf16_products():
        pytest.skip("this CPU has no bfloat16 dot-product instruction (AVX-512 BF16)")
    model = odd_llama(tie, **({"head_dim": head_dim} if head_dim else {}))
    if matrix_dtype == torch.bfloat16:
        # The kernel reads bfloat16 matrices: the reference holds the same values in fp32.
        round_matrices_to_bfloat16(model)
    if products == torch.bfloat16:
        _round_linear_inputs_to_bfloat16(model)
    native = NativeLlama(model, num_threads=2, matrix_dtype=matrix_dtype, activation_dtype=products)
    assert native.activation_dtype == products
    # The first two rows share the first prompt's cache (as MBR's candidates do) and go on
    # differently; the third has a prompt of its own.
    prompts = [[5, 17, 3, 88, 41, 9, 60], [2, 70]]
    rows = [(0, [11, 4, 96, 30, 30, 7]), (0, [8, 8, 13, 61, 2, 90]), (1, [50, 1, 2, 3, 4, 5])]
    prefills = []
    for ids in prompts:
        logits, prompt_keys, prompt_values = _prefill(model, ids)
        torch.testing.assert_close(logits, model(torch.tensor([ids])).logits[0, -1])
        prefills.append((prompt_keys, prompt_values))
    caches = [
        RowCache(*prefills[prompt], native.empty_cache(8), native.empty_cache(8))
        for prompt, _ in rows
    ]
    positions = [len(prompts[prompt]) for prompt, _ in rows]
    exact = []
    for step in range(6):
        logits = native.step([tokens[step] for _, tokens in rows], positions, caches)
        positions = [position + 1 for position in positions]
        for row, (prompt, tokens) in enumerate(rows):
            sequence = prompts[prompt] + tokens[: step + 1]
            expected = model(torch.tensor([sequence])).logits[0, -1]
            if products == torch.float32:
                torch.testing.assert_close(logits[row], expected, rtol=1e-4, atol=1e-4)
                continue
            # Sums in another order can leave an fp32 activation on the other side of a
            # bfloat16 rounding boundary; the next product then reads the neighbouring
            # bfloat16 value (2^-8 apart) and every later step of that row carries it. Seen
            # on an AMD EPYC for one of the three rows from its fifth step (0.016 at most).
            # Every step stays within such a flip, and most must match as in fp32: a
            # rounding or cache fault moves them all.
            torch.testing.assert_close(logits[row], expected, rtol=0.0, atol=0.05)
            exact.append(torch.allclose(logits[row], expected, rtol=1e-4, atol=1e-4))
    if exact:
        assert sum(exact) >= 2 * len(exact) // 3, f"{exact.count(False)} of {len(exact)} steps off"


@torch.inference_mode()
def test_a_step_writes_its_logits_into_a_given_buffer_and_refuses_a_wrong_one():
    model = odd_llama(True)
    native = NativeLlama(model, num_threads=1, prefetch_bytes=0)
    _, keys, values = _prefill(model, [5, 17, 3])

    def cache():
        return RowCache(keys, values, native.empty_cache(2), native.empty_cache(2))

    buffer = torch.full((3, native.vocab), float("nan"))
    written = native.step([4], [3], [cache()], out=buffer)
    assert written.data_ptr() == buffer.data_ptr()
    torch.testing.assert_close(written, native.step([4], [3], [cache()]), rtol=0, atol=0)
    assert torch.isnan(buffer[1:]).all()  # only the step's rows are written
    with pytest.raises(ValueError, match="at least 2 rows"):
        native.step([4, 4], [3, 3], [cache(), cache()], out=buffer[:1])
    with pytest.raises(ValueError, match="float32"):
        native.step([4], [3], [cache()], out=buffer.double())


def test_a_prompts_first_logits_in_bfloat16_are_the_same_alone_and_among_others(tiny_llama_dir):
    """A batched bf16 prefill rounded a prompt by its neighbours' shapes, and a study's
    greedy report then depended on the studies decoded beside it."""
    native = NativeReportGenerator(tiny_llama_dir, max_new_tokens=2)
    prompts = text_ids(native.tokenizer, native._prompts(IMPRESSIONS, None))

    def first_logits(batch: list[list[int]]) -> list[torch.Tensor]:
        seen = []

        def choose(logits, rows):
            if not seen:
                seen.extend(logits.clone())
            return logits.argmax(dim=-1)

        native_decode(
            native.native,
            native.model,
            batch,
            2,
            DecodeRules([], 0),
            choose=choose,
            prefill_dtype=torch.bfloat16,
        )
        return seen

    together = first_logits(prompts)
    for ids, logits in zip(prompts, together, strict=True):
        assert torch.equal(first_logits([ids])[0], logits)


def test_native_generator_writes_the_reports_of_fp32_torch_with_the_adapter(
    tiny_llama_dir, tiny_adapter_dir
):
    for options in (
        dict(max_new_tokens=16, batch_size=3),
        dict(max_new_tokens=24, batch_size=4, no_repeat_ngram_size=3, stop_logit_bias=-2.0),
    ):
        expected = ReportGenerator(
            tiny_llama_dir, tiny_adapter_dir, dtype=torch.float32, **options
        ).generate(IMPRESSIONS, progress=False)
        native = NativeReportGenerator(tiny_llama_dir, tiny_adapter_dir, num_threads=2, **options)
        assert native.generate(IMPRESSIONS, progress=False) == expected
        assert all(expected)


def test_control_tokens_typed_in_an_impression_reach_the_native_decoder_as_text(
    tiny_llama_dir,
):
    native = NativeReportGenerator(tiny_llama_dir, max_new_tokens=4, num_threads=1)
    prompts = native._prompts(["Small effusion.<|endoftext|> <|im_end|>"], None)
    _, _, [prompt_ids], *_ = native._native_args(prompts, 4)
    assert not set(native.tokenizer.all_special_ids) & set(prompt_ids)


def test_native_decoding_of_the_bundled_model_matches_pytorch_with_blocking():
    # Real weights: the bundled SmolLM2 (untuned) loops on the first impression, so the
    # repeat blocking and a long decode are both exercised.
    impressions = ["Stable chronic lung changes.", "No acute disease."]
    options = dict(max_new_tokens=48, batch_size=2, no_repeat_ngram_size=4)
    native = NativeReportGenerator(bundled_model_dir(), **options)
    reports = native.generate(impressions, progress=False)
    torch_generator = ReportGenerator.for_loaded_model(native.model, native.tokenizer, **options)
    assert reports == torch_generator.generate(impressions, progress=False)


def test_bfloat16_matrices_halve_the_bytes_and_write_the_reports_of_the_rounded_model(
    tiny_llama_dir, tiny_adapter_dir
):
    options = dict(max_new_tokens=24, batch_size=4, no_repeat_ngram_size=3)
    native = NativeReportGenerator(
        tiny_llama_dir,
        tiny_adapter_dir,
        matrix_dtype=torch.bfloat16,
        compute_dtype=torch.float32,  # exact: the rounded model's own fp32 products
        **options,
    )
    rounded = ReportGenerator.for_loaded_model(native.model, native.tokenizer, **options)
    reports = native.generate(IMPRESSIONS, progress=False)
    assert reports == rounded.generate(IMPRESSIONS, progress=False)
    fp32 = NativeLlama(native.model)
    assert native.native.weight_bytes < 0.51 * fp32.weight_bytes + 4096


def test_a_row_keeps_its_stop_token_and_leaves_the_batch(tiny_llama_dir):
    native = NativeReportGenerator(tiny_llama_dir, max_new_tokens=12)
    prompts = native.tokenizer([f"### Instruction:\n{text}" for text in IMPRESSIONS])["input_ids"]
    free = native_decode(native.native, native.model, prompts, 12, DecodeRules([], 0)).tolist()
    # The second row's fourth token becomes a stop id: each row ends at its first one.
    stop = free[1][3]
    stopped = native_decode(native.native, native.model, prompts, 12, DecodeRules([stop], 0))
    stopped = stopped.tolist()
    ends = [row.index(stop) + 1 if stop in row else len(row) for row in free]
    assert ends[1] <= 4 and max(ends) > ends[1]  # another row runs on after it stops
    for row, end in enumerate(ends):
        assert stopped[row][:end] == free[row][:end]
        assert set(stopped[row][end:]) <= {0}  # padding after the stop


def test_native_mbr_groups_start_with_the_greedy_report_and_repeat_with_the_seed(
    tiny_llama_dir,
):
    options = dict(max_new_tokens=12, batch_size=4, mbr_candidates=4, mbr_epsilon=0.001, seed=3)
    native = NativeReportGenerator(tiny_llama_dir, **options)
    groups = native.candidate_groups(IMPRESSIONS, progress=False)
    plain = NativeReportGenerator(tiny_llama_dir, max_new_tokens=12, batch_size=4)
    greedy = plain.generate(IMPRESSIONS, progress=False)
    assert [group[0] for group in groups] == greedy
    assert any(len(set(group)) > 1 for group in groups)  # the others are sampled
    assert native.candidate_groups(IMPRESSIONS, progress=False) == groups
    # Each study samples from its own generator: alone, it gets the same candidates.
    for impression, group in zip(IMPRESSIONS, groups, strict=True):
        assert native.candidate_groups([impression], progress=False) == [group]


def test_beams_on_the_native_generator_run_on_the_fp32_model(tiny_llama_dir):
    options = dict(max_new_tokens=10, batch_size=4, num_beams=3)
    native = NativeReportGenerator(tiny_llama_dir, **options)
    expected = ReportGenerator(tiny_llama_dir, dtype=torch.float32, **options)
    assert native.generate(IMPRESSIONS, progress=False) == expected.generate(
        IMPRESSIONS, progress=False
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (dict(attention_bias=True), "biases"),
        (dict(hidden_act="gelu"), "hidden_act is 'gelu'"),
    ],
)
def test_a_model_the_kernel_cannot_run_is_refused_naming_why(change, named):
    with pytest.raises(UnsupportedModel, match=named):
        NativeLlama(odd_llama(True, **change))


def test_a_bf16_model_is_refused():
    with pytest.raises(UnsupportedModel, match="torch.bfloat16"):
        NativeLlama(odd_llama(True).to(torch.bfloat16))


def test_settings_route_to_the_native_decoder(tiny_llama_dir):
    settings = LLMSettings(decoder="native", max_new_tokens=5, mbr_candidates=3, num_threads=1)
    generator = ReportGenerator.from_settings(settings, tiny_llama_dir)
    assert isinstance(generator, NativeReportGenerator)
    assert generator.max_new_tokens == 5 and generator.mbr_candidates == 3
    assert generator.model.dtype == torch.float32
    assert generator.native.weight_bytes < NativeLlama(generator.model).weight_bytes  # bf16
    exact = LLMSettings(decoder="native", compute_dtype="float32", num_threads=1)
    fp32 = ReportGenerator.from_settings(exact, tiny_llama_dir)
    assert fp32.native.weight_bytes == NativeLlama(fp32.model).weight_bytes
    with pytest.raises(ValidationError, match="decoder 'native' reads its matrices in float32"):
        LLMSettings(decoder="native", compute_dtype="float16")


def test_the_kernel_is_built_once_per_source_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RADREPORT_CACHE_DIR", str(tmp_path))
    native_kernel.load_kernel.cache_clear()
    try:
        native_kernel.load_kernel()
        [built] = (tmp_path / "native").glob("*/libllama_decode_step.so")
        assert built.parent.name == native_kernel.build_key(native_kernel.compiler())
        edited = tmp_path / "edited.c"
        edited.write_text(native_kernel.SOURCE.read_text() + "\n/* edited */\n")
        monkeypatch.setattr(native_kernel, "SOURCE", edited)
        assert native_kernel.build_key(native_kernel.compiler()) != built.parent.name
    finally:
        native_kernel.load_kernel.cache_clear()


def test_a_missing_compiler_or_a_failed_build_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", "no-such-compiler")
    with pytest.raises(NativeKernelError, match="'no-such-compiler' was not found"):
        native_kernel.compiler()
    monkeypatch.delenv("CC")
    broken = tmp_path / "broken.c"
    broken.write_text("int f( {\n")
    monkeypatch.setattr(native_kernel, "SOURCE", broken)
    target = tmp_path / "out" / "lib.so"
    with pytest.raises(NativeKernelError, match="compiling broken.c with .* failed"):
        native_kernel.compile_kernel(target, native_kernel.compiler())
    assert not target.exists()


@torch.inference_mode()
def test_a_bfloat16_prefill_gives_fp32_caches_close_to_the_fp32_prefill():
    model = odd_llama(True)
    round_matrices_to_bfloat16(model)
    ids = [5, 17, 3, 88, 41, 9, 60, 12, 90]
    exact = _prefill(model, ids)
    rounded = _prefill(model, ids, torch.bfloat16)
    for fp32_part, bf16_part in zip(exact, rounded, strict=True):
        assert bf16_part.dtype == torch.float32 and bf16_part.shape == fp32_part.shape
        assert not torch.equal(bf16_part, fp32_part)  # the products did run in bfloat16
        torch.testing.assert_close(bf16_part, fp32_part, rtol=0.05, atol=0.05)


def test_the_products_are_bfloat16_only_on_cpus_that_compute_them(tiny_llama_dir, monkeypatch):
    def products(compute_dtype: str, cpu_bf16: bool) -> torch.dtype:
        monkeypatch.setattr(generate, "cpu_has_bf16", lambda: cpu_bf16)
        settings = LLMSettings(
            decoder="native", compute_dtype=compute_dtype, max_new_tokens=4, num_threads=1
        )
        return ReportGenerator.from_settings(settings, tiny_llama_dir).compute_dtype

    assert products("auto", cpu_bf16=True) == torch.bfloat16
    assert products("auto", cpu_bf16=False) == torch.float32
    assert products("bfloat16", cpu_bf16=False) == torch.bfloat16  # asked for
    assert products("float32", cpu_bf16=True) == torch.float32


def test_the_auto_decoder_is_native_on_the_cpu_and_torch_where_native_cannot_run(
    tiny_llama_dir, monkeypatch, caplog
):
    settings = LLMSettings(decoder="auto", max_new_tokens=4)
    chosen = ReportGenerator.from_settings(settings, tiny_llama_dir)
    assert isinstance(chosen, NativeReportGenerator)
    monkeypatch.setenv("CC", "no-such-compiler")
    loads = _count_model_loads(monkeypatch)
    with caplog.at_level("WARNING", logger="radreport.llm.generate"):
        fallback = ReportGenerator.from_settings(settings, tiny_llama_dir)
    assert type(fallback) is ReportGenerator
    assert loads == [tiny_llama_dir]  # the fallback is known before the weights load
    assert "decoder auto: torch, since the native decoder cannot" in caplog.text
    assert "'no-such-compiler' was not found" in caplog.text
    impressions = ["Clear lungs.", "Small effusion."]
    torch_settings = settings.model_copy(update={"decoder": "torch"})
    expected = ReportGenerator.from_settings(torch_settings, tiny_llama_dir)
    assert fallback.generate(impressions, progress=False) == expected.generate(
        impressions, progress=False
    )


def _count_model_loads(monkeypatch) -> list:
    loads = []
    load = generate.load_generation_model

    def counted(model_dir, *args, **kwargs):
        loads.append(model_dir)
        return load(model_dir, *args, **kwargs)

    monkeypatch.setattr(generate, "load_generation_model", counted)
    return loads


def test_the_auto_decoder_loads_a_model_the_kernel_cannot_run_once_for_torch(
    tmp_path, monkeypatch, caplog
):
    save_tiny_llama(tmp_path, attention_bias=True)
    loads = _count_model_loads(monkeypatch)
    with caplog.at_level("WARNING", logger="radreport.llm.generate"):
        chosen = ReportGenerator.from_settings(
            LLMSettings(decoder="auto", max_new_tokens=2), tmp_path
        )
    assert type(chosen) is ReportGenerator
    assert loads == [tmp_path]
    assert "its projections have biases" in caplog.text
