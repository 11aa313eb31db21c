"""CPU training memory by example length, with gradient checkpointing off, on, or left to
`gradient_checkpointing: auto` (radreport.llm.training_memory decides by the memory available).

CT findings run to hundreds of tokens, and with retrieval a training example holds several
of them, so how training memory grows with the example length says where a CPU machine
needs checkpointing. Each setting runs 2 training steps of the bundled SmolLM2-135M with the
IU X-Ray config's LoRA (rank 64 on all linear layers) and `--batch` examples of exactly
`tokens` tokens (IU X-Ray train findings run together and cut there), in a process of its
own, and prints its peak resident memory (the kernel's high-water mark: model, optimizer and
activations), the bytes its steps saved for the backward pass (autograd's saved-tensor
hooks) and the time of the two steps. The main process prints, per setting, the growth per
1,000 tokens of a batch row between the shortest and each longer length, and the growth of
both per token of the batch against what radreport.llm.training_memory counts.

`--shape LAYERS,HIDDEN,MLP,HEADS,KV_HEADS` trains a random-weight Llama model of that shape
instead (the bundled model's config and tokenizer otherwise), to check the count on models
other than the one it was measured on; `--lora-r` sets the LoRA rank (alpha alike) and
`--backend` the training backend (auto: hf on the CPU); `--architecture qwen2` (or another
model type with Llama's size names) and `--vocab` change the random model's kind and
vocabulary.
Run: nice .venv/bin/python benchmarks/train_memory_by_length.py [--tokens 512 1024 2048]
  [--batch 8] [--compute-dtype auto|bfloat16|float32] [--checkpointing off on auto]
  [--shape 12,576,3072,9,3 [--architecture qwen2] [--vocab 151936]] [--lora-r 64]
  [--backend auto|hf|unsloth] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from generation_batch_memory import IU, result_of
from transformers import TrainerCallback

BASE_MODEL = "bundled:smollm2-135m-instruct"


def rows_of_length(tokens: int, count: int) -> list[dict]:
    """`count` examples whose prompt and report (end-of-sequence token included) are `tokens`
    long: a short impression and a report cut from IU X-Ray train findings run together."""
    from transformers import AutoTokenizer

    from radreport.data.alpaca import tokenize_example
    from radreport.llm.base_model import resolve_base_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(BASE_MODEL))
    text = " ".join(pd.read_csv(IU / "train.csv", keep_default_na=False)["findings"])
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    impression = "Findings as below."
    overhead = len(tokenize_example(tokenizer, impression, "x", tokens).input_ids) - 1
    length = tokens - overhead
    if length * count > len(ids):
        raise SystemExit(f"IU X-Ray train has too few tokens for {count} rows of {tokens}")
    rows = []
    for row in range(count):
        report = tokenizer.decode(ids[row * length : (row + 1) * length])
        rows.append({"impression": impression, "report": report})
    return rows


def random_model(shape: str, folder: Path, architecture: str = "llama", vocab: int = 0) -> str:
    """A model of `architecture` (a transformers model type with Llama's size names: llama,
    qwen2, mistral, ...) and `shape` (layers, hidden size, MLP width, heads, KV heads) with
    random weights (seed 0) and the bundled model's vocabulary or `vocab` rows (the bundled
    tokenizer's ids stay below it), saved as safetensors in `folder` with that tokenizer."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from radreport.llm.base_model import resolve_base_model

    layers, hidden, mlp, heads, kv_heads = (int(part) for part in shape.split(","))
    bundled = Path(resolve_base_model(BASE_MODEL))
    base = AutoConfig.from_pretrained(bundled)
    sizes = {
        "num_hidden_layers": layers,
        "hidden_size": hidden,
        "intermediate_size": mlp,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": hidden // heads,
        "vocab_size": vocab or base.vocab_size,
    }
    if architecture == "llama":
        config = base
        config.update(sizes)
    else:
        # Sized when made: some model types derive per-layer fields from the layer count.
        special = {name: getattr(base, name) for name in ("bos_token_id", "eos_token_id")}
        config = AutoConfig.for_model(
            architecture,
            **sizes,
            **special,
            pad_token_id=base.pad_token_id,
            tie_word_embeddings=True,
            max_position_embeddings=base.max_position_embeddings,
        )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (bundled / name).exists():
            shutil.copy(bundled / name, folder / name)
    return str(folder)


