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

from radreport.data.alpaca import IGNORE_INDEX, tokenize_example  # noqa: E402
from radreport.llm.base_model import resolve_base_model  # noqa: E402
from radreport.llm.generate import load_generation_model  # noqa: E402
from radreport.llm.prompt_table import build_prompt_table  # noqa: E402
from radreport.llm.settings import LLMSettings  # noqa: E402
from radreport.metrics.scoring import score_systems  # noqa: E402
from radreport.metrics.settings import EvaluationSettings  # noqa: E402

NO_LIMIT = 1 << 30  # max_seq_length: every candidate scored whole
# Indices into [model report, example 1, example 2, example 3].
CANDIDATE_SETS = {
    "model | example 1": [0, 1],
    "examples 1-3": [1, 2, 3],
    "model | 1-3": [0, 1, 2, 3],
}


@torch.inference_mode()
def candidate_log_probs(model, tokenizer, impression: str, example, candidates: list[str]):
    """(sum, mean) log-probability of each candidate's tokens + EOS after the prompt,
    tokenized exactly as in training (tokenize_example, nothing cut)."""
    encoded = [
        tokenize_example(tokenizer, impression, text, NO_LIMIT, examples=[example])
        for text in candidates
    ]
    width = max(len(item.input_ids) for item in encoded)
    ids = torch.full((len(encoded), width), tokenizer.pad_token_id)
    mask = torch.zeros_like(ids)
    for row, item in enumerate(encoded):
        ids[row, : len(item.input_ids)] = torch.tensor(item.input_ids)
        mask[row, : len(item.input_ids)] = 1
    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    scores = []
    for row, item in enumerate(encoded):
        labels = torch.tensor(item.labels)
        scored = (labels != IGNORE_INDEX).nonzero().squeeze(-1)
        # Only the response positions go through the LM head (a 49k-word vocabulary).
        logits = model.lm_head(hidden[row, scored - 1])
        token_log_probs = logits.float().log_softmax(-1).gather(-1, labels[scored, None])
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
    base = resolve_base_model(LLMSettings().base_model)  # as iu_xray_finetune.py trains
    model, tokenizer = load_generation_model(base, args.adapter)
    rows = []
    for index in tqdm(range(len(val)), desc="scoring candidates"):
        examples = [tuple(pair) for pair in val["examples"][index]]
        candidates = [predictions[args.column][index]] + [report for _, report in examples]
        scores = candidate_log_probs(
            model, tokenizer, val["impression"][index], examples[0], candidates
        )
        rows.append((candidates, scores))
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
