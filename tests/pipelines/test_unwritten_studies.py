"""The chain on text-only studies of which some prompts overflow the model's context: those
studies are recorded and left unscored, every other study is written and scored."""

from __future__ import annotations

import pandas as pd
from zenml.client import Client

from pipelines.launch import run_training
from radreport.config import RunConfig

# The tiny model's context is 1,024 tokens; "lung" is one token after the first.
OVERFLOWING_IMPRESSION = " ".join(["lung"] * 1100)


def test_studies_whose_prompts_overflow_are_recorded_and_the_rest_scored(
    radreport_stack, tiny_llama_dir, tmp_path
):
    rows = [
        {
            "study_id": f"study-{index}",
            "patient_id": f"patient-{index}",
            "impression": OVERFLOWING_IMPRESSION if index % 4 == 0 else "No acute disease.",
            "report": "The lungs are clear. The heart is normal in size.",
        }
        for index in range(60)
    ]
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    config = RunConfig.model_validate(
        {
            "model_name": "radreport-unwritten",
            "data": {"source": "manifest", "manifest": {"path": str(manifest)}},
            "llm": {
                "base_model": str(tiny_llama_dir),
                "max_steps": 1,
                "eval_steps": 1,
                "per_device_batch_size": 4,
                "max_seq_length": 256,
                "retrieval_k": 0,
                "max_new_tokens": 4,
                "eval_sample_max_new_tokens": 4,
            },
            "evaluation": {"bootstrap_resamples": 10},
        }
    )
    report = run_training(config)
    assert report.status == "completed"
    run = Client().get_pipeline_run(report.pipeline_run)
    studies = run.steps["ingest_studies"].outputs["studies"][0].load()
    held_out = studies[studies["split"].isin(["val", "test"])]
    overflowing = held_out["impression"].str.len() > 1000
    assert overflowing.any() and not overflowing.all()
    rejected = run.steps["generate_reports"].outputs["rejected_prompts"][0].load()
    predictions = run.steps["generate_reports"].outputs["predictions"][0].load()
    assert sorted(rejected["study_id"]) == sorted(held_out.loc[overflowing, "study_id"])
    assert sorted(predictions["study_id"]) == sorted(held_out.loc[~overflowing, "study_id"])
    assert rejected["reason"].str.contains("the model's context is 1024").all()
    evaluation = Client().get_model_version(*report.model.split(":")).run_metadata["evaluation"]
    for split, written in predictions.groupby("split"):
        unwritten = (rejected["split"] == split).sum()
        assert evaluation[split]["rejected_prompts"] == unwritten
        assert evaluation[split]["scored_reports"] == len(written)
    assert any(line.startswith("Not written:") for line in report.highlights)