def counted_bytes_per_token(settings, row_tokens: int) -> float:
    """What radreport.llm.training_memory counts a token of a batch to add to peak memory,
    for `settings` resolved for this machine, on rows of `row_tokens`."""
    from transformers import AutoConfig

    from radreport.llm.base_model import resolve_base_model
    from radreport.llm.training_memory import settings_bytes_per_token

    config = AutoConfig.from_pretrained(resolve_base_model(settings.base_model))
    return settings_bytes_per_token(
        config, settings, settings.compute_dtype, settings.attention, row_tokens
    )


class SavedForBackward(TrainerCallback):
    """The bytes a training step's forward saves for its backward pass (autograd's saved-tensor
    hooks see every tensor an operation or autograd Function keeps), counted once per
    storage: exactly what the step keeps, without the allocator's slack and the working
    tensors that peak resident memory adds. As a callback it starts each step's count anew;
    `most` is the largest step's."""

    def __init__(self):
        self.storages: dict[int, int] = {}
        self.most = 0

    def on_step_begin(self, *args, **kwargs):
        self.storages = {}

    def on_step_end(self, *args, **kwargs):
        self.most = max(self.most, sum(self.storages.values()))

    def pack(self, tensor):
        storage = tensor.untyped_storage()
        self.storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    @staticmethod
    def unpack(tensor):
        return tensor


