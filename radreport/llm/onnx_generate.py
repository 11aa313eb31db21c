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
from types import SimpleNamespace

import numpy as np
import torch
from transformers import AutoTokenizer

from radreport.data.alpaca import text_ids
from radreport.llm.cache_budget import cache_bytes_per_position
from radreport.llm.decode_rows import DecodeRows
from radreport.llm.decode_rules import DecodeRules
from radreport.llm.generate import BatchTokens, ReportGenerator


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
    rules: DecodeRules,
    context_length: int | None = None,
) -> list[list[int]]:
    """New token ids of each prompt (its first stop id kept, nothing after it).

    The rules' `pad_id` must be the model's own pad id (genai_config.json): ONNX Runtime
    GenAI takes the batch padded on the right and masks that id itself. ONNX Runtime's greedy
    search picks each token; the `rules` are applied by the PyTorch loops' own
    radreport.llm.decode_rows.DecodeRows, to the logits it picks from.
    """
    import onnxruntime_genai as og

    width = max(len(ids) for ids in prompts)
    batch = np.full((len(prompts), width), rules.pad_id, dtype=np.int32)
    for row, ids in enumerate(prompts):
        batch[row, : len(ids)] = ids
    max_length = width + max_new_tokens
    if context_length is not None:
        max_length = min(max_length, context_length)
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=max_length, do_sample=False, batch_size=len(prompts))
    generator = og.Generator(model, params)
    generator.append_tokens(batch)
    # Greedy search takes the highest logit, so rules that only move logits (banned tokens at
    # -inf, the stop bias) are applied by handing the changed logits back before it picks.
    changes_logits = bool(rules.no_repeat_ngram_size or rules.stop_logit_bias)
    step_logits = np.empty(0, dtype=np.float32)  # the step's logits of every row, when changed

    def choose(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        if changes_logits:
            # Finished rows keep their own logits: ONNX Runtime decodes them on, unread.
            torch.from_numpy(step_logits).view(len(prompts), -1)[rows] = logits
            generator.set_logits(step_logits)
        generator.generate_next_token()
        return torch.from_numpy(np.asarray(generator.get_next_tokens()).astype(np.int64))[rows]

    steps = max_length - width
    decoding = DecodeRows(len(prompts), max(steps, 0), rules, choose)
    for _ in range(steps):
        if generator.is_done():
            break
        if changes_logits:
            step_logits = np.asarray(generator.get_logits()).copy()
            logits = torch.from_numpy(step_logits).view(len(prompts), -1)[decoding.rows]
        else:
            # Nothing to change: ONNX Runtime picks from its own logits, unread here.
            logits = torch.empty(len(decoding.rows), 0)
        _, going = decoding.choose(logits)
        if not bool(going.any()):
            break
        if not bool(going.all()):
            decoding.keep(going.nonzero().squeeze(-1))
    lengths = decoding.lengths.tolist()
    return [row[:length] for row, length in zip(decoding.result().tolist(), lengths, strict=True)]


class OnnxReportGenerator(ReportGenerator):
    """ReportGenerator whose greedy decoding runs on an ONNX Runtime GenAI export."""

    def __init__(
        self,
        onnx_dir: str | Path,
        *,
        max_new_tokens: int = 256,
        batch_size: int = 16,
        batch_tokens: BatchTokens = "auto",
        no_repeat_ngram_size: int = 0,
        num_threads: int | None = None,
        stop_logit_bias: float = 0.0,
    ):
        onnx_dir = Path(onnx_dir)
        genai_config = json.loads((onnx_dir / "genai_config.json").read_text())["model"]
        self.onnx_model = load_onnx_model(onnx_dir, num_threads)
        self.context_length = genai_config.get("context_length")
        decoder = genai_config["decoder"]
        # The export is fp32 and ONNX Runtime GenAI gives every row a cache as long as the
        # batch's (onnx_greedy_decode's max_length): the torch decoder's count of positions.
        self._cache_bytes_per_position = cache_bytes_per_position(
            SimpleNamespace(
                num_hidden_layers=decoder["num_hidden_layers"],
                num_attention_heads=decoder["num_attention_heads"],
                num_key_value_heads=decoder["num_key_value_heads"],
                head_dim=decoder["head_size"],
            ),
            torch.float32.itemsize,
        )
        tokenizer = AutoTokenizer.from_pretrained(onnx_dir)
        pad_ids = _as_ids(genai_config.get("pad_token_id"))
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
            pad_id=pad_ids[0] if pad_ids else tokenizer.eos_token_id,
            context_length=self.context_length,
            stop_logit_bias=stop_logit_bias,
            batch_tokens=batch_tokens,
        )

    def cache_bytes_per_position(self) -> int:
        return self._cache_bytes_per_position

    def decoding_engine(self) -> dict[str, str]:
        return {"decoder": "onnxruntime", "device": "cpu", "dtype": "float32"}  # the export's

    def _generate_batch(self, prompts: list[str], num_beams: int, max_new_tokens: int) -> list[str]:
        if num_beams > 1:
            raise ValueError("the onnxruntime decoder decodes greedily; beams need decoder torch")
        new_ids = onnx_greedy_decode(
            self.onnx_model,
            text_ids(self.tokenizer, prompts),
            max_new_tokens,
            self.rules,
            self.context_length,
        )
        return [self._text_before_stop(row) for row in new_ids]
