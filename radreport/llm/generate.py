"""Detailed reports from impressions: batched greedy, beam or MBR decoding with the KV cache.

Used by evaluation, fusion and serving. Greedy decoding runs a lean loop of its own: it skips
`generate()`'s per-step bookkeeping (logits processors, stopping criteria, input preparation),
which cost a small model on CPU 5 to 14 % more CPU time per token
(benchmarks/results/generation.md). Beam search, rarer and bookkeeping-heavy by nature, uses
transformers' implementation. MBR decoding (`mbr_candidates` > 1) runs the same loop with
sampled rows beside the greedy one and keeps the candidate the others agree with most
(radreport.llm.mbr).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteriaList

from radreport.data.alpaca import (
    encode_texts,
    format_prompt,
    opens_section,
    response_text,
    template_text,
    text_ids,
)
from radreport.llm.cache_budget import (
    AUTO_MEMORY_SHARE,
    auto_batch_tokens,
    available_memory_bytes,
    cache_bytes_per_position,
)
from radreport.llm.decode_rows import Choose, DecodeRows
from radreport.llm.decode_rules import DecodeRules
from radreport.llm.device import cpu_has_bf16
from radreport.llm.grouped_decode_attention import register_sdpa_grouped_decode
from radreport.llm.mbr import select_reports
from radreport.llm.preallocated_cache import preallocated_cache
from radreport.llm.report_shape import ReportShape
from radreport.llm.section_stop import SectionStop, SectionStopCriteria
from radreport.llm.settings import LLMSettings
from radreport.llm.tokenizer_checks import ready_tokenizer

logger = logging.getLogger(__name__)

Example = tuple[str, str]
BatchTokens = int | Literal["auto"] | None

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
_DEFAULT_MBR_EPSILON = LLMSettings.model_fields["mbr_epsilon"].default


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the hardware computes it natively, else fp32 (fp16 on old GPUs).

    Decoding one token reads every weight once, so halving the bytes per weight nearly
    doubles decode speed; emulated bf16 on a CPU without it would be slower than fp32.
    """
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_bf16() else torch.float32


def load_generation_model(
    model_dir: str | Path,
    adapter_dir: str | Path | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
):
    """(model, tokenizer) ready to decode: eval mode, left padding, adapter merged if possible,
    decode steps attending grouped key/value heads without copying them
    (radreport.llm.grouped_decode_attention).

    `model_dir` is a base model or merged folder (or a hub id); `adapter_dir` a LoRA adapter
    trained on it. The adapter is merged into the weights in memory, so decoding pays no
    per-layer LoRA matmuls, except on a quantized base, where merging would re-quantize the
    weights and lose precision.
    """
    device = torch.device(device) if device is not None else default_device()
    dtype = dtype or default_dtype(device)
    # The adapter folder's tokenizer is the one training used, when it saved one.
    tokenizer_dir = adapter_dir if _has_tokenizer(adapter_dir) else model_dir
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    tokenizer.padding_side = "left"  # decoder-only: every prompt must end at the last column
    tokenizer = ready_tokenizer(tokenizer, str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(
        model_dir,
        dtype=dtype,
        device_map=str(device),
        attn_implementation=register_sdpa_grouped_decode(),
    )
    if adapter_dir is not None:
        model = _attach_adapter(model, adapter_dir)
    return model.eval(), tokenizer


def _has_tokenizer(folder: str | Path | None) -> bool:
    return folder is not None and (Path(folder) / "tokenizer_config.json").is_file()


def _attach_adapter(model, adapter_dir: str | Path):
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, str(adapter_dir))
    if getattr(model.base_model.model, "hf_quantizer", None) is not None:
        return model
    return model.merge_and_unload()


def stop_token_ids(model, tokenizer) -> list[int]:
    """Every id that ends a report: the tokenizer's EOS (appended in training) and the model's.

    They differ for some instruct models (a chat end-of-turn token vs a document end); a
    report must stop at whichever the model emits.
    """
    configured = model.generation_config.eos_token_id
    if configured is None:
        configured = []
    elif isinstance(configured, int):
        configured = [configured]
    return sorted({tokenizer.eos_token_id, *configured} - {None})


