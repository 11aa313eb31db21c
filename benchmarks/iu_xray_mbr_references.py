"""MBR selection scored against more of what radiologists wrote: the N nearest training reports
as pseudo-references, chosen on one half of IU X-Ray val and scored on the other.

MBR keeps the candidate with the highest mean BLEU against pseudo-references, an estimate of
its expected BLEU against the report a radiologist would write. The IU config's rule
(`llm.mbr_example_references`) takes the 7 other candidates and the 3 distinct reports shown in
the prompt. Those are few, and the prompt's reports are distinct by construction, so a report
written for half the training studies of an impression weighs as much as one written once.
Here the pseudo-references are the other candidates and the N training studies nearest by
impression, repeats kept (`ImpressionIndex.nearest(distinct=False)`): for a common impression,
a sample of what was written for it.

Only selection changes, so one set of candidates (`iu_xray_finetune.py --mbr 8
--candidates-out FILE`) is scored every way. N is chosen on the "dev" half by corpus BLEU-4
and the "test" half is scored (iu_xray_halves.py). The test half's
reports go to benchmarks/results/iu_xray_mbr_references.csv; compare two columns with

    .venv/bin/python benchmarks/iu_xray_paired_delta.py \
        benchmarks/results/iu_xray_mbr_references.csv nearest<N> [--against example_refs]

Run: .venv/bin/python benchmarks/iu_xray_mbr_references.py --candidates FILE
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from iu_xray_halves import dev_scores, score_half, split_halves, val_with_candidates

from radreport.llm.mbr import select_reports
from radreport.llm.retrieval import ImpressionIndex

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=Path, required=True, help="JSON, one list per val row")
    parser.add_argument("--retrieval-k", type=int, default=3, help="as the candidates' prompts")
    parser.add_argument("--counts", default="8,16,32", help="values of N tried on dev")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dev/test split")
    parser.add_argument("--out", type=Path, default=RESULTS / "iu_xray_mbr_references")
    args = parser.parse_args()
    counts = [int(value) for value in args.counts.split(",")]

    train, val, groups = val_with_candidates(args.candidates, args.retrieval_k)
    shown = [[tuple(pair) for pair in row] for row in val["examples"]]
    nearest = ImpressionIndex.from_table(train).nearest(
        val["impression"].tolist(), max(counts), distinct=False
    )
    rules = {"example_refs": shown} | {
        f"nearest{n}": [pairs[:n] for pairs in nearest] for n in counts
    }
    chosen = {name: select_reports(groups, examples) for name, examples in rules.items()}
    references = val["report"].tolist()

    dev, test = split_halves(val["study_id"].tolist(), args.seed)
    scores = dev_scores(chosen, references, dev)
    # Ties go to the fewer references.
    best = max(counts, key=lambda n: (scores[f"nearest{n}"]["bleu4"], -n))
    print(f"chosen on dev: nearest{best}", flush=True)

    systems = {name: [chosen[name][i] for i in test] for name in ("example_refs", f"nearest{best}")}
    summary = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "dev_studies": len(dev),
        "test_studies": len(test),
        "dev": scores,
        "chosen": f"nearest{best}",
        "changed_choices_dev": sum(
            chosen[f"nearest{best}"][i] != chosen["example_refs"][i] for i in dev
        ),
        "test": score_half(val.iloc[test], train, systems, args.out.with_suffix(".csv")),
    }
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary["test"], indent=2))


if __name__ == "__main__":
    main()
