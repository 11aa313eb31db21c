"""Average LoRA adapters trained under different seeds into one adapter (a "seed soup").

The thirty-first session found that the training seed moves a run's IU X-Ray BLEU-4 by as
much as any setting tried. Averaging the weights of runs that differ only in their seed is
the cheap way to take that noise out of the shipped model without decoding several models
(the candidate pooling tried earlier): decoding a soup costs what decoding one adapter costs.

The soup is exact, not an approximation: PEFT's `add_weighted_adapter` with
`combination_type="cat"` stacks the adapters' A and B matrices, so the new adapter's
weight change B·A is the weighted sum of the members' changes (rank: the sum of their
ranks; it is merged into the base weights before decoding, so the rank costs nothing
there). The script checks that on every adapted layer before it saves.

Run (then decode the soup with iu_xray_finetune.py --adapter OUT, same decoding flags):

    .venv/bin/python benchmarks/iu_xray_seed_soup.py ADAPTER_DIR ADAPTER_DIR [...] --out OUT
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from transformers import AutoModelForCausalLM

from radreport.llm.base_model import resolve_base_model
from radreport.llm.settings import LLMSettings

WEIGHTS = "adapter_model.safetensors"
SOUP = "soup"


def mean_adapter(adapters: list[Path], base_model: str) -> PeftModel:
    """The base model with the members loaded and their mean added as the adapter `soup`."""
    base = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    names = [f"seed_{i}" for i in range(len(adapters))]
    model = PeftModel.from_pretrained(base, str(adapters[0]), adapter_name=names[0])
    for name, folder in zip(names[1:], adapters[1:], strict=True):
        model.load_adapter(str(folder), adapter_name=name)
    weight = 1.0 / len(adapters)
    model.add_weighted_adapter(names, [weight] * len(names), SOUP, combination_type="cat")
    for layer in (m for m in model.modules() if isinstance(m, LoraLayer)):
        if SOUP not in layer.lora_A:
            continue
        expected = sum(layer.get_delta_weight(name) for name in names) * weight
        if not torch.allclose(layer.get_delta_weight(SOUP), expected, atol=1e-6, rtol=1e-4):
            raise SystemExit("the stacked adapter is not the mean of its members")
    return model


def save_soup(model: PeftModel, member: Path, out: Path) -> None:
    """Write the soup as an adapter folder of its own (safetensors), with the tokenizer
    files of `member` (the members share one)."""
    with_name = out / SOUP  # PEFT saves a non-default adapter in a subfolder
    model.save_pretrained(str(out), selected_adapters=[SOUP])
    for item in with_name.iterdir():
        shutil.move(str(item), out / item.name)
    with_name.rmdir()
    for item in member.iterdir():
        if item.name.startswith("tokenizer") or item.name.endswith(".jinja"):
            shutil.copy2(item, out / item.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("adapters", nargs="+", type=Path, help="adapter folders (same base)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the soup adapter")
    parser.add_argument(
        "--base-model", default=LLMSettings().base_model, help="the members' llm.base_model"
    )
    args = parser.parse_args()
    if len(args.adapters) < 2:
        parser.error("give at least two adapter folders")
    for folder in args.adapters:
        if not (folder / WEIGHTS).is_file():
            parser.error(f"{folder}: no {WEIGHTS}")

    model = mean_adapter(args.adapters, resolve_base_model(args.base_model))
    save_soup(model, args.adapters[0], args.out)
    rank = model.peft_config[SOUP].r
    print(f"{args.out}: mean of {len(args.adapters)} adapters, rank {rank}, safetensors")


if __name__ == "__main__":
    main()
