"""Does a study's report depend on the studies decoded with it, on the native decoder?

Decodes the first N val studies of a trained model version in batches, timing it, then
decodes the first 16 of them one at a time and counts how many reports equal the batched
run's. The decoder prefills every prompt alone (radreport.llm.native_generate), so every
count should be all of them; before the fiftieth session it grouped greedy prompts, and
its `--prefill-tokens` option compared the grouping (BENCHMARKS.md).

Run (any trained model version; MBR or greedy as the version decodes):

    nice .venv/bin/python benchmarks/mbr_batch_invariance.py --model radreport-iu-xray:2
"""

from __future__ import annotations

import argparse
import time

from pipelines.model_versions import load_trained_model
from radreport.llm.trained_generator import trained_report_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="NAME:VERSION of a trained model")
    parser.add_argument("--studies", type=int, default=48)
    parser.add_argument("--alone", type=int, default=16, help="studies also decoded alone")
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
    started = time.perf_counter()
    reports = generator.generate(impressions, examples, progress=False)
    seconds = time.perf_counter() - started
    print(f"batched: {seconds / len(impressions):.2f} s per report", flush=True)
    alone = [
        generator.generate([impression], [shown], progress=False)[0]
        for impression, shown in zip(impressions[: args.alone], examples[: args.alone], strict=True)
    ]
    same = sum(a == b for a, b in zip(alone, reports, strict=False))
    print(f"{same} of {len(alone)} reports the same as alone")


if __name__ == "__main__":
    main()
