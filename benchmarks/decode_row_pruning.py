"""Greedy decoding of long retrieval prompts, before and after finished rows leave the batch.

Compares this checkout's generator with an older radreport/llm/generate.py (where stopped
rows stayed in the batch until its longest row ended) on the same model and prompts: IU
X-Ray val impressions with 3 retrieved examples (~700 tokens), 6-gram repeats blocked.
Both decode the same adapter in the same process, alternating; the reports must be equal.

    git show 07314c4:radreport/llm/generate.py > /tmp/old_generate.py
    .venv/bin/python benchmarks/decode_row_pruning.py /tmp/old_generate.py ADAPTER_DIR
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import torch
from iu_xray_finetune import load_studies

from radreport.llm.base_model import resolve_base_model
from radreport.llm.generate import ReportGenerator
from radreport.llm.prompt_table import build_prompt_table
from radreport.llm.settings import LLMSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_generate", type=Path, help="the older generate.py")
    parser.add_argument("adapter", type=Path, help="a LoRA adapter trained with k=3 retrieval")
    parser.add_argument("--studies", type=int, default=64)
    parser.add_argument("--trials", type=int, default=2)
    args = parser.parse_args()

    spec = importlib.util.spec_from_file_location("old_generate", args.old_generate)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    table = build_prompt_table(load_studies(), 3)
    val = table[table["split"] == "val"].reset_index(drop=True).iloc[: args.studies]
    # PyTorch's loop against the older generate.py's: the torch decoder on both sides.
    settings = LLMSettings(
        max_new_tokens=128, no_repeat_ngram_size=6, retrieval_k=3, decoder="torch"
    )
    base = resolve_base_model(settings.base_model)
    after = ReportGenerator.from_settings(settings, base, args.adapter)
    before = old.ReportGenerator.for_loaded_model(
        after.model, after.tokenizer, max_new_tokens=128, no_repeat_ngram_size=6
    )
    impressions = val["impression"].tolist()
    examples = [[tuple(pair) for pair in row] for row in val["examples"]]
    seconds: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(args.trials):
        reports = {}
        for name, generator in (("before", before), ("after", after)):
            started = time.perf_counter()
            reports[name] = generator.generate(impressions, examples, progress=False)
            seconds[name].append(round(time.perf_counter() - started, 1))
        if reports["before"] != reports["after"]:
            raise SystemExit("the two generators wrote different reports")
    ratio = min(seconds["before"]) / min(seconds["after"])
    print(f"{args.studies} studies, {torch.get_num_threads()} threads, dtype {after.model.dtype}")
    print(f"seconds before {seconds['before']}, after {seconds['after']}")
    print(f"best vs best: {ratio:.2f}x")


if __name__ == "__main__":
    main()