def _ended_by_a_rule(text: str, shape: ReportShape | None) -> bool:
    """Whether a row's text shows a stop other than the model's own: a template section it
    opened, or a mark of a second report."""
    return opens_section(text) or (
        shape is not None and shape.report_end(text.lstrip()) is not None
    )


@torch.inference_mode()
def greedy_decode(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    rules: DecodeRules,
) -> torch.Tensor:
    """New token ids (batch, <= max_new_tokens) of a left-padded batch, the rules' pad id
    after a stop.

    Each row stops independently by the `rules` (decode_rules); decoding ends when every row
    has stopped or the budget is spent.
    """
    return _decode_loop(model, input_ids, attention_mask, max_new_tokens, rules, 1, most_probable)


def most_probable(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    return logits.argmax(-1)


@torch.inference_mode()
def sample_candidates(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    rules: DecodeRules,
    num_candidates: int,
    epsilon: float,
    generators: Sequence[torch.Generator],
) -> torch.Tensor:
    """`num_candidates` continuations per prompt, (batch * num_candidates, <= max_new_tokens).

    Rows come grouped by prompt. The first of each group is the greedy decode, the others
    are epsilon-sampled (tokens below probability `epsilon` are never drawn), the candidate
    source that suits MBR selection best (Freitag et al. 2023); prompt i's draws come from
    `generators[i]`. Each prompt is encoded once and its KV cache copied to its candidates,
    so a long retrieval prompt costs one prefill.
    """
    if num_candidates < 2:
        raise ValueError(f"sampling needs at least 2 candidates, got {num_candidates}")
    choose = epsilon_sampler(num_candidates, epsilon, generators)
    return _decode_loop(
        model, input_ids, attention_mask, max_new_tokens, rules, num_candidates, choose
    )


def epsilon_sampler(
    num_candidates: int, epsilon: float, generators: Sequence[torch.Generator]
) -> Choose:
    """MBR's `choose`: the first row of each group of `num_candidates` takes the most probable
    token, the others draw one of probability at least `epsilon` from their prompt's own
    generator (group i draws from `generators[i]`), so that what a prompt's candidates draw
    does not depend on the other prompts of the batch, nor on when their rows finish."""

    def choose(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        probabilities = logits.float().softmax(-1)
        # The most probable token always stays drawable: a flat distribution still yields one.
        highest = probabilities.max(-1, keepdim=True).values
        weights = probabilities * ((probabilities >= epsilon) | (probabilities == highest))
        chosen = most_probable(logits, rows)
        for position, row in enumerate(rows.tolist()):
            if row % num_candidates:  # a sampled row; the group's first is greedy
                generator = generators[row // num_candidates]
                chosen[position] = torch.multinomial(weights[position], 1, generator=generator)[0]
        return chosen

    return choose


def study_generators(
    impressions: Sequence[str], seed: int, device: torch.device
) -> list[torch.Generator]:
    """One random generator per study, seeded from `seed` and its impression: a study's MBR
    candidates are the same alone, in any batch and in any file, and two decodings of it
    (another engine, other retrieved examples) draw the same random numbers, so that
    their comparison is not blurred by the draw."""
    generators = []
    for impression in impressions:
        # As its prompt holds it: impressions that differ only in spaces around them share
        # a prompt, and must share its draws (the first took the second's otherwise).
        shown = template_text(impression)
        digest = hashlib.blake2b(f"{seed}\0{shown}".encode(), digest_size=8).digest()
        generators.append(
            torch.Generator(device).manual_seed(int.from_bytes(digest, "little") >> 1)
        )
    return generators


def _decode_loop(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    rules: DecodeRules,
    copies: int,
    choose: Choose,
) -> torch.Tensor:
    """The token loop behind greedy and sampled decoding: prefill each prompt once, give its
    cache to `copies` rows, then let `choose(logits, rows)` pick the next token of each
    unfinished row (`rows`: their indices in the output).

    A row that stops leaves the batch: with long prompts a decode step's cost is mostly
    reading the rows' KV caches, so finished rows would keep costing until the longest ends.
    """
    device = input_ids.device
    padded = not bool(attention_mask.all())
    # Left padding shifts each prompt right; positions must count real tokens only, or a
    # padded prompt would be encoded at different positions than the same prompt alone.
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    # Every position the batch can reach, allocated once: DynamicCache would copy each
    # layer's cache at every step to append one position.
    cache = preallocated_cache(model.config, input_ids.shape[1] + max_new_tokens)
    step_ids, step_positions = input_ids, positions
    decoding = DecodeRows(input_ids.shape[0] * copies, max_new_tokens, rules, choose, device)
    for step in range(max_new_tokens):
        # Without padding the mask is all ones: leaving it out lets attention take the plain
        # causal path instead of building a mask every step.
        logits = model(
            input_ids=step_ids,
            attention_mask=attention_mask if padded else None,
            position_ids=step_positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1]
        if step == 0 and copies > 1:
            logits = logits.repeat_interleave(copies, dim=0)
            cache.batch_repeat_interleave(copies)
            step_positions = step_positions.repeat_interleave(copies, dim=0)
            attention_mask = attention_mask.repeat_interleave(copies, dim=0)
        next_ids, going = decoding.choose(logits)
        if step == max_new_tokens - 1 or not bool(going.any()):
            break
        step_ids = next_ids[:, None]
        step_positions = step_positions[:, -1:] + 1
        if padded:
            ones = attention_mask.new_ones(attention_mask.shape[0], 1)
            attention_mask = torch.cat([attention_mask, ones], -1)
        if not bool(going.all()):
            kept = going.nonzero().squeeze(-1)
            cache.batch_select_indices(kept)
            step_ids, step_positions = step_ids[kept], step_positions[kept]
            if padded:
                attention_mask = attention_mask[kept]
            decoding.keep(kept)
    return decoding.result()


@torch.inference_mode()
def beam_decode(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    rules: DecodeRules,
    num_beams: int,
) -> torch.Tensor:
    """New token ids (batch, <= max_new_tokens) of the best beam per row, by the `rules` but
    for n-gram blocking (transformers' own would count the prompt's n-grams too)."""
    criteria = []
    if rules.section_stop is not None:
        criteria.append(SectionStopCriteria(rules.section_stop, input_ids.shape[1]))
    bias = rules.stop_logit_bias
    sequence_bias = {(token,): bias for token in rules.stop_ids} if bias else None
    output = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        do_sample=False,
        early_stopping=True,
        eos_token_id=list(rules.stop_ids),
        pad_token_id=rules.pad_id,
        stopping_criteria=StoppingCriteriaList(criteria),
        sequence_bias=sequence_bias,
    )
    return output[:, input_ids.shape[1] :]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


class PromptTooLong(ValueError):
    """A prompt that leaves the model no room to write: `index` is its impression's position
    in the input, so callers can name the row."""

    def __init__(self, index: int, tokens: int, context: int):
        self.index, self.tokens, self.context = index, tokens, context
        super().__init__(
            f"the prompt is {tokens} tokens (impression and retrieved examples) and the "
            f"model's context is {context}: no room left to write a report"
        )


class ReportGenerator:
    """A loaded model that writes detailed reports for batches of impressions."""

    def __init__(
        self,
        model_dir: str | Path,
        adapter_dir: str | Path | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        max_new_tokens: int = 256,
        num_beams: int = 1,
        batch_size: int = 16,
        batch_tokens: BatchTokens = "auto",
        no_repeat_ngram_size: int = 0,
        mbr_candidates: int = 0,
        mbr_epsilon: float = _DEFAULT_MBR_EPSILON,
        mbr_example_references: bool = False,
        mbr_impression_weight: float = 0.0,
        seed: int = 0,
        stop_logit_bias: float = 0.0,
    ):
        model, tokenizer = load_generation_model(model_dir, adapter_dir, device, dtype)
        self._bind(
            model,
            tokenizer,
            max_new_tokens,
            num_beams,
            batch_size,
            no_repeat_ngram_size,
            mbr_candidates=mbr_candidates,
            mbr_epsilon=mbr_epsilon,
            mbr_example_references=mbr_example_references,
            mbr_impression_weight=mbr_impression_weight,
            seed=seed,
            stop_logit_bias=stop_logit_bias,
            batch_tokens=batch_tokens,
        )

    def _bind(
        self,
        model,
        tokenizer,
        max_new_tokens: int,
        num_beams: int,
        batch_size: int,
        no_repeat_ngram_size: int,
        *,
        mbr_candidates: int = 0,
        mbr_epsilon: float = _DEFAULT_MBR_EPSILON,
        mbr_example_references: bool = False,
        mbr_impression_weight: float = 0.0,
        seed: int = 0,
        stop_ids: list[int] | None = None,
        pad_id: int | None = None,
        context_length: int | None = None,
        stop_logit_bias: float = 0.0,
        batch_tokens: BatchTokens = "auto",
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        if context_length is None:
            config = getattr(model, "config", None)
            context_length = getattr(config, "max_position_embeddings", None)
        # Positions the model was trained for: a prompt must fit with room to write, and
        # decoding stops there (beyond it a RoPE model writes noise).
        self.context_length = context_length
        # Every decoder stops, pads, blocks and biases by these; a study of one rule replaces
        # them (dataclasses.replace), the decoders never see a rule left out.
        self.rules = DecodeRules(
            stop_ids if stop_ids is not None else stop_token_ids(model, tokenizer),
            pad_id if pad_id is not None else tokenizer.pad_token_id,
            no_repeat_ngram_size,
            SectionStop(tokenizer),
            stop_logit_bias,
        )
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams
        self.batch_size = batch_size
        # The most key/value cache positions one batch holds (_batches); "auto" is sized
        # from the memory available when the generator first decodes, None is no cap.
        self.batch_tokens = batch_tokens
        self.mbr_candidates = mbr_candidates  # > 1: MBR decoding (num_beams 1)
        self.mbr_epsilon = mbr_epsilon
        self.mbr_example_references = mbr_example_references
        self.mbr_impression_weight = mbr_impression_weight
        self.seed = seed  # MBR's sampling
        # The reports of rows the token budget cut, of the current `generate` call, and which
        # of the last call's reports were among them (in its order).
        self._unended: set[str] = set()
        self.last_out_of_room: tuple[bool, ...] = ()

    @property
    def reports_out_of_room(self) -> int:
        """How many of the last `generate` call's reports ran out of room."""
        return sum(self.last_out_of_room)

    def decoding_engine(self) -> dict[str, str]:
        """What writes the reports, where and in what precision: `decoder: auto` chooses by
        machine, and the precision can change tokens, so a record of reports says it."""
        return {
            "decoder": "torch",
            "device": self.model.device.type,
            "dtype": dtype_name(self.model.dtype),
        }

    def follow_report_shape(self, shape: ReportShape) -> ReportGenerator:
        """Reports end before any second report begun past their end, by the marks `shape`
        (learned from the training reports) gives: rows stop there and the text is cut."""
        self.rules = replace(self.rules, section_stop=SectionStop(self.tokenizer, shape))
        return self

    @classmethod
    def for_loaded_model(
        cls,
        model,
        tokenizer,
        *,
        max_new_tokens: int = 256,
        num_beams: int = 1,
        batch_size: int = 16,
        batch_tokens: BatchTokens = "auto",
        no_repeat_ngram_size: int = 0,
    ) -> ReportGenerator:
        """A generator around a model already in memory (e.g. the one being trained).
        The caller puts it in eval mode and gives a left-padding tokenizer."""
        generator = cls.__new__(cls)
        generator._bind(
            model,
            tokenizer,
            max_new_tokens,
            num_beams,
            batch_size,
            no_repeat_ngram_size,
            batch_tokens=batch_tokens,
        )
        return generator

    @classmethod
    def from_settings(
        cls,
        settings: LLMSettings,
        model_dir: str | Path,
        adapter_dir: str | Path | None = None,
    ) -> ReportGenerator:
        """Decoding budget, beams, batches and dtype from the LLM settings ("auto" dtype: by
        device).

        With `decoder: onnxruntime` the generator decodes on an ONNX Runtime GenAI export of
        the model (radreport.llm.onnx_generate); with `decoder: native` its greedy and MBR
        decode steps run in our C kernel (radreport.llm.native_generate); `decoder: auto` is
        native where it can run, else torch. `num_threads`, where set, is PyTorch's thread
        count from here on (prompt encoding, torch decoding), as it is in training.
        """
        settings.require_token_budgets("max_new_tokens")
        if settings.num_threads is not None:
            torch.set_num_threads(settings.num_threads)
        if settings.decoder == "auto":
            return cls._from_auto_decoder(settings, model_dir, adapter_dir)
        if settings.decoder == "onnxruntime":
            from radreport.llm.onnx_export import onnx_model_dir
            from radreport.llm.onnx_generate import OnnxReportGenerator

            # Exported once per model and adapter content, then reused.
            return OnnxReportGenerator(
                onnx_model_dir(model_dir, adapter_dir),
                max_new_tokens=settings.max_new_tokens,
                batch_size=settings.generation_batch_size,
                batch_tokens=settings.generation_batch_tokens,
                no_repeat_ngram_size=settings.no_repeat_ngram_size,
                num_threads=settings.num_threads,
                stop_logit_bias=settings.stop_logit_bias,
            )
        options = dict(
            max_new_tokens=settings.max_new_tokens,
            num_beams=settings.num_beams,
            batch_size=settings.generation_batch_size,
            batch_tokens=settings.generation_batch_tokens,
            no_repeat_ngram_size=settings.no_repeat_ngram_size,
            mbr_candidates=settings.mbr_candidates,
            mbr_epsilon=settings.mbr_epsilon,
            mbr_example_references=settings.mbr_example_references,
            mbr_impression_weight=settings.mbr_impression_weight,
            seed=settings.seed,
            stop_logit_bias=settings.stop_logit_bias,
        )
        if settings.decoder == "native":
            from radreport.llm.native_generate import NativeReportGenerator

            # bfloat16 matrices unless fp32 is asked for (float16 is refused by the settings):
            # the kernel widens them to fp32 on CPUs without bf16 instructions, so half the
            # bytes per step costs no emulation anywhere. The products are bfloat16 where
            # asked for, and with "auto" where the CPU computes bf16 natively
            # (NativeReportGenerator's rule).
            matrix_dtype = torch.float32 if settings.compute_dtype == "float32" else torch.bfloat16
            compute_dtype = torch.bfloat16 if settings.compute_dtype == "bfloat16" else None
            return NativeReportGenerator(
                model_dir,
                adapter_dir,
                num_threads=settings.num_threads,
                matrix_dtype=matrix_dtype,
                compute_dtype=compute_dtype,
                **options,
            )
        dtype = _DTYPES.get(settings.compute_dtype)  # None for "auto"
        return cls(model_dir, adapter_dir, dtype=dtype, **options)

    @classmethod
    def _from_auto_decoder(
        cls,
        settings: LLMSettings,
        model_dir: str | Path,
        adapter_dir: str | Path | None,
    ) -> ReportGenerator:
        """The native decoder on the CPU, where it wrote IU X-Ray reports 3.2-3.9x faster
        than torch (1.46x since torch's decode steps stopped copying the cache), with the
        same scores within MBR's seed-to-seed spread (three seeds on
        189 studies, BENCHMARKS.md); torch on a GPU, for a model the kernel does not run
        (a quantized or non-Llama model), or without a C compiler."""
        from radreport.llm.native_generate import check_native_decoder_can_load
        from radreport.llm.native_kernel import NativeDecoderUnavailable

        if default_device().type == "cpu" and settings.compute_dtype != "float16":
            native = settings.model_copy(update={"decoder": "native"})
            try:
                check_native_decoder_can_load(model_dir)
                return cls.from_settings(native, model_dir, adapter_dir)
            except NativeDecoderUnavailable as exc:
                logger.warning("decoder auto: torch, since the native decoder cannot: %s", exc)
        torch_settings = settings.model_copy(update={"decoder": "torch"})
        return cls.from_settings(torch_settings, model_dir, adapter_dir)

    def generate(
        self,
        impressions: Sequence[str],
        examples: Sequence[Sequence[Example]] | None = None,
        batch_size: int | None = None,
        num_beams: int | None = None,
        max_new_tokens: int | None = None,
        progress: bool = True,
    ) -> list[str]:
        """One report per impression, in input order.

        `examples[i]` are retrieved (impression, report) pairs shown in the i-th prompt.
        Prompts are batched by token length, so a batch carries little padding, and a batch
        holds at most `batch_size` prompts and `batch_tokens` cache positions. With MBR
        decoding a batch of `batch_size` prompts decodes `batch_size * mbr_candidates` rows;
        each study samples from its own generator, seeded by `seed` and its impression, so
        it gets the same report alone or among any others. With `mbr_example_references`
        the reports of `examples[i]` also count as pseudo-references in the i-th selection
        (they are never returned themselves); with `mbr_impression_weight` above 0 the
        selection also weighs how well each candidate's findings agree with its impression's.
        """
        num_beams = num_beams or self.num_beams
        budget = max_new_tokens or self.max_new_tokens
        self._unended = set()
        if self.mbr_candidates > 1 and num_beams == 1:
            groups = self.candidate_groups(impressions, examples, batch_size, budget, progress)
            reports = select_reports(
                groups,
                examples if self.mbr_example_references else None,
                impressions,
                self.mbr_impression_weight,
            )
        else:
            reports = self._decode_in_batches(
                self._prompts(impressions, examples),
                batch_size,
                budget,
                progress,
                lambda prompts: self._generate_batch(prompts, num_beams, budget),
                num_beams=num_beams,
            )
        self._say_unended(reports, budget)
        return reports

    def _say_unended(self, reports: list[str], budget: int) -> None:
        """A warning when reports were cut by the token budget (or the context's end) rather
        than ended by the model: nothing in their text says so."""
        self.last_out_of_room = tuple(report in self._unended for report in reports)
        if unended := self.reports_out_of_room:
            logger.warning(
                "%d of %d reports ran out of room before they ended (max_new_tokens %d, or the "
                "model's context) and are cut there; llm.max_new_tokens or --max-new-tokens "
                "gives them more",
                unended,
                len(reports),
                budget,
            )

    def candidate_groups(
        self,
        impressions: Sequence[str],
        examples: Sequence[Sequence[Example]] | None = None,
        batch_size: int | None = None,
        max_new_tokens: int | None = None,
        progress: bool = True,
    ) -> list[list[str]]:
        """MBR's `mbr_candidates` reports per impression, in input order, each group led by
        its greedy decode; what `generate` selects from, for studying other selection rules.
        Each study samples from its own generator (`study_generators`)."""
        if self.mbr_candidates < 2:
            raise ValueError(f"MBR needs at least 2 candidates, got {self.mbr_candidates}")
        budget = max_new_tokens or self.max_new_tokens
        prompts = self._prompts(impressions, examples)
        impression_of = dict(zip(prompts, impressions, strict=True))  # a prompt holds one
        return self._decode_in_batches(
            prompts,
            batch_size,
            budget,
            progress,
            lambda batch: self._candidate_batch(
                batch,
                budget,
                study_generators([impression_of[p] for p in batch], self.seed, self.model.device),
            ),
            copies=self.mbr_candidates,
        )

    def _prompts(
        self, impressions: Sequence[str], examples: Sequence[Sequence[Example]] | None
    ) -> list[str]:
        if examples is not None and len(examples) != len(impressions):
            raise ValueError(f"{len(examples)} example lists for {len(impressions)} impressions")
        return [
            format_prompt(impression, examples[index] if examples is not None else ())
            for index, impression in enumerate(impressions)
        ]

    def _decode_in_batches(
        self,
        prompts: list[str],
        batch_size: int | None,
        max_new_tokens: int,
        progress: bool,
        decode_batch: Callable[[list[str]], list],
        copies: int = 1,
        num_beams: int = 1,
    ) -> list:
        """`decode_batch`'s output for each prompt, in input order; each prompt decodes as
        `copies` rows (MBR's candidates) of `num_beams` beams."""
        outputs: list = [None] * len(prompts)
        bar = tqdm(total=len(prompts), desc="generating", unit="report", disable=not progress)
        with bar:
            lengths = self._prompt_lengths(prompts)
            batches = self._batches(
                lengths, batch_size or self.batch_size, max_new_tokens, copies, num_beams
            )
            for batch in batches:
                for index, output in zip(
                    batch, decode_batch([prompts[index] for index in batch]), strict=True
                ):
                    outputs[index] = output
                bar.update(len(batch))
        return outputs

    def prompts_too_long(
        self,
        impressions: Sequence[str],
        examples: Sequence[Sequence[Example]] | None = None,
    ) -> list[PromptTooLong]:
        """One PromptTooLong per impression whose prompt leaves no room to write, in input
        order: what `generate` would refuse, found without decoding anything."""
        lengths = self._token_counts(self._prompts(impressions, examples))
        return self._too_long(lengths)

    def _token_counts(self, prompts: list[str]) -> list[int]:
        return [len(ids) for ids in text_ids(self.tokenizer, prompts)]

    def _too_long(self, lengths: list[int]) -> list[PromptTooLong]:
        if self.context_length is None:
            return []
        return [
            PromptTooLong(index, length, self.context_length)
            for index, length in enumerate(lengths)
            if length >= self.context_length
        ]

    def _prompt_lengths(self, prompts: list[str]) -> list[int]:
        """Token count of each prompt; PromptTooLong for the first that fills the context."""
        lengths = self._token_counts(prompts)
        if too_long := self._too_long(lengths):
            raise too_long[0]
        return lengths

    def _batches(
        self,
        lengths: list[int],
        batch_size: int,
        max_new_tokens: int,
        copies: int = 1,
        num_beams: int = 1,
    ) -> list[list[int]]:
        """Prompt indices by batch, longest first: a batch that does not fit in memory fails
        at once, not at the end. A prompt too close to the context's end to write
        `max_new_tokens` decodes alone: in a batch the longest prompt's room caps every
        row (_room_to_write), and a study's report would depend on its batch.

        A batch takes the next prompts while it holds at most `batch_size` of them and its
        rows' caches at most `batch_tokens` positions (_cache_positions): long prompts
        decode in smaller batches, so memory stays bounded whatever their length."""
        order = sorted(range(len(lengths)), key=lambda index: -lengths[index])
        cramped = [
            index
            for index in order
            if self.context_length is not None
            and self.context_length - lengths[index] < max_new_tokens
        ]
        batches = [[index] for index in cramped]
        limit = self._batch_token_limit()
        batch: list[int] = []
        for index in order[len(cramped) :]:  # the cramped prompts are the longest
            grown = [lengths[i] for i in [*batch, index]]
            if batch and (
                len(grown) > batch_size
                or self._cache_positions(grown, max_new_tokens, copies, num_beams) > limit
            ):
                batches.append(batch)
                batch = []
            batch.append(index)
        if batch:
            batches.append(batch)
        for lone in (batch[0] for batch in batches if len(batch) == 1):
            needed = self._cache_positions([lengths[lone]], max_new_tokens, copies, num_beams)
            if needed > limit:  # it decodes alone, and may still run out of memory
                logger.warning(
                    "a %d-token prompt's rows hold %d cache positions, more than "
                    "generation_batch_tokens (%d); it decodes alone",
                    lengths[lone],
                    needed,
                    limit,
                )
        return batches

    def _cache_positions(
        self, lengths: list[int], max_new_tokens: int, copies: int, num_beams: int
    ) -> int:
        """Key/value positions a batch of prompts with these token `lengths` holds at its
        end: every row (a prompt's `copies` times `num_beams`) keeps the longest prompt's
        padded positions and the ones it writes."""
        room = self._room_to_write(max(lengths), max_new_tokens)
        return len(lengths) * copies * num_beams * (max(lengths) + room)

    def cache_bytes_per_position(self) -> int:
        """Bytes a row's keys and values take per position, in the model's own dtype."""
        return cache_bytes_per_position(self.model.config, self.model.dtype.itemsize)

    def _batch_token_limit(self) -> float:
        """`batch_tokens` as a number of positions (inf: no cap); "auto" is sized once, from
        the memory available when this generator first decodes (radreport.llm.cache_budget)."""
        if self.batch_tokens is None:
            return float("inf")
        if self.batch_tokens == "auto":
            per_position = self.cache_bytes_per_position()
            device = self.model.device if self.model is not None else torch.device("cpu")
            available = available_memory_bytes(device)
            self.batch_tokens = auto_batch_tokens(available, per_position)
            logger.info(
                "decode batches hold at most %d prompts and %d cache positions (%.0f %% of "
                "%.1f GiB available at %d bytes a position)",
                self.batch_size,
                self.batch_tokens,
                100 * AUTO_MEMORY_SHARE,
                available / 2**30,
                per_position,
            )
        return self.batch_tokens

    def _decode_args(self, prompts: list[str], max_new_tokens: int) -> tuple:
        encoded = encode_texts(self.tokenizer, prompts, padding=True, return_tensors="pt").to(
            self.model.device
        )
        return (
            self.model,
            encoded["input_ids"],
            encoded["attention_mask"],
            self._room_to_write(encoded["input_ids"].shape[1], max_new_tokens),
            self.rules,
        )

    def _room_to_write(self, longest_prompt: int, max_new_tokens: int) -> int:
        """New tokens a batch may decode: positions count real tokens only, so the longest
        prompt sets the room left in the context."""
        if self.context_length is None:
            return max_new_tokens
        return min(max_new_tokens, self.context_length - longest_prompt)

    def _generate_batch(self, prompts: list[str], num_beams: int, max_new_tokens: int) -> list[str]:
        decode_args = self._decode_args(prompts, max_new_tokens)
        if num_beams > 1:
            new_ids = beam_decode(*decode_args, num_beams)
        else:
            new_ids = greedy_decode(*decode_args)
        return [self._text_before_stop(row) for row in new_ids.tolist()]

    def _candidate_batch(
        self, prompts: list[str], max_new_tokens: int, generators: list[torch.Generator]
    ) -> list[list[str]]:
        n = self.mbr_candidates
        new_ids = sample_candidates(
            *self._decode_args(prompts, max_new_tokens), n, self.mbr_epsilon, generators
        )
        texts = [self._text_before_stop(row) for row in new_ids.tolist()]
        return [texts[start : start + n] for start in range(0, len(texts), n)]

    def _text_before_stop(self, token_ids: list[int]) -> str:
        stop = next((i for i, token in enumerate(token_ids) if token in self.rules.stop_ids), None)
        # No "clean-up" of spaces: it is meant for WordPiece and deletes real spaces in BPE text.
        text = self.tokenizer.decode(
            token_ids[:stop], skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        report = response_text(text)
        section_stop = self.rules.section_stop
        shape = section_stop.shape if section_stop is not None else None
        if shape is not None:
            report = shape.cut(report)
        if stop is None and not _ended_by_a_rule(text, shape):
            # Neither the model nor a rule ended the row: the budget did.
            self._unended.add(report)
        return report
