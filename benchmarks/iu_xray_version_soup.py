"""Average the adapters of trained model versions that differ only in their training seed,
calibrate the soup's stop bias as the pipeline calibrates a trained model, and decode IU
X-Ray val with it; write a CSV for iu_xray_paired_delta.py.

The thirty-second session's soups (iu_xray_seed_soup.py) were of 150-step sweep runs decoded
at a fixed bias; this takes the soup to the product: the members are the IU config's own
product runs (one epoch), and the soup's bias is chosen on the members' shared validation
split by radreport.llm.stop_bias_calibration, as `calibrate_stop_bias` chooses a trained
model's, never on IU val. The rows, retrieved examples and generator are the ones
`run.py evaluate` uses.

Run:
    nice .venv/bin/python benchmarks/iu_xray_version_soup.py --models radreport-iu-xray:3 \
        radreport-iu-xray:4 radreport-iu-xray:5 --config configs/iu_xray.yaml --out /tmp/soup
    .venv/bin/python benchmarks/iu_xray_paired_delta.py /tmp/soup/predictions.csv prediction

OUT holds the soup adapter (adapter/, safetensors), calibration.json, predictions.csv
(study_id, impression, reference, prediction in val.csv's order) and
predictions_test_half.csv (the held-out half iu_xray_lora_sweep.py scores, split seed 0).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from iu_xray_halves import train_and_val, write_val_predictions
from iu_xray_seed_soup import SOUP, mean_adapter, save_soup

from pipelines.model_versions import ModelVersionNotFound, TrainedModel, load_trained_model
from radreport.config import load_run_config
from radreport.config_loading import ConfigError
from radreport.llm.base_model import resolve_base_model
from radreport.llm.predictions import predict_fitting_impressions
from radreport.llm.prompt_table import resolve_token_budgets
from radreport.llm.settings import LLMSettings
from radreport.llm.stop_bias_calibration import calibrate_on_validation
from radreport.llm.trained_generator import trained_report_generator

# What may differ between members: the seed is the point; the bias is chosen per model,
# and how it was chosen (a version trained before calibration has it off) is redone here.
MAY_DIFFER = {
    # Members trained before configs/iu_xray.yaml sized its token budgets by the data had
    # 736 / 128 by hand; both hold every IU X-Ray training example (BENCHMARKS.md, fortieth
    # session). The soup decodes with the config's, sized by the members' table.
    "max_seq_length",
    "max_new_tokens",
    "seed",
    "stop_logit_bias",
    "stop_bias_calibration_studies",
    "stop_bias_calibration_step",
    "stop_bias_calibration_max_tries",
}


def check_members(settings: LLMSettings, members: list[TrainedModel]) -> None:
    """Refuse members that are not the config's setting on the same data, with one line."""
    expected = settings.model_dump(exclude=MAY_DIFFER)
    for member in members:
        differing = sorted(
            key
            for key, value in member.settings.model_dump(exclude=MAY_DIFFER).items()
            if expected[key] != value
        )
        if differing:
            raise SystemExit(f"{member.label} differs from the config in {differing}")
        if not member.alpaca_table.equals(members[0].alpaca_table):
            raise SystemExit(f"{member.label} was trained on other data than {members[0].label}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="NAME:VERSION, two or more")
    parser.add_argument(
        "--config", type=Path, required=True, help="the config that trained the members"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write")
    args = parser.parse_args()
    if len(args.models) < 2:
        parser.error("give at least two model versions")
    try:
        members = [load_trained_model(spec) for spec in args.models]
    except ModelVersionNotFound as exc:
        raise SystemExit(f"--models: {exc}") from None
    try:
        # The config's own settings: its seed picks the calibration sample, its bias starts
        # the walk, as in a run of the config.
        settings = load_run_config(args.config).llm
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    settings = resolve_token_budgets(members[0].alpaca_table, settings)
    check_members(settings, members)
    base = resolve_base_model(settings.base_model)
    adapter = args.out / "adapter"
    soup = mean_adapter([member.adapter_dir for member in members], base)
    save_soup(soup, members[0].adapter_dir, adapter)
    rank = soup.peft_config[SOUP].r
    del soup
    print(f"{adapter}: mean of {len(members)} adapters, rank {rank}")

    generator = trained_report_generator(settings, adapter, members[0].alpaca_table)
    started = time.perf_counter()
    calibration = calibrate_on_validation(generator, members[0].alpaca_table, settings)
    calibrate_seconds = time.perf_counter() - started
    for trial in calibration.trials:
        print(
            f"  stop bias {trial.bias:+g}: length ratio {trial.length_ratio:.3f}, "
            f"BLEU-4 {trial.bleu4:.3f} on {calibration.studies} val studies"
        )
    print(f"chosen {calibration.chosen_bias:+g} ({calibrate_seconds:.0f} s)")
    (args.out / "calibration.json").write_text(
        json.dumps(
            {
                "members": args.models,
                "calibration": calibration.as_dict(),
                "seconds": round(calibrate_seconds),
            },
            indent=2,
        )
        + "\n"
    )

    settings = LLMSettings.model_validate(
        {**settings.model_dump(), "stop_logit_bias": calibration.chosen_bias}
    )
    generator = trained_report_generator(settings, adapter, members[0].alpaca_table)
    # The sweep's own val rows (val.csv's, in order), so the halves below are its halves.
    _, val = train_and_val(0)
    started = time.perf_counter()
    reports, _, too_long = predict_fitting_impressions(
        generator,
        val["impression"].tolist(),
        members[0].train_pairs,
        settings.retrieval_k,
        settings.retrieval_match,
    )
    seconds = time.perf_counter() - started
    if too_long:
        raise SystemExit(f"{len(too_long)} val prompts do not fit: {too_long[0]}")
    out = args.out / "predictions.csv"
    write_val_predictions(val, reports, out)
    print(f"soup at stop bias {calibration.chosen_bias:g}: {len(val)} rows in {seconds:.0f} s")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
