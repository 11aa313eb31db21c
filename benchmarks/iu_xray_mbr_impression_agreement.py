"""MBR selection that also asks the report to agree with its own impression: the weight of
that agreement chosen on one half of IU X-Ray val and scored on the other.

The IU config's MBR keeps the candidate with the highest expected BLEU (against the other
candidates and the 3 reports shown in the prompt). BLEU does not weigh findings, so among
near-equal candidates it is indifferent to one that contradicts the radiologist's
impression ("Cardiomegaly ..." drafted as "The heart is normal in size"). Here each
candidate's utility is

    expected BLEU + w * agreement with the impression,

where the agreement (`radreport.llm.mbr.impression_agreement`) is the example-based F1
between the findings the rule-based labeler (`radreport.metrics.labeler`, the one finding F1
uses) reads in the candidate and in the impression; two empty sets agree (1). Only the input
is used, never a reference; but the labeler is the metric's own, so finding F1 gains are
partly by construction, and BLEU is the check that the reports did not get worse.

Only selection changes, so one set of candidates (`iu_xray_finetune.py --mbr 8
--candidates-out FILE`) is scored for every w. w is chosen on the "dev" half
(iu_xray_halves.py): the highest dev finding F1 (micro) among the weights whose dev corpus
BLEU-4 is at most 0.003 below w = 0's; ties to the smaller w. The test half is scored and
its reports go to benchmarks/results/iu_xray_mbr_impression_agreement.csv; compare with

    .venv/bin/python benchmarks/iu_xray_paired_delta.py \\
        benchmarks/results/iu_xray_mbr_impression_agreement.csv w<W> [--against w0]

Run: .venv/bin/python benchmarks/iu_xray_mbr_impression_agreement.py --candidates FILE
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from iu_xray_halves import dev_bleu_and_f1, score_half, split_halves, val_with_candidates

from radreport.llm.mbr import best_non_empty, expected_bleu, impression_agreement

RESULTS = Path(__file__).resolve().parent / "results"
# Finding F1 may cost at most this much dev BLEU-4 against w = 0 (the IU config's rule).
BLEU_TOLERANCE = 0.003


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=Path, required=True, help="JSON, one list per val row")
    parser.add_argument("--retrieval-k", type=int, default=3, help="as the candidates' prompts")
    parser.add_argument("--weights", default="0,0.02,0.05,0.1,0.2,0.5", help="values of w")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dev/test split")
    parser.add_argument("--out", type=Path, default=RESULTS / "iu_xray_mbr_impression_agreement")
    args = parser.parse_args()
    weights = sorted({0.0, *(float(value) for value in args.weights.split(","))})

    train, val, groups = val_with_candidates(args.candidates, args.retrieval_k)
    bleu = [
        expected_bleu(group, [report for _, report in shown])
        for group, shown in zip(groups, val["examples"], strict=True)
    ]
    agreement = [
        impression_agreement(group, impression)
        for group, impression in zip(groups, val["impression"], strict=True)
    ]
    chosen = {
        f"w{w:g}": [
            group[best_non_empty(group, b + w * a)]
            for group, b, a in zip(groups, bleu, agreement, strict=True)
        ]
        for w in weights
    }
    references = val["report"].tolist()

    dev, test = split_halves(val["study_id"].tolist(), args.seed)
    scores = dev_bleu_and_f1(chosen, references, dev)
    floor = scores["w0"]["bleu4"] - BLEU_TOLERANCE
    allowed = [w for w in weights if scores[f"w{w:g}"]["bleu4"] >= floor]
    best = max(allowed, key=lambda w: (scores[f"w{w:g}"]["finding_f1_micro"], -w))
    print(f"chosen on dev: w{best:g}", flush=True)

    names = dict.fromkeys(("w0", f"w{best:g}"))
    systems = {name: [chosen[name][i] for i in test] for name in names}
    summary = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "dev_studies": len(dev),
        "test_studies": len(test),
        "dev": scores,
        "chosen": f"w{best:g}",
        "changed_choices_dev": sum(chosen[f"w{best:g}"][i] != chosen["w0"][i] for i in dev),
        "impression_agreement_test": {
            name: float(
                np.mean(
                    [impression_agreement([chosen[name][i]], val["impression"][i])[0] for i in test]
                )
            )
            for name in systems
        },
        "test": score_half(val.iloc[test], train, systems, args.out.with_suffix(".csv")),
    }
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    shown = ("chosen", "impression_agreement_test", "test")
    print(json.dumps({k: summary[k] for k in shown}, indent=2))


if __name__ == "__main__":
    main()
