"""Fine-tune on IU X-Ray train, generate for every val study, score beside the baselines.

The issue's bar: beat the exact-impression lookup (val BLEU-4 0.288) on BLEU-4 and
finding F1. Run once without and once with retrieval-augmented prompting:

    nice .venv/bin/python benchmarks/iu_xray_finetune.py --max-steps 150 --retrieval-k 0
    nice .venv/bin/python benchmarks/iu_xray_finetune.py --max-steps 150 --retrieval-k 1

Each run appends a JSON line to benchmarks/results/iu_xray_finetune.jsonl and writes every
val prediction to benchmarks/results/iu_xray_predictions_k<K>.csv.

Decoding variants are scored on the same adapter: plain greedy (skip with --skip-greedy),
greedy with repeated n-gram blocking (--no-repeat-ngram N), beam search (--num-beams N),
MBR over the greedy decode and N - 1 epsilon-sampled ones (--mbr N; with --no-repeat-ngram,
its candidates block repeats too; with retrieval, its candidates are also selected with the
retrieved reports as further pseudo-references, column generated_mbrN_example_refs).
Keep the adapter with --adapter-out DIR and score other decodings of it later with
--adapter DIR (no training then):

    nice .venv/bin/python benchmarks/iu_xray_finetune.py --max-steps 258 --retrieval-k 1 \
        --skip-greedy --no-repeat-ngram 6 --adapter-out /tmp/iu_adapter
    nice .venv/bin/python benchmarks/iu_xray_finetune.py --adapter /tmp/iu_adapter \
        --retrieval-k 1 --skip-greedy --num-beams 3

--decoder onnxruntime|native decodes on that engine (predictions in
iu_xray_predictions_k<K>_<decoder>.csv); --stop-bias B sets llm.stop_logit_bias for every
decoding (columns then end in _stop_biasB), as configs/iu_xray.yaml does with -0.5.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from radreport.llm.finetune import finetune
from radreport.llm.generate import ReportGenerator
from radreport.llm.mbr import select_reports
from radreport.llm.prompt_table import build_prompt_table, split_rows
from radreport.llm.settings import LLMSettings
from radreport.llm.trained_generator import trained_report_generator
from radreport.metrics.evaluate import evaluate_reports
from radreport.metrics.report_tables import read_report_table
from radreport.metrics.scoring import score_systems
from radreport.metrics.settings import EvaluationSettings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "iu_xray"
RESULTS = Path(__file__).resolve().parent / "results" / "iu_xray_finetune.jsonl"
HEADLINE = ("bleu1", "bleu4", "rouge_l", "sentence_bleu", "finding_f1_micro", "finding_f1_macro")


def load_studies() -> pd.DataFrame:
    """Train and val in one table with their R2Gen split; rows without impression dropped."""
    tables = []
    for split in ("train", "val"):
        table = read_report_table(DATA / f"{split}.csv").rename(columns={"reference": "report"})
        table["split"] = split
        tables.append(table[table["impression"].str.strip() != ""])
    return pd.concat(tables, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=150)
    parser.add_argument("--retrieval-k", type=int, default=0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--lora-r", type=int, default=16, help="llm.lora_r")
    parser.add_argument("--lora-alpha", type=int, default=16, help="llm.lora_alpha")
    parser.add_argument("--seed", type=int, default=42, help="llm.seed (training and sampling)")
    parser.add_argument("--eval-rows", type=int, default=64, help="val rows for the eval loss")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument(
        "--no-repeat-ngram",
        type=int,
        default=0,
        help="also decode with repeated n-gram blocking of this size and score it",
    )
    parser.add_argument("--num-beams", type=int, default=0, help="also decode with N beams")
    parser.add_argument("--mbr", type=int, default=0, help="also decode with MBR over N candidates")
    parser.add_argument(
        "--candidates-out", type=Path, help="with --mbr: keep every candidate here (JSON)"
    )
    parser.add_argument("--skip-greedy", action="store_true", help="no plain greedy pass")
    parser.add_argument("--adapter-out", type=Path, help="keep the trained adapter here")
    parser.add_argument("--adapter", type=Path, help="score this adapter; no training")
    parser.add_argument(
        "--decoder",
        choices=["torch", "onnxruntime", "native"],
        default="torch",
        help="decoding engine",
    )
    parser.add_argument(
        "--compute-dtype",
        choices=["auto", "bfloat16", "float32"],
        default="auto",
        help="llm.compute_dtype (the native decoder: bf16 matrices unless float32)",
    )
    parser.add_argument("--predictions-out", type=Path, help="write the predictions CSV here")
    parser.add_argument(
        "--stop-bias",
        type=float,
        default=0.0,
        help="llm.stop_logit_bias for every decoding; its columns end in _stop_bias<value>",
    )
    args = parser.parse_args()
    if args.decoder == "onnxruntime" and (args.num_beams > 1 or args.mbr > 1):
        raise SystemExit("--decoder onnxruntime decodes greedily: no --num-beams or --mbr")
    decodings = _decodings(args)

    table = build_prompt_table(load_studies(), args.retrieval_k)
    settings = LLMSettings(
        max_steps=args.max_steps,
        per_device_batch_size=args.batch,
        learning_rate=args.learning_rate,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        seed=args.seed,
        retrieval_k=args.retrieval_k,
        max_seq_length=256 + 160 * args.retrieval_k,
        eval_steps=max(args.max_steps // 3, 1),
        save_steps=max(args.max_steps // 3, 1),
        early_stopping_patience=None,
        max_new_tokens=128,
        num_threads=args.threads,
        decoder=args.decoder,
        stop_logit_bias=args.stop_bias,
        compute_dtype=args.compute_dtype,
    )
    val_rows = split_rows(table, "val")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as output_dir:
        if args.adapter:
            result, adapter_dir = None, args.adapter
        else:
            result = finetune(
                split_rows(table, "train"), val_rows[: args.eval_rows], settings, output_dir
            )
            adapter_dir = result.adapter_dir
            if args.adapter_out:
                shutil.copytree(adapter_dir, args.adapter_out, dirs_exist_ok=True)
        train_seconds = time.perf_counter() - started
        generator = trained_report_generator(settings, adapter_dir, table)
        val = table[table["split"] == "val"].reset_index(drop=True)
        impressions = val["impression"].tolist()
        examples = [[tuple(p) for p in row] for row in val["examples"]]
        generated, generate_seconds = {}, {}
        for column, (num_beams, no_repeat_ngram, mbr_candidates) in decodings.items():
            generator.rules = replace(generator.rules, no_repeat_ngram_size=no_repeat_ngram)
            generator.mbr_candidates = mbr_candidates  # sampling seeded from settings.seed
            started = time.perf_counter()
            if mbr_candidates > 1:
                generated.update(_mbr_decodings(generator, column, impressions, examples, args))
            else:
                generated[column] = generator.generate(impressions, examples, num_beams=num_beams)
            generate_seconds[column] = round(time.perf_counter() - started, 1)
    if args.stop_bias:
        generated = {
            f"{column}_stop_bias{args.stop_bias:g}": texts for column, texts in generated.items()
        }
    samples = val[["study_id", "impression"]].assign(reference=val["report"], **generated)
    engine = "" if args.decoder == "torch" else f"_{args.decoder}"
    predictions = args.predictions_out or RESULTS.with_name(
        f"iu_xray_predictions_k{args.retrieval_k}{engine}.csv"
    )
    samples.to_csv(predictions, index=False)  # every val prediction, to study or re-score
    train = table[table["split"] == "train"]
    # The first decoding is "the model"; every decoding is scored against the same references.
    first = next(iter(generated))
    evaluation = evaluate_reports(
        samples[["study_id", "impression", "reference"]].assign(generated=samples[first]),
        train,
        EvaluationSettings(),
    )
    model_scores = {k: evaluation.metrics[k] for k in HEADLINE}
    record = {
        "date": dt.date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "train_seconds": round(train_seconds, 1) if result else None,
        "generate_seconds": generate_seconds,
        "training": result.metrics if result else None,
        "model": model_scores,
        "decodings": {first: model_scores, **_decoding_scores(samples, list(generated)[1:])},
        "baselines": {
            name: {k: scores[k] for k in HEADLINE} for name, scores in evaluation.baselines.items()
        },
        "examples": samples.head(5).to_dict("records"),
        "samples_during_training": result.samples if result else None,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(json.dumps(record) + "\n")
    print(json.dumps({k: record[k] for k in ("args", "train_seconds", "decodings")}, indent=2))
    lookup = record["baselines"]["exact_impression_lookup"]
    for key in ("bleu4", "finding_f1_micro"):
        for column, scores in record["decodings"].items():
            print(f"{key}: {column} {scores[key]:.3f} vs exact lookup {lookup[key]:.3f}")


def _decodings(args: argparse.Namespace) -> dict[str, tuple[int, int, int]]:
    """Prediction column -> (beams, n-gram blocking size, MBR candidates), in run order."""
    decodings = {} if args.skip_greedy else {"generated": (1, 0, 0)}
    if args.no_repeat_ngram:
        decodings["generated_no_repeat_ngram"] = (1, args.no_repeat_ngram, 0)
    if args.num_beams > 1:
        decodings[f"generated_beam{args.num_beams}"] = (args.num_beams, 0, 0)
    if args.mbr > 1:
        decodings[f"generated_mbr{args.mbr}"] = (1, args.no_repeat_ngram, args.mbr)
    if not decodings:
        raise SystemExit(
            "nothing to decode: --skip-greedy needs --no-repeat-ngram, --num-beams or --mbr"
        )
    return decodings


def _mbr_decodings(
    generator: ReportGenerator,
    column: str,
    impressions: list[str],
    examples: list[list[tuple[str, str]]],
    args: argparse.Namespace,
) -> dict[str, list[str]]:
    """MBR's candidates decoded once and selected two ways, as `generate` selects: against
    the other candidates only (`column`) and, with retrieval, also against the prompt's
    retrieved reports as pseudo-references (`column`_example_refs, llm.mbr_example_references).
    """
    groups = generator.candidate_groups(impressions, examples)
    if args.candidates_out:
        args.candidates_out.write_text(json.dumps(groups))
    decodings = {column: select_reports(groups)}
    if args.retrieval_k:
        decodings[f"{column}_example_refs"] = select_reports(groups, examples)
    return decodings


def _decoding_scores(samples: pd.DataFrame, columns: list[str]) -> dict[str, dict[str, float]]:
    """The other decodings against the same references (the baselines do not change, and
    the first decoding is scored with them by evaluate_reports)."""
    if not columns:
        return {}
    systems = {column: samples[column].tolist() for column in columns}
    scores = score_systems(samples["reference"].tolist(), systems, EvaluationSettings())
    return {column: {k: scores[column].metrics[k] for k in HEADLINE} for column in columns}


if __name__ == "__main__":
    main()
