"""Is the native decoder's score gap to torch larger than MBR's own sampling noise?

MBR picks among the greedy decode and sampled reports, so the chosen reports, and their
scores, move with the sampling seed. A single paired comparison of two decoding engines
cannot tell a systematic gap from that movement. This decodes one split of a trained model
version with each engine and several MBR seeds, through the pipeline's own prediction code
(`predict_splits`: the same prompts and retrieved examples as the `generate_reports` step),
and prints:

- each run's corpus BLEU-4 and finding F1 (micro);
- the differences between two runs of the same engine with different seeds ("within");
- the differences between a native and a torch run ("between"), and native's mean minus
  torch's mean over the seeds.

A between-engine gap inside the range of the within-engine differences is not told apart
from the seed's effect.

Run (a model version trained with MBR, `run.py train --config configs/iu_xray.yaml`):

    nice .venv/bin/python benchmarks/decoder_seed_spread.py --model radreport-iu-xray:2 \
        --split val --seeds 42 1 2

Each run's predictions are kept in --out (one CSV per engine and seed) and reused when the
command runs again, so a long comparison can be stopped and resumed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.model_versions import load_trained_model
from radreport.llm.predictions import predict_splits
from radreport.llm.trained_generator import trained_report_generator
from radreport.metrics.bleu_statistics import bleu_from_statistics, corpus_statistics
from radreport.metrics.finding_f1 import FindingCounts, finding_f1
from radreport.metrics.labeler import binarize_labels, label_reports
from radreport.metrics.normalize import normalize_report
from radreport.metrics.settings import EvaluationSettings

RESULTS = Path(__file__).resolve().parent / "results" / "decoder_seed_spread"
ENGINES = ("native", "torch")
METRICS = ("bleu4", "finding_f1_micro")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="NAME:VERSION of a trained model")
    parser.add_argument("--split", default="val", choices=["val", "test"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--limit", type=int, help="only the split's first N studies")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    model = load_trained_model(args.model)
    settings, adapter_dir, table = model.settings, model.adapter_dir, model.alpaca_table
    if settings.mbr_candidates < 2:
        raise SystemExit(f"{args.model} decodes without MBR: the seed changes nothing")
    rows = table[table["split"] == args.split]
    if args.limit:
        rows = rows.head(args.limit)
    table = pd.concat([table[table["split"] == "train"], rows])
    args.out.mkdir(parents=True, exist_ok=True)
    runs: dict[tuple[str, int], pd.DataFrame] = {}
    # Seed by seed, both engines each time: a stopped comparison still pairs its runs.
    for seed, engine in itertools.product(args.seeds, ENGINES):
        path = args.out / f"{args.model.replace(':', '_')}_{args.split}_{engine}_seed{seed}.csv"
        if not path.exists():
            generator = trained_report_generator(
                settings.model_copy(update={"decoder": engine}), adapter_dir, model.alpaca_table
            )
            generator.seed = seed
            started = time.perf_counter()
            predictions, _ = predict_splits(generator, table, splits=(args.split,))
            seconds = time.perf_counter() - started
            predictions.to_csv(path, index=False)
            print(f"{engine} seed {seed}: {len(predictions)} reports in {seconds:.0f} s")
        runs[engine, seed] = pd.read_csv(path, keep_default_na=False)
    summary = _summary(runs, args)
    (args.out / f"{args.model.replace(':', '_')}_{args.split}.json").write_text(
        json.dumps(summary, indent=2)
    )
    _print(summary)


def _summary(runs: dict[tuple[str, int], pd.DataFrame], args) -> dict:
    study_ids = {tuple(frame["study_id"]) for frame in runs.values()}
    if len(study_ids) != 1:
        raise SystemExit(f"{args.out}: the saved runs cover different studies; remove them")
    any_run = next(iter(runs.values()))
    references = any_run["reference"].astype(str).tolist()
    settings = EvaluationSettings()
    normalized_references = [normalize_report(text) for text in references]
    reference_presence = binarize_labels(label_reports(references), settings.uncertain_as)
    everyone = np.ones((1, len(references)), dtype=np.int64)

    def score(texts: list[str]) -> dict[str, float]:
        statistics_ = corpus_statistics([normalize_report(t) for t in texts], normalized_references)
        presence = binarize_labels(label_reports(texts), settings.uncertain_as)
        counts = FindingCounts.compare(reference_presence, presence)
        return {
            "bleu4": float(bleu_from_statistics(everyone @ statistics_, 4)[0]),
            "finding_f1_micro": float(finding_f1(counts, everyone)["finding_f1_micro"][0]),
        }

    scores = {key: score(frame["generated"].astype(str).tolist()) for key, frame in runs.items()}
    seeds = sorted({seed for _, seed in runs})

    def differences(pairs) -> dict[str, list[float]]:
        return {m: [round(scores[a][m] - scores[b][m], 4) for a, b in pairs] for m in METRICS}

    within = [
        ((engine, s1), (engine, s2))
        for engine in ENGINES
        for s1, s2 in itertools.combinations(seeds, 2)
        if (engine, s1) in runs and (engine, s2) in runs
    ]
    between = [
        (("native", s1), ("torch", s2))
        for s1, s2 in itertools.product(seeds, seeds)
        if ("native", s1) in runs and ("torch", s2) in runs
    ]
    means = {
        engine: {
            m: statistics.fmean(scores[engine, s][m] for s in seeds if (engine, s) in runs)
            for m in METRICS
        }
        for engine in ENGINES
        if any((engine, s) in runs for s in seeds)
    }
    same_report = {
        f"{a[0]}{a[1]}-{b[0]}{b[1]}": int((runs[a]["generated"] == runs[b]["generated"]).sum())
        for a, b in within + between
    }
    return {
        "model": args.model,
        "split": args.split,
        "studies": len(references),
        "scores": {f"{engine} seed {seed}": value for (engine, seed), value in scores.items()},
        "engine_means": means,
        "native_minus_torch_of_means": {
            m: round(means["native"][m] - means["torch"][m], 4) for m in METRICS
        }
        if len(means) == 2
        else None,
        "within_engine_differences": differences(within),
        "between_engine_differences": differences(between),
        "identical_reports": same_report,
    }


def _print(summary: dict) -> None:
    print(f"{summary['model']} {summary['split']}, {summary['studies']} studies")
    for run, value in summary["scores"].items():
        print(f"  {run}: BLEU-4 {value['bleu4']:.3f}, finding F1 {value['finding_f1_micro']:.3f}")
    for metric in METRICS:
        within = summary["within_engine_differences"][metric]
        between = summary["between_engine_differences"][metric]
        gap = (summary["native_minus_torch_of_means"] or {}).get(metric)
        print(
            f"  {metric}: within an engine |d| <= {max(map(abs, within), default=0):.3f} "
            f"({len(within)} pairs); native - torch {min(between, default=0):+.3f} to "
            f"{max(between, default=0):+.3f} ({len(between)} pairs)"
            + (f", of the means {gap:+.3f}" if gap is not None else "")
        )


if __name__ == "__main__":
    main()
