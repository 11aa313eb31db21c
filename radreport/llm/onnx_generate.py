"""Greedy report generation on ONNX Runtime GenAI (`LLMSettings.decoder: onnxruntime`).

Same prompts, batching, stop tokens and repeat blocking as the PyTorch generator, and the
same tokens as the fp32 PyTorch model; the decode steps run in ONNX Runtime's C++ loop. On
the CPUs measured here that decodes a single report about 2x faster than PyTorch
(benchmarks/results/generation.md). Beam search and MBR decoding stay on PyTorch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer

from radreport.llm.generate import ReportGenerator
from radreport.llm.repeat_blocking import RepeatedNgramBlocker
from radreport.llm.section_stop import SectionStop


def load_onnx_model(onnx_dir: str | Path, num_threads: int | None = None):
    """An `onnxruntime_genai.Model` on the CPU, with `num_threads` (None: all cores)."""
    import onnxruntime_genai as og

    config = og.Config(str(onnx_dir))
    if num_threads is not None:
        options = {"intra_op_num_threads": num_threads, "inter_op_num_threads": 1}
        config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
    return og.Model(config)


def _as_ids(value) -> list[int]:
    if value is None:
        return []
    return [value] if isinstance(value, int) else list(value)


def onnx_greedy_decode(
    model,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    stop_ids: Sequence[int],
    pad_id: int,
    no_repeat_ngram_size: int = 0,
    context_length: int | None = None,
    section_stop: SectionStop | None = None,
    stop_logit_bias: float = 0.0,
) -> list[list[int]]:
    """New token ids of each prompt (its first stop id kept, nothing after it).

    `pad_id` must be the model's own pad id (genai_config.json): ONNX Runtime GenAI takes
    the batch padded on the right and masks that id itself.
    """
    import onnxruntime_genai as og

    width = max(len(ids) for ids in prompts)
    batch = np.full((len(prompts), width), pad_id, dtype=np.int32)
    for row, ids in enumerate(prompts):
        batch[row, : len(ids)] = ids
    max_length = width + max_new_tokens
    if context_length is not None:
        max_length = min(max_length, context_length)
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=max_length, do_sample=False, batch_size=len(prompts))
    generator = og.Generator(model, params)
    generator.append_tokens(batch)
    blocker = None
    if no_repeat_ngram_size:
        blocker = RepeatedNgramBlocker(len(prompts), no_repeat_ngram_size)
    stops = set(stop_ids)
    output: list[list[int]] = [[] for _ in prompts]
    going = [True] * len(prompts)
    for _ in range(max_length - width):
        if generator.is_done():
            break
        if blocker is not None or stop_logit_bias:
            # Greedy search takes the highest logit: banned tokens at -inf are never chosen.
            logits = torch.from_numpy(np.asarray(generator.get_logits()).copy())
            rows = logits.reshape(len(prompts), -1)
            if stop_logit_bias:
                rows[:, list(stops)] += stop_logit_bias
            if blocker is not None:
                rows = blocker.block(rows)
            generator.set_logits(rows.numpy().reshape(logits.shape))
        generator.generate_next_token()
        next_ids = [int(token) for token in np.asarray(generator.get_next_tokens())]
        if blocker is not None:
            blocker.append(next_ids)
        for row, token in enumerate(next_ids):
            if going[row]:
                output[row].append(token)
                going[row] = token not in stops
                if going[row] and section_stop is not None:
                    going[row] = not section_stop.ended(output[row])
        if not any(going):
            break
    return output


class OnnxReportGenerator(ReportGenerator):
    """ReportGenerator whose greedy decoding runs on an ONNX Runtime GenAI export."""

    def __init__(
        self,
        onnx_dir: str | Path,
        *,
        max_new_tokens: int = 256,
        batch_size: int = 16,
        no_repeat_ngram_size: int = 0,
        num_threads: int | None = None,
        stop_logit_bias: float = 0.0,
    ):
        onnx_dir = Path(onnx_dir)
        genai_config = json.loads((onnx_dir / "genai_config.json").read_text())["model"]
        self.onnx_model = load_onnx_model(onnx_dir, num_threads)
        self.context_length = genai_config.get("context_length")
        tokenizer = AutoTokenizer.from_pretrained(onnx_dir)
        pad_ids = _as_ids(genai_config.get("pad_token_id"))
        self.pad_id = pad_ids[0] if pad_ids else tokenizer.eos_token_id
        stop_ids = {tokenizer.eos_token_id, *_as_ids(genai_config.get("eos_token_id"))}
        # No PyTorch model (None): beam search and MBR need decoder "torch".
        self._bind(
            None,
            tokenizer,
            max_new_tokens,
            1,
            batch_size,
            no_repeat_ngram_size,
            stop_ids=sorted(stop_ids - {None}),
            context_length=self.context_length,
            stop_logit_bias=stop_logit_bias,
        )

    def _generate_batch(self, prompts: list[str], num_beams: int, max_new_tokens: int) -> list[str]:
        if num_beams > 1:
            raise ValueError("the onnxruntime decoder decodes greedily; beams need decoder torch")
        new_ids = onnx_greedy_decode(
            self.onnx_model,
            self.tokenizer(prompts)["input_ids"],
            max_new_tokens,
            self.stop_ids,
            self.pad_id,
            self.no_repeat_ngram_size,
            self.context_length,
            self.section_stop,
            self.stop_logit_bias,
        )
        return [self._text_before_stop(row) for row in new_ids]
