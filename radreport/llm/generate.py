"""Detailed reports from impressions: batched greedy or beam decoding with the KV cache.

Used by evaluation, fusion and serving. Greedy decoding runs a lean loop of its own: it skips
`generate()`'s per-step bookkeeping (logits processors, stopping criteria, input preparation),
which cost a small model on CPU 5 to 14 % more CPU time per token
(benchmarks/results/generation.md). Beam search, rarer and bookkeeping-heavy by nature, uses
transformers' implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from radreport.data.alpaca import format_prompt
from radreport.llm.device import cpu_has_bf16
from radreport.llm.repeat_blocking import RepeatedNgramBlocker
from radreport.llm.settings import LLMSettings

Example = tuple[str, str]

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


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
    """(model, tokenizer) ready to decode: eval mode, left padding, adapter merged if possible.

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
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, device_map=str(device))
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


@torch.inference_mode()
def greedy_decode(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    stop_ids: Sequence[int],
    pad_id: int,
    no_repeat_ngram_size: int = 0,
) -> torch.Tensor:
    """New token ids (batch, <= max_new_tokens) of a left-padded batch, `pad_id` after a stop.

    Each row stops independently at its first stop id (kept in the output); decoding ends
    when every row has stopped or the budget is spent. `no_repeat_ngram_size` > 0 keeps each
    row from repeating an n-gram of its own generated text (see repeat_blocking).
    """
    batch = input_ids.shape[0]
    padded = not bool(attention_mask.all())
    # Left padding shifts each prompt right; positions must count real tokens only, or a
    # padded prompt would be encoded at different positions than the same prompt alone.
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    stop_ids = torch.tensor(stop_ids, dtype=torch.long, device=input_ids.device)
    cache = DynamicCache(config=model.config)
    step_ids, step_positions = input_ids, positions
    finished = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
    blocker = RepeatedNgramBlocker(batch, no_repeat_ngram_size) if no_repeat_ngram_size else None
    generated = []
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
        if blocker is not None:
            logits = blocker.block(logits.float())
        next_ids = logits.argmax(-1).masked_fill(finished, pad_id)
        if blocker is not None:
            blocker.append(next_ids.tolist())
        generated.append(next_ids)
        finished |= torch.isin(next_ids, stop_ids)
        if step == max_new_tokens - 1 or bool(finished.all()):
            break
        step_ids = next_ids[:, None]
        step_positions = step_positions[:, -1:] + 1
        if padded:
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, 1)], -1)
    return torch.stack(generated, dim=1)


@torch.inference_mode()
def beam_decode(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    stop_ids: Sequence[int],
    pad_id: int,
    num_beams: int,
) -> torch.Tensor:
    """New token ids (batch, <= max_new_tokens) of the best beam per row."""
    output = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        do_sample=False,
        early_stopping=True,
        eos_token_id=list(stop_ids),
        pad_token_id=pad_id,
    )
    return output[:, input_ids.shape[1] :]


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
        no_repeat_ngram_size: int = 0,
    ):
        model, tokenizer = load_generation_model(model_dir, adapter_dir, device, dtype)
        self._bind(model, tokenizer, max_new_tokens, num_beams, batch_size, no_repeat_ngram_size)

    def _bind(
        self,
        model,
        tokenizer,
        max_new_tokens: int,
        num_beams: int,
        batch_size: int,
        no_repeat_ngram_size: int,
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.stop_ids = stop_token_ids(model, tokenizer)
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams
        self.batch_size = batch_size
        self.no_repeat_ngram_size = no_repeat_ngram_size  # greedy decoding only

    @classmethod
    def for_loaded_model(
        cls,
        model,
        tokenizer,
        *,
        max_new_tokens: int = 256,
        num_beams: int = 1,
        batch_size: int = 16,
        no_repeat_ngram_size: int = 0,
    ) -> ReportGenerator:
        """A generator around a model already in memory (e.g. the one being trained).
        The caller puts it in eval mode and gives a left-padding tokenizer."""
        generator = cls.__new__(cls)
        generator._bind(
            model, tokenizer, max_new_tokens, num_beams, batch_size, no_repeat_ngram_size
        )
        return generator

    @classmethod
    def from_settings(
        cls,
        settings: LLMSettings,
        model_dir: str | Path,
        adapter_dir: str | Path | None = None,
        batch_size: int = 16,
    ) -> ReportGenerator:
        """Decoding budget, beams and dtype from the LLM settings ("auto" dtype: by device)."""
        dtype = _DTYPES.get(settings.compute_dtype)  # None for "auto"
        return cls(
            model_dir,
            adapter_dir,
            dtype=dtype,
            max_new_tokens=settings.max_new_tokens,
            num_beams=settings.num_beams,
            batch_size=batch_size,
            no_repeat_ngram_size=settings.no_repeat_ngram_size,
        )

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
        Prompts are batched by token length, so a batch carries little padding.
        """
        if examples is not None and len(examples) != len(impressions):
            raise ValueError(f"{len(examples)} example lists for {len(impressions)} impressions")
        prompts = [
            format_prompt(impression, examples[index] if examples is not None else ())
            for index, impression in enumerate(impressions)
        ]
        batch_size = batch_size or self.batch_size
        reports: list[str] = [""] * len(prompts)
        bar = tqdm(total=len(prompts), desc="generating", unit="report", disable=not progress)
        with bar:
            for batch in self._length_sorted_batches(prompts, batch_size):
                texts = self._generate_batch(
                    [prompts[index] for index in batch],
                    num_beams or self.num_beams,
                    max_new_tokens or self.max_new_tokens,
                )
                for index, text in zip(batch, texts, strict=True):
                    reports[index] = text
                bar.update(len(batch))
        return reports

    def _length_sorted_batches(self, prompts: list[str], batch_size: int) -> list[list[int]]:
        # Longest first: a batch that does not fit in memory fails at once, not at the end.
        lengths = [len(ids) for ids in self.tokenizer(prompts)["input_ids"]]
        order = sorted(range(len(prompts)), key=lambda index: -lengths[index])
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]

    def _generate_batch(self, prompts: list[str], num_beams: int, max_new_tokens: int) -> list[str]:
        encoded = self.tokenizer(prompts, padding=True, return_tensors="pt").to(self.model.device)
        decode_args = (
            self.model,
            encoded["input_ids"],
            encoded["attention_mask"],
            max_new_tokens,
            self.stop_ids,
            self.tokenizer.pad_token_id,
        )
        if num_beams > 1:
            new_ids = beam_decode(*decode_args, num_beams=num_beams)
        else:
            new_ids = greedy_decode(*decode_args, self.no_repeat_ngram_size)
        return [self._text_before_stop(row) for row in new_ids.tolist()]

    def _text_before_stop(self, token_ids: list[int]) -> str:
        stop = next((i for i, token in enumerate(token_ids) if token in self.stop_ids), None)
        # No "clean-up" of spaces: it is meant for WordPiece and deletes real spaces in BPE text.
        text = self.tokenizer.decode(
            token_ids[:stop], skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return text.strip()
