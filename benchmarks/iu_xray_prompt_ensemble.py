"""MBR over candidates from several prompts: the retrieved examples reordered or fewer, one
greedy report each, added to the IU config's 8 candidates; chosen on one half of IU X-Ray
val and scored on the other.

The IU config's MBR candidates all come from one prompt (the greedy decode and 7
epsilon-sampled reports), so they share whatever that prompt leads the model to. Another
order of the same 3 examples, or fewer of them, gives the model another context, so its
greedy report is a candidate the sampler rarely reaches. Each variant costs one greedy pass.

Variants: `rotate1` and `rotate2` (the examples' order turned by one and two), `k2` and `k1`
(the first two, the first one). Pools: the 8 saved candidates alone (`base`), with the
rotations, with the smaller prompts, with all four. Selection is the IU config's (mean
sentence BLEU against the other candidates and the 3 shown reports). The pool is chosen on
the "dev" half by corpus BLEU-4 and the "test" half is scored (iu_xray_halves.py); compare
two columns of the test half's CSV with

    .venv/bin/python benchmarks/iu_xray_paired_delta.py \
        benchmarks/results/iu_xray_prompt_ensemble.csv <pool> [--against base]

Run (the adapter and candidates of `iu_xray_finetune.py --retrieval-k 3 --mbr 8
--no-repeat-ngram 6 --stop-bias -0.5 --adapter-out DIR --candidates-out FILE`):

    nice .venv/bin/python benchmarks/iu_xray_prompt_ensemble.py --adapter DIR --candidates FILE

(--variants-out FILE keeps the 4 greedy passes' reports; --variants-in FILE, in place of
--adapter, rescores them without decoding.)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from iu_xray_halves import dev_scores, score_half, split_halves, val_with_candidates

from radreport.llm.base_model import resolve_base_model
from radreport.llm.generate import ReportGenerator
from radreport.llm.mbr import select_reports
from radreport.llm.settings import LLMSettings

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {
    "rotate1": lambda shown: shown[1:] + shown[:1],
    "rotate2": lambda shown: shown[2:] + shown[:2],
    "k2": lambda shown: shown[:2],
    "k1": lambda shown: shown[:1],
}
POOLS = {
    "base": (),
    "rotations": ("rotate1", "rotate2"),
    "fewer": ("k2", "k1"),
    "all": ("rotate1", "rotate2", "k2", "k1"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", type=Path, help="the adapter to decode with")
    parser.add_argument("--candidates", type=Path, required=True, help="JSON, one list per val row")
    parser.add_argument("--decoder", default="native", choices=["torch", "native", "onnxruntime"])
    parser.add_argument("--seed", type=int, default=0, help="seed of the dev/test split")
    parser.add_argument("--out", type=Path, default=RESULTS / "iu_xray_prompt_ensemble")
    parser.add_argument("--variants-out", type=Path, help="keep each variant's reports (JSON)")
    parser.add_argument(
        "--variants-in", type=Path, help="reports of an earlier --variants-out: no decoding"
    )
    args = parser.parse_args()
    if not (args.adapter or args.variants_in):
        parser.error("--adapter or --variants-in is needed")

    train, val, groups = val_with_candidates(args.candidates, 3)
    shown = [[tuple(pair) for pair in row] for row in val["examples"]]
    impressions = val["impression"].tolist()
    if args.variants_in:
        variant_reports, seconds = json.loads(args.variants_in.read_text()), {}
    else:
        variant_reports, seconds = _decode_variants(args, impressions, shown)
    if args.variants_out:
        args.variants_out.write_text(json.dumps(variant_reports))

    chosen = {
        pool: select_reports(
            [
                list(group) + [variant_reports[v][i] for v in names]
                for i, group in enumerate(groups)
            ],
            shown,
        )
        for pool, names in POOLS.items()
    }
    dev, test = split_halves(val["study_id"].tolist(), args.seed)
    scores = dev_scores(chosen, val["report"].tolist(), dev)
    # Ties go to the smaller pool.
    best = max(POOLS, key=lambda pool: (scores[pool]["bleu4"], -len(POOLS[pool])))
    print(f"chosen on dev: {best}", flush=True)

    systems = {pool: [chosen[pool][i] for i in test] for pool in dict.fromkeys(["base", best])}
    summary = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "generate_seconds": seconds,
        "dev_studies": len(dev),
        "test_studies": len(test),
        "dev": scores,
        "chosen": best,
        "changed_choices_dev": sum(chosen[best][i] != chosen["base"][i] for i in dev),
        "test": score_half(val.iloc[test], train, systems, args.out.with_suffix(".csv")),
    }
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary["test"], indent=2))


def _decode_variants(args, impressions, shown) -> tuple[dict[str, list[str]], dict[str, float]]:
    """Each variant's greedy reports with the IU config's decoding (configs/iu_xray.yaml),
    MBR off: one report per prompt; and the seconds each pass took."""
    settings = LLMSettings(
        retrieval_k=3,
        max_new_tokens=128,
        no_repeat_ngram_size=6,
        stop_logit_bias=-0.5,
        decoder=args.decoder,
    )
    generator = ReportGenerator.from_settings(
        settings, resolve_base_model(settings.base_model), args.adapter
    )
    reports, seconds = {}, {}
    for name, reorder in VARIANTS.items():
        started = time.perf_counter()
        reports[name] = generator.generate(impressions, [reorder(s) for s in shown])
        seconds[name] = round(time.perf_counter() - started, 1)
        print(f"{name}: {seconds[name]} s", flush=True)
    return reports, seconds


if __name__ == "__main__":
    main()
