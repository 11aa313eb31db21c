"""Does a study's MBR report depend on the studies decoded with it, and what does the native
decoder's prefill grouping cost?

Decodes the first N val studies of a trained model version in batches, once per value of
the native decoder's PREFILL_TOKENS (the padded tokens one prefill pass may hold; 1 means
each prompt alone), timing each run, then decodes the first 16 of them one at a time and
counts how many reports equal each batched run's.

Run (a model version trained with MBR, `run.py train --config configs/iu_xray.yaml`):

    nice .venv/bin/python benchmarks/mbr_batch_invariance.py --model radreport-iu-xray:2 \\
        --prefill-tokens 2048 1 1 2048

Since native MBR prefills each prompt alone whatever PREFILL_TOKENS says, this measures the
grouping only with the code before that change; greedy decoding still groups.
"""

from __future__ import annotations

import argparse
import time

import radreport.llm.native_generate as native_generate
from pipelines.model_versions import load_trained_model
from radreport.llm.trained_generator import trained_report_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="NAME:VERSION of a trained model")
    parser.add_argument("--studies", type=int, default=48)
    parser.add_argument("--alone", type=int, default=16, help="studies also decoded alone")
    parser.add_argument("--prefill-tokens", type=int, nargs="+", default=[2048, 1])
    args = parser.parse_args()

    model = load_trained_model(args.model)
    settings, table = model.settings, model.alpaca_table
    val = table[table["split"] == "val"].head(args.studies)
    examples = [[tuple(pair) for pair in row] for row in val["examples"]]
    impressions = val["impression"].tolist()
    generator = trained_report_generator(
        settings.model_copy(update={"decoder": "native"}), model.adapter_dir, model.alpaca_table
    )
    generator.generate(impressions[:2], examples[:2], progress=False)  # warm-up
    runs = []
    for tokens in args.prefill_tokens:
        native_generate.PREFILL_TOKENS = tokens
        started = time.perf_counter()
        reports = generator.generate(impressions, examples, progress=False)
        seconds = time.perf_counter() - started
        runs.append((tokens, reports))
        print(f"prefill {tokens} tokens: {seconds / len(impressions):.2f} s per report", flush=True)
    alone = [
        generator.generate([impression], [shown], progress=False)[0]
        for impression, shown in zip(impressions[: args.alone], examples[: args.alone], strict=True)
    ]
    for tokens, reports in runs:
        same = sum(a == b for a, b in zip(alone, reports, strict=False))
        print(f"prefill {tokens} tokens: {same} of {len(alone)} reports the same as alone")


if __name__ == "__main__":
    main()
