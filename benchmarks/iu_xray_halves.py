"""IU X-Ray val in two halves: a decoding choice is made on "dev" and scored on "test".

Run on saved predictions (a CSV with study_id, reference and one column per system, as
iu_xray_paired_delta.py reads): BLEU-4, finding F1 (micro) and length ratio of each column
on the dev half, the held-out half and all of val; a group written A+B is scored as the mean
of its columns (one setting trained under several seeds).
    .venv/bin/python benchmarks/iu_xray_halves.py benchmarks/results/iu_xray_neftune.csv \
        split90_s42+split90_s1 neftune5_s42

A decoding knob (a stop bias, a selection rule, a candidate pool) chosen on the studies it
is scored on flatters itself, so the benchmarks that choose one split val by a seeded
permutation of the study ids, choose by corpus BLEU-4 on one half and score the other half
beside the exact-impression lookup with the evaluation's own code.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from iu_xray_finetune import load_studies

from radreport.llm.prompt_table import build_prompt_table
from radreport.metrics.baselines import baseline_reports
from radreport.metrics.bleu_statistics import bleu_from_statistics, corpus_statistics
from radreport.metrics.normalize import normalize_report
from radreport.metrics.scoring import score_systems
from radreport.metrics.settings import EvaluationSettings


def val_with_candidates(
    candidates_path: Path, retrieval_k: int
) -> tuple[pd.DataFrame, pd.DataFrame, list[list[str]]]:
    """(train rows, val rows, candidate groups): the prompt table with `retrieval_k`
    examples, as the candidates' prompts had, and the groups saved by `iu_xray_finetune.py
    --candidates-out`, one per val row."""
    train, val = train_and_val(retrieval_k)
    return train, val, read_candidates(candidates_path, len(val))


def train_and_val(retrieval_k: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train rows, val rows) of the prompt table with `retrieval_k` examples."""
    table = build_prompt_table(load_studies(), retrieval_k)
    return table[table["split"] == "train"], table[table["split"] == "val"].reset_index(drop=True)


def read_candidates(candidates_path: Path, val_rows: int) -> list[list[str]]:
    """The candidate groups saved by `iu_xray_finetune.py --candidates-out`, one per val row."""
    groups = json.loads(candidates_path.read_text())
    if len(groups) != val_rows:
        raise SystemExit(
            f"{candidates_path}: {len(groups)} candidate lists for {val_rows} val rows"
        )
    return groups


def split_halves(study_ids: list[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the dev and test halves: a seeded permutation of the sorted ids."""
    order = np.argsort(study_ids, kind="stable")
    shuffled = order[np.random.default_rng(seed).permutation(len(order))]
    half = len(shuffled) // 2
    return np.sort(shuffled[:half]), np.sort(shuffled[half:])


def write_val_predictions(val: pd.DataFrame, reports: list[str], path: Path) -> Path:
    """Write val's rows (study_id, impression, reference) with `reports` as `prediction`
    to `path`, for iu_xray_paired_delta.py, and the held-out half's rows (split seed 0, the
    sweep's) beside it as PATH_test_half.csv; return that file's path."""
    table = val[["study_id", "impression"]].assign(reference=val["report"], prediction=reports)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    _, test = split_halves(table["study_id"].tolist(), 0)
    test_path = path.with_name(f"{path.stem}_test_half.csv")
    table.iloc[test].to_csv(test_path, index=False)
    return test_path


def length_and_bleu(texts: list[str], references: list[str]) -> tuple[float, float]:
    """(hypothesis / reference length, corpus BLEU-4), on normalised text as the metrics."""
    statistics = corpus_statistics(
        [normalize_report(t) for t in texts], [normalize_report(r) for r in references]
    ).sum(axis=0)
    return statistics[0] / statistics[1], float(bleu_from_statistics(statistics, 4))


def dev_scores(
    systems: dict[str, list[str]], references: list[str], dev: np.ndarray
) -> dict[str, dict[str, float]]:
    """Length ratio and corpus BLEU-4 of each system (reports of all val rows) on `dev`."""
    scores = {}
    for name, reports in systems.items():
        ratio, bleu4 = length_and_bleu([reports[i] for i in dev], [references[i] for i in dev])
        scores[name] = {"length_ratio": ratio, "bleu4": bleu4}
        print(f"dev, {name}: length ratio {ratio:.3f}, BLEU-4 {bleu4:.4f}", flush=True)
    return scores


def dev_bleu_and_f1(
    systems: dict[str, list[str]], references: list[str], dev: np.ndarray
) -> dict[str, dict[str, float]]:
    """`dev_scores` with each system's finding F1 (micro) on `dev` added."""
    scores = dev_scores(systems, references, dev)
    dev_f1 = score_systems(
        [references[i] for i in dev],
        {name: [reports[i] for i in dev] for name, reports in systems.items()},
        EvaluationSettings(bootstrap_resamples=1),
    )
    for name in systems:
        scores[name]["finding_f1_micro"] = dev_f1[name].metrics["finding_f1_micro"]
        print(f"dev, {name}: finding F1 {scores[name]['finding_f1_micro']:.4f}", flush=True)
    return scores


def score_half(
    part: pd.DataFrame, train: pd.DataFrame, systems: dict[str, list[str]], csv_path: Path
) -> dict[str, dict[str, float]]:
    """Score `systems` (one report per row of `part`, the test half's val rows) beside the
    exact-impression lookup; write every report to `csv_path`; return each one's length
    ratio, BLEU-1/4, ROUGE-L and finding F1 (micro)."""
    references = part["report"].tolist()
    lookup = baseline_reports(
        train.rename(columns={"report": "reference"}), part["impression"].tolist()
    )["exact_impression_lookup"]
    systems = {"exact_impression_lookup": lookup} | systems
    predictions = part[["study_id", "impression"]].assign(reference=references, **systems)
    predictions.to_csv(csv_path, index=False)
    scores = score_systems(references, systems, EvaluationSettings())
    return {
        name: {
            "length_ratio": length_and_bleu(texts, references)[0],
            **{k: scores[name].metrics[k] for k in ("bleu1", "bleu4", "rouge_l")},
            "finding_f1_micro": scores[name].metrics["finding_f1_micro"],
        }
        for name, texts in systems.items()
    }


def halves_table(table: pd.DataFrame, groups: list[str], seed: int = 0) -> dict:
    """{part: {group: {bleu4, finding_f1_micro, length_ratio}}} for the dev half, the
    held-out half and all rows; a group "A+B" is the mean of its columns' scores."""
    references = table["reference"].tolist()
    columns = sorted({column for group in groups for column in group.split("+")})
    dev, held_out = split_halves(table["study_id"].tolist(), seed)
    parts = {"dev": dev, "held-out": held_out, "all": np.arange(len(table))}
    result = {}
    for part, rows in parts.items():
        part_references = [references[i] for i in rows]
        texts = {column: [str(table[column].iloc[i]) for i in rows] for column in columns}
        scores = score_systems(part_references, texts, EvaluationSettings(bootstrap_resamples=1))
        result[part] = {
            group: {
                key: float(np.mean([scores[c].metrics[key] for c in group.split("+")]))
                for key in ("bleu4", "finding_f1_micro", "length_ratio")
            }
            for group in groups
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("predictions", type=Path)
    parser.add_argument("groups", nargs="+", help="prediction columns; A+B scores their mean")
    parser.add_argument("--seed", type=int, default=0, help="the halves' permutation seed")
    args = parser.parse_args()
    table = pd.read_csv(args.predictions, keep_default_na=False)
    for part, groups in halves_table(table, args.groups, args.seed).items():
        for group, scores in groups.items():
            print(
                f"{part:8s} {group:28s} BLEU-4 {scores['bleu4']:.4f}  finding F1 "
                f"{scores['finding_f1_micro']:.4f}  length {scores['length_ratio']:.3f}"
            )


if __name__ == "__main__":
    main()
