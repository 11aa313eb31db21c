"""Decode IU X-Ray val with a trained model version at another stop bias, or retrieving its
examples from all of its studies; write a CSV for iu_xray_paired_delta.py.

`run.py evaluate` decodes with the settings the version was trained with. The stop bias is
a decoding setting (it changes no weight), so whether a product run's adapter wants a
different one can be measured on the version itself, without training again. The rows,
the retrieved examples (from the version's own training pairs) and the generator are the
ones `run.py evaluate` uses; only `stop_logit_bias` differs.

`--retrieve-from all` keeps the version's bias (or the one given) and searches every study
of the version's table that has a report, its val and test splits too, where `run.py
evaluate` searches the train split only: what a larger pool of examples gives a trained
model, the lookup baseline's table being IU X-Ray train whole.

Run:
    nice .venv/bin/python benchmarks/iu_xray_version_stop_bias.py \
        --model radreport-iu-xray:3 --stop-bias -2.5 --out /tmp/v3_bias-2.5.csv
    .venv/bin/python benchmarks/iu_xray_paired_delta.py /tmp/v3_bias-2.5.csv prediction

The CSV has study_id, impression, reference (val.csv's findings) and prediction, in
val.csv's row order; OUT_test_half.csv beside it keeps the rows of the held-out half that
iu_xray_lora_sweep.py scores (split seed 0).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from iu_xray_halves import train_and_val, write_val_predictions

from pipelines.model_versions import ModelVersionNotFound, load_trained_model
from radreport.llm.predictions import predict_fitting_impressions
from radreport.llm.settings import LLMSettings
from radreport.llm.trained_generator import trained_report_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="NAME:VERSION of a trained model")
    parser.add_argument("--stop-bias", type=float, help="default: the version's own")
    parser.add_argument(
        "--retrieve-from",
        choices=("train", "all"),
        default="train",
        help="the version's train split (as run.py evaluate) or every study with a report",
    )
    parser.add_argument("--out", type=Path, required=True, help="CSV to write")
    args = parser.parse_args()

    try:
        model = load_trained_model(args.model)
    except ModelVersionNotFound as exc:
        raise SystemExit(f"--model: {exc}") from None
    # Validated as a config value is (the bias has bounds), not copied unchecked.
    bias = model.settings.stop_logit_bias if args.stop_bias is None else args.stop_bias
    settings = LLMSettings.model_validate({**model.settings.model_dump(), "stop_logit_bias": bias})
    pool = model.train_pairs
    if args.retrieve_from == "all":
        table = model.alpaca_table
        pool = table.loc[table["report"].str.strip() != "", ["study_id", "impression", "report"]]
    generator = trained_report_generator(settings, model.adapter_dir, model.alpaca_table)
    # The sweep's own val rows (val.csv's, in order), so the halves below are its halves.
    _, val = train_and_val(0)
    started = time.perf_counter()
    reports, _, too_long = predict_fitting_impressions(
        generator, val["impression"].tolist(), pool, settings.retrieval_k, settings.retrieval_match
    )
    seconds = time.perf_counter() - started
    if too_long:
        raise SystemExit(f"{len(too_long)} val prompts do not fit: {too_long[0]}")
    test_path = write_val_predictions(val, reports, args.out)
    print(
        f"{args.model} at stop bias {bias:g}, examples from {len(pool)} studies "
        f"({args.retrieve_from}): {len(val)} rows in {seconds:.0f} s"
    )
    print(f"wrote {args.out} and {test_path}")


if __name__ == "__main__":
    main()
