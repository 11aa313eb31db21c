"""Probe: let the fine-tuned model choose among its own report and the retrieved reports.

For each IU X-Ray val study the candidates are the model's generated report (a column of a
predictions CSV written by iu_xray_finetune.py) and the reports of the 3 training studies
nearest by impression (typical-first retrieval); the prompt shows the nearest one, as in
training with k=1. The model scores each candidate by its log-probability given the prompt
(mean per token, or sum), and the highest is kept. Not part of the product: measured to see
whether likelihood reranking closes the gap to the exact-impression lookup.

    nice .venv/bin/python benchmarks/iu_xray_rerank_probe.py \\
        benchmarks/results/iu_xray_predictions_k1.csv /tmp/iu/adapter258
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from iu_xray_finetune import load_studies  # noqa: E402

from radreport.data.alpaca import format_prompt  # noqa: E402
from radreport.llm.base_model import resolve_base_model  # noqa: E402
from radreport.llm.generate import load_generation_model  # noqa: E402
from radreport.llm.prompt_table import build_prompt_table  # noqa: E402
from radreport.metrics.scoring import score_systems  # noqa: E402
from radreport.metrics.settings import EvaluationSettings  # noqa: E402

# Indices into [model report, example 1, example 2, example 3].
CANDIDATE_SETS = {
    "model | example 1": [0, 1],
    "examples 1-3": [1, 2, 3],
    "model | 1-3": [0, 1, 2, 3],
}


@torch.inference_mode()
def candidate_log_probs(model, tokenizer, prompt: str, candidates: list[str]):
    """(sum, mean) log-probability of each candidate's tokens + EOS after the prompt."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    sequences = [
        prompt_ids
        + tokenizer(text.strip(), add_special_tokens=False)["input_ids"]
        + [tokenizer.eos_token_id]
        for text in candidates
    ]
    width = max(map(len, sequences))
    ids = torch.full((len(sequences), width), tokenizer.pad_token_id)
    mask = torch.zeros_like(ids)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence)
        mask[row, : len(sequence)] = 1
    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    scores = []
    for row, sequence in enumerate(sequences):
        # Only the response positions go through the LM head (a 49k-word vocabulary).
        targets = torch.tensor(sequence[len(prompt_ids) :])
        logits = model.lm_head(hidden[row, len(prompt_ids) - 1 : len(sequence) - 1])
        token_log_probs = logits.float().log_softmax(-1).gather(-1, targets[:, None])
        scores.append((token_log_probs.sum().item(), token_log_probs.mean().item()))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions", type=Path)
    parser.add_argument("adapter", type=Path)
    parser.add_argument("--column", default="generated_no_repeat_ngram")
    args = parser.parse_args()
    predictions = pd.read_csv(args.predictions).fillna("")
    table = build_prompt_table(load_studies(), 3)
    val = table[table["split"] == "val"].reset_index(drop=True)
    if list(val["study_id"]) != list(predictions["study_id"]):
        raise SystemExit(f"{args.predictions}: not the val studies in table order")
    base = resolve_base_model("bundled:smollm2-135m-instruct")
    model, tokenizer = load_generation_model(base, args.adapter)
    tokenizer.padding_side = "right"
    rows = []
    for index in tqdm(range(len(val)), desc="scoring candidates"):
        examples = [tuple(pair) for pair in val["examples"][index]]
        prompt = format_prompt(val["impression"][index], examples[:1])
        candidates = [predictions[args.column][index]] + [report for _, report in examples]
        rows.append((candidates, candidate_log_probs(model, tokenizer, prompt, candidates)))
    systems = {"model": [c[0] for c, _ in rows], "example 1": [c[1] for c, _ in rows]}
    for name, indices in CANDIDATE_SETS.items():
        for key, label in ((1, "mean"), (0, "sum")):
            systems[f"{name}, {label}"] = [
                candidates[max(indices, key=lambda i: scores[i][key])]
                for candidates, scores in rows
            ]
    scored = score_systems(predictions["reference"].tolist(), systems, EvaluationSettings())
    chosen = systems["model | example 1, mean"]
    picked_example = sum(text == c[1] for text, (c, _) in zip(chosen, rows, strict=True))
    print(f"model | example 1, mean: the example kept for {picked_example} of {len(rows)}")
    for name, result in scored.items():
        metrics = {k: round(result.metrics[k], 3) for k in ("bleu1", "bleu4", "rouge_l")}
        print(f"{name:24s} {metrics} finding F1 {result.metrics['finding_f1_micro']:.3f}")


if __name__ == "__main__":
    main()
