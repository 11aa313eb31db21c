"""Calibrate `llm.stop_logit_bias` on one half of IU X-Ray val, score it on the other half.

Reports decoded by likelihood come out shorter than the references (about 0.91 of their
length in the ninth session's predictions), and corpus BLEU's brevity penalty charges that
shortfall to every n-gram order. A negative bias on the stop tokens' logits makes reports
end later. It is a decoding knob, so it is chosen on held-out studies, never on the ones it
is scored on: the val studies are split in two by a seeded permutation of their ids; every
bias of the grid decodes the "dev" half greedily (with the IU config's 6-gram blocking),
the bias with the best corpus BLEU-4 there is kept, and the "test" half is decoded with the
IU config's decoding (MBR over 8 candidates, also scored against the retrieved reports) at
bias 0 and at the chosen bias. The test half's predictions go to
benchmarks/results/iu_xray_length_calibration.csv; compare a column with the lookup, or
the two biases with each other:

    .venv/bin/python benchmarks/iu_xray_paired_delta.py \
        benchmarks/results/iu_xray_length_calibration.csv mbr8_example_refs_bias<B> \
        [--against mbr8_example_refs_bias0]

Run (an adapter from iu_xray_finetune.py --adapter-out, trained on train only):

    nice .venv/bin/python benchmarks/iu_xray_length_calibration.py --adapter ADAPTER_DIR
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from iu_xray_finetune import load_studies
from iu_xray_halves import dev_scores, score_half, split_halves

from radreport.llm.mbr import select_reports
from radreport.llm.prompt_table import build_prompt_table
from radreport.llm.settings import LLMSettings
from radreport.llm.trained_generator import trained_report_generator

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", type=Path, required=True)
    parser.add_argument("--retrieval-k", type=int, default=3)
    parser.add_argument("--grid", default="0,-0.5,-1,-1.5,-2", help="biases tried on dev")
    parser.add_argument("--no-repeat-ngram", type=int, default=6)
    parser.add_argument("--mbr", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="seed of the dev/test split")
    parser.add_argument("--limit", type=int, default=None, help="first N of each half (a check)")
    args = parser.parse_args()
    grid = [float(value) for value in args.grid.split(",")]

    table = build_prompt_table(load_studies(), args.retrieval_k)
    train = table[table["split"] == "train"]
    val = table[table["split"] == "val"].reset_index(drop=True)
    dev, test = (half[: args.limit] for half in split_halves(val["study_id"].tolist(), args.seed))
    settings = LLMSettings(
        retrieval_k=args.retrieval_k,
        max_new_tokens=128,
        no_repeat_ngram_size=args.no_repeat_ngram,
        decoder="torch",  # the engine its recorded figures were measured on
    )
    generator = trained_report_generator(settings, args.adapter, table)

    def rows(indices: np.ndarray) -> tuple[list[str], list[list[tuple[str, str]]], list[str]]:
        part = val.iloc[indices]
        examples = [[tuple(pair) for pair in row] for row in part["examples"]]
        return part["impression"].tolist(), examples, part["report"].tolist()

    impressions, examples, references = rows(dev)
    scores = {}
    for bias in grid:
        generator.rules = replace(generator.rules, stop_logit_bias=bias)
        started = time.perf_counter()
        reports = generator.generate(impressions, examples)
        # The dev half's own reports: every row of them is a dev row.
        scores |= dev_scores({f"{bias:g}": reports}, references, np.arange(len(references)))
        print(f"({time.perf_counter() - started:.0f} s)", flush=True)
    # Ties go to the smaller change.
    chosen = max(grid, key=lambda bias: (scores[f"{bias:g}"]["bleu4"], -abs(bias)))
    print(f"chosen on dev: {chosen:+g}", flush=True)

    impressions, examples, references = rows(test)
    systems = {}
    generator.mbr_candidates = args.mbr
    for bias in sorted({0.0, chosen}, reverse=True):
        generator.rules = replace(generator.rules, stop_logit_bias=bias)
        groups = generator.candidate_groups(impressions, examples)
        systems[f"mbr{args.mbr}_example_refs_bias{bias:g}"] = select_reports(groups, examples)
    output = RESULTS / f"iu_xray_length_calibration{'_check' if args.limit else ''}"
    summary = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "dev_studies": len(dev),
        "test_studies": len(test),
        "dev": scores,
        "chosen_bias": chosen,
        "test": score_half(val.iloc[test], train, systems, output.with_suffix(".csv")),
    }
    output.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary["test"], indent=2))


if __name__ == "__main__":
    main()
