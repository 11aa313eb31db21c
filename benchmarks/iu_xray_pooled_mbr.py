"""MBR over the candidates of several trained versions pooled, on IU X-Ray val.

Each version decodes its MBR candidates as `run.py evaluate` would (its own settings, its
calibrated stop bias, its retrieved examples and report shape); the pool of every version's
candidates for a study is then selected from as the config selects (pseudo-references from the
retrieved reports, the impression-agreement weight), so a study's report is the one the versions
agree on most. First, each version's own candidates selected alone must give the reports
`run.py evaluate` wrote (`--expect NAME=CSV:COLUMN`): the pool differs from them in selection
only.

Writes OUT/predictions.csv (study_id, impression, reference, one column per version and
`pooled`, val.csv's order) and OUT/candidates.json (each version's groups), then prints the dev /
held-out / all figures of IU X-Ray val (iu_xray_halves.split_halves, seed 0). Compare columns:

    .venv/bin/python benchmarks/iu_xray_paired_delta.py OUT/predictions.csv pooled \
        [--against COLUMN]

Run:
    nice .venv/bin/python benchmarks/iu_xray_pooled_mbr.py \
        --models radreport-iu-xray-cal195:1 radreport-iu-xray-lr1e-3:1 --out DIR \
        [--expect radreport-iu-xray-cal195:1=benchmarks/results/iu_xray_lr1e-3.csv:split90_s42]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from iu_xray_finetune import DATA
from iu_xray_halves import length_and_bleu, split_halves

from pipelines.model_versions import ModelVersionNotFound, load_trained_model
from radreport.llm.mbr import select_reports
from radreport.llm.retrieval import ImpressionIndex
from radreport.llm.trained_generator import trained_report_generator
from radreport.metrics.report_tables import read_prompt_table
from radreport.metrics.scoring import score_systems
from radreport.metrics.settings import EvaluationSettings


def member_candidates(spec: str, impressions: list[str]) -> tuple[list, list, dict]:
    """(candidate groups, retrieved examples, the settings' selection options) of one version."""
    member = load_trained_model(spec)
    settings = member.settings
    if settings.mbr_candidates < 2:
        raise SystemExit(f"{spec} decodes without MBR: nothing to pool")
    generator = trained_report_generator(settings, member.adapter_dir, member.alpaca_table)
    # Found as the version's own prompts were (a version trained before retrieval_match
    # existed retrieves by words).
    index = ImpressionIndex.from_table(member.train_pairs, match=settings.retrieval_match)
    examples = index.nearest(impressions, settings.retrieval_k)
    started = time.perf_counter()
    groups = generator.candidate_groups(impressions, examples)
    print(
        f"{spec}: {len(groups)} x {settings.mbr_candidates} candidates at stop bias "
        f"{settings.stop_logit_bias:+g} in {time.perf_counter() - started:.0f} s"
    )
    selection = {
        "example_references": settings.mbr_example_references,
        "impression_weight": settings.mbr_impression_weight,
    }
    return groups, examples, selection


def select(groups, examples, impressions, selection: dict) -> list[str]:
    shown = examples if selection["example_references"] else None
    return select_reports(groups, shown, impressions, selection["impression_weight"])


def print_halves(table: pd.DataFrame, systems: list[str]) -> None:
    references = table["reference"].tolist()
    dev, held_out = split_halves(table["study_id"].tolist(), 0)
    for part, rows in (("dev", dev), ("held-out", held_out), ("all", np.arange(len(table)))):
        refs = [references[i] for i in rows]
        reports = {name: [table[name].iloc[i] for i in rows] for name in systems}
        scores = score_systems(refs, reports, EvaluationSettings(bootstrap_resamples=1))
        for name in systems:
            ratio, _ = length_and_bleu(reports[name], refs)
            metrics = scores[name].metrics
            print(
                f"{part:8s} {len(rows):3d} {name:32s} BLEU-4 {metrics['bleu4']:.4f} "
                f"finding F1 {metrics['finding_f1_micro']:.4f} length {ratio:.3f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="NAME:VERSION, two or more")
    parser.add_argument("--out", type=Path, required=True, help="folder to write")
    parser.add_argument("--reports", type=Path, default=DATA / "val.csv", help="IU X-Ray val.csv")
    parser.add_argument(
        "--expect", action="append", default=[], help="NAME:VERSION=CSV:COLUMN, its reports"
    )
    args = parser.parse_args()
    if len(args.models) < 2:
        parser.error("give at least two model versions")
    table = read_prompt_table(args.reports)
    impressions = table["impression"].tolist()
    pooled_groups = [[] for _ in impressions]
    first_examples = first_selection = None
    saved = {}
    for spec in args.models:
        try:
            groups, examples, selection = member_candidates(spec, impressions)
        except ModelVersionNotFound as exc:
            raise SystemExit(f"--models: {exc}") from None
        if first_selection is None:
            first_examples, first_selection = examples, selection
        elif selection != first_selection or examples != first_examples:
            raise SystemExit(f"{spec} selects or retrieves unlike {args.models[0]}")
        table[spec] = select(groups, examples, impressions, selection)
        saved[spec] = groups
        for pool, group in zip(pooled_groups, groups, strict=True):
            pool.extend(group)
    for expectation in args.expect:
        spec, _, source = expectation.partition("=")
        path, _, column = source.rpartition(":")
        stored = pd.read_csv(path, keep_default_na=False).set_index("study_id")[column]
        same = (table["study_id"].map(stored) == table[spec]).sum()
        print(f"{spec}: {same} of {len(table)} reports as in {path} ({column})")
        if same != len(table):
            raise SystemExit(f"{spec}'s candidates do not select its stored reports")
    table["pooled"] = select(pooled_groups, first_examples, impressions, first_selection)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "predictions.csv", index=False)
    (args.out / "candidates.json").write_text(json.dumps(saved))
    print(f"wrote {args.out / 'predictions.csv'}")
    print_halves(table, [*args.models, "pooled"])


if __name__ == "__main__":
    main()