def train_once(
    tokens: int,
    batch: int,
    checkpointing: str,
    compute_dtype: str,
    base_model: str = BASE_MODEL,
    lora_r: int = 64,
    backend: str = "auto",
    stock_kernels: bool = False,
    lora_dropout: float = 0.0,
) -> dict:
    import torch

    from radreport.llm.device import resolve_for_device
    from radreport.llm.finetune import finetune
    from radreport.llm.settings import LLMSettings

    rows = rows_of_length(tokens, batch * 2)
    settings = LLMSettings(
        base_model=base_model,
        max_seq_length=tokens + 16,  # room for a decode/encode round trip's extra token
        lora_r=lora_r,
        lora_alpha=lora_r,
        lora_dropout=lora_dropout,
        backend=backend,
        fused_lora=not stock_kernels,
        fused_elementwise=not stock_kernels,
        per_device_batch_size=batch,
        max_steps=2,
        warmup_ratio=0.0,
        eval_steps=100,
        save_steps=100,
        early_stopping_patience=None,
        eval_samples=0,
        gradient_checkpointing={"off": False, "on": True}.get(checkpointing, checkpointing),
        compute_dtype=compute_dtype,
    )
    # What `auto` comes to here, from the memory available now, as finetune resolves it.
    resolved = resolve_for_device(settings)
    used = resolved.gradient_checkpointing
    saved = SavedForBackward()
    hooks = torch.autograd.graph.saved_tensors_hooks(saved.pack, saved.unpack)
    with tempfile.TemporaryDirectory() as folder, hooks:
        started = time.perf_counter()
        result = finetune(rows, rows[:2], settings, folder, report_to=[], callbacks=[saved])
        seconds = time.perf_counter() - started
    return {
        "tokens": tokens,
        "longest_example": int(result.metrics.get("train_tokens_max", 0)),
        "batch": batch,
        "checkpointing": checkpointing,
        "checkpointing_used": used,
        "compute_dtype": compute_dtype,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "seconds": seconds,
        "saved_for_backward_gib": saved.most / 2**30,
        "lora_r": lora_r,
        "backend": resolved.backend,
        "stock_kernels": stock_kernels,
        "lora_dropout": lora_dropout,
        "counted_bytes_per_token": counted_bytes_per_token(resolved, tokens),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--compute-dtype", default="auto", help="auto, bfloat16 or float32")
    parser.add_argument(
        "--checkpointing", nargs="+", default=["off", "on"], choices=["off", "on", "auto"]
    )
    parser.add_argument("--shape", help="LAYERS,HIDDEN,MLP,HEADS,KV_HEADS of a random model")
    parser.add_argument("--architecture", default="llama", help="model type of --shape")
    parser.add_argument("--vocab", type=int, default=0, help="vocabulary rows of --shape")
    parser.add_argument("--lora-r", type=int, default=64)
    parser.add_argument("--backend", default="auto", help="auto, hf or unsloth")
    parser.add_argument("--lora-dropout", type=float, default=0.0)
    parser.add_argument(
        "--stock-kernels", action="store_true", help="fused_lora and fused_elementwise off"
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--one", nargs=2, metavar=("TOKENS", "CHECKPOINTING"), help="internal")
    parser.add_argument("--base-model", default=BASE_MODEL, help="internal")
    args = parser.parse_args()
    if args.one:
        result = train_once(
            int(args.one[0]),
            args.batch,
            args.one[1],
            args.compute_dtype,
            args.base_model,
            args.lora_r,
            args.backend,
            args.stock_kernels,
            args.lora_dropout,
        )
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as folder:
        base_model = BASE_MODEL
        if args.shape:
            base_model = random_model(args.shape, Path(folder), args.architecture, args.vocab)
        results = measure(args, base_model)
    for result in results:
        result["shape"] = args.shape or "SmolLM2-135M"
        if args.shape:
            result["architecture"], result["vocab"] = args.architecture, args.vocab or 49152
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"written: {args.out}")


def measure(args: argparse.Namespace, base_model: str) -> list[dict]:
    results = []
    for checkpointing in args.checkpointing:
        for tokens in sorted(args.tokens):
            command = [sys.executable, __file__, "--one", str(tokens), checkpointing]
            options = [
                *("--batch", str(args.batch), "--compute-dtype", args.compute_dtype),
                *("--base-model", base_model, "--lora-r", str(args.lora_r)),
                *("--backend", args.backend),
                *(["--stock-kernels"] if args.stock_kernels else []),
                *("--lora-dropout", str(args.lora_dropout)),
            ]
            result = result_of([*command, *options])
            results.append(result)
            # Growth compares runs that kept (or recomputed) alike, which `auto` may not.
            first = next(
                r
                for r in results
                if (r["checkpointing"], r["checkpointing_used"])
                == (checkpointing, result["checkpointing_used"])
            )
            growth = "" if result is first else growth_text(result, first, args.batch)
            used = "on" if result["checkpointing_used"] else "off"
            print(
                f"checkpointing {checkpointing:4s} ({used}) "
                f"{tokens:5d} tokens x "
                f"{args.batch}, {result['compute_dtype']}: peak {result['peak_rss_gib']:.2f} GiB, "
                f"{result['seconds']:.0f} s{growth}",
                flush=True,
            )
    return results


def bytes_per_batch_token(result: dict, first: dict, key: str, batch: int) -> float:
    """Bytes a token of the batch added to `key` (GiB) from `first`'s length to `result`'s."""
    return (result[key] - first[key]) * 2**30 / ((result["tokens"] - first["tokens"]) * batch)


def growth_text(result: dict, first: dict, batch: int) -> str:
    """Peak memory's and the saved tensors' growth from `first` to `result`, per token of the
    batch and against what the count says a token adds between the two lengths (with kept
    attention scores a token of a longer row keeps more)."""
    per_token = bytes_per_batch_token(result, first, "peak_rss_gib", batch)
    saved_per_token = bytes_per_batch_token(result, first, "saved_for_backward_gib", batch)
    counted = (
        result["tokens"] * result["counted_bytes_per_token"]
        - first["tokens"] * first["counted_bytes_per_token"]
    ) / (result["tokens"] - first["tokens"])
    return (
        f", {per_token * 1000 / 2**30:.2f} GiB per 1,000 tokens of a row"
        f" ({per_token / 1000:.0f} kB a token of the batch,"
        f" {per_token / counted:.2f}x the count; saved for backward"
        f" {saved_per_token / 1000:.1f} kB, {saved_per_token / counted:.2f}x)"
    )


if __name__ == "__main__":
    main()
