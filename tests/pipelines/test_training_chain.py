"""The whole chain on tiny synthetic CT data with a tiny model, through the real stack:
ZenML local orchestrator, MLflow tracker, artifact store and model versions."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pydicom
import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
from zenml.client import Client

from pipelines import model_versions
from pipelines.launch import run_data, run_llm, run_training
from pipelines.model_versions import load_trained_model
from pipelines.stack import mlflow_tracking_uri
from radreport.config import RunConfig
from radreport.data.pseudonyms import DEMO_DEID_KEY_ID
from radreport.data.run_inputs import demo_studies_dir
from radreport.llm.base_model_content import base_model_change, base_model_content
from radreport.metrics.report_files import REPORT_FILES
from tests.llm.tiny_llama import save_tiny_llama

REPO_ROOT = Path(__file__).resolve().parents[2]

PHI_ATTRIBUTES = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientAddress", "InstitutionName",
    "AccessionNumber", "ReferringPhysicianName", "OperatorsName",
)  # fmt: skip


# Tables, arrays and weights are checked through their loaded values above.
BINARY_SUFFIXES = {".safetensors", ".npz", ".parquet", ".png"}


def is_vocabulary(path: Path) -> bool:
    """Tokenizer files list every word piece, ordinary names included."""
    return path.name.startswith("tokenizer") or path.name in {"vocab.json", "merges.txt"}


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory, tiny_llama_dir) -> RunConfig:
    studies_dir = tmp_path_factory.mktemp("studies")
    return RunConfig.model_validate(
        {
            "model_name": "radreport-test",
            "data": {
                "source": "synthetic",
                "synthetic": {
                    "out_dir": str(studies_dir),
                    "n_studies": 24,
                    "min_slices": 10,
                    "max_slices": 12,
                    "size": 32,
                    "seed": 3,
                },
                "dicom": {"depth": 8, "height": 16, "width": 16, "min_slices": 10, "workers": 1},
                "split": {"train": 0.6, "val": 0.2, "test": 0.2},
            },
            "llm": {
                "base_model": str(tiny_llama_dir),
                "max_steps": 2,
                "eval_steps": 1,
                "save_steps": 1,
                "logging_steps": 1,
                "per_device_batch_size": 4,
                "max_seq_length": 384,
                "max_new_tokens": 6,
                "retrieval_k": 1,
                "eval_sample_max_new_tokens": 8,
                # From +10 (every report ends at once, length 0) calibration tries +5,
                # where the tiny model writes its 6 tokens, and keeps it.
                "stop_logit_bias": 10.0,
                "stop_bias_calibration_studies": 4,
                "stop_bias_calibration_step": 5.0,
                "stop_bias_calibration_max_tries": 2,
            },
            "evaluation": {"bootstrap_resamples": 20},
            "export": {"merged": True},
        }
    )


@pytest.fixture(scope="module")
def trained(radreport_stack, tiny_config):
    return run_training(tiny_config)


def original_phi(studies_dir: Path) -> set[str]:
    values = set()
    for path in studies_dir.rglob("*.dcm"):
        header = pydicom.dcmread(path, stop_before_pixels=True)
        for attribute in PHI_ATTRIBUTES:
            value = str(header.get(attribute, "") or "")
            values |= {value, *value.split("^")} if len(value) > 3 else set()
    return {v for v in values if len(v) > 3}


def test_chain_creates_a_model_version_with_adapter_and_evaluation(trained):
    assert trained.status == "completed"
    name, version = trained.model.split(":")
    model_version = Client().get_model_version(name, version)
    adapter = model_version.get_artifact("adapter").load()
    assert (adapter / "adapter_model.safetensors").is_file()
    assert not list(adapter.glob("*.bin"))
    evaluation = model_version.run_metadata["evaluation"]
    assert set(evaluation) == {"val", "test"}
    assert 0.0 <= evaluation["val"]["model"]["bleu4"] <= 1.0
    assert "exact_impression_lookup" in evaluation["val"]["baselines"]
    # Every val and test prompt of the tiny data fits: all written, an empty record kept.
    assert evaluation["val"]["rejected_prompts"] == evaluation["test"]["rejected_prompts"] == 0
    run = Client().get_pipeline_run(trained.pipeline_run)
    rejected = run.steps["generate_reports"].outputs["rejected_prompts"][0].load()
    assert rejected.empty and list(rejected.columns) == ["study_id", "split", "reason"]
    predictions = run.steps["generate_reports"].outputs["predictions"][0].load()
    assert set(predictions["split"]) == {"val", "test"}
    training = model_version.run_metadata["training"]
    assert training["train_steps"] == 2 and training["eval_loss"] > 0
    # The tiny config's 6 new tokens are fewer than every training report needs, and its 384
    # tokens fewer than its longest example with a retrieved one: both said.
    budgets = model_version.run_metadata["token_budgets"]
    assert budgets["max_new_tokens"] == 6 and budgets["max_seq_length"] == 384
    assert budgets["longer_train_reports"] == budgets["train_examples"] > 0
    assert budgets["longest_train_report_tokens"] > 6
    assert budgets["longest_train_example_tokens"] > 384
    assert budgets["truncated_train_examples"] >= 1 and budgets["dropped_train_examples"] == 0
    # The tiny studies' reports have neither mark of a second report.
    assert model_version.run_metadata["report_shape"] == {
        "ends_at_blank_line": True,
        "ends_at_repeated_label": True,
    }
    said = [line for line in trained.lines() if line.startswith("Token budget:   ")]
    assert len(said) == 2
    assert "need more than max_new_tokens 6" in said[0]
    assert "longer than max_seq_length 384" in said[1]
    # And every report the 6 tokens cut is counted in the evaluation, and said.
    evaluation = model_version.run_metadata["evaluation"]
    for split in ("val", "test"):
        scores = evaluation[split]
        assert scores["reports_out_of_room"] == scores["scored_reports"] > 0
    [cut] = [line for line in trained.lines() if line.startswith("Out of room:    ")]
    assert "reports cut where they ran out of room (max_new_tokens 6)" in cut


def test_the_version_records_its_data_and_what_the_machine_made_of_auto(trained):
    model_version = _model_version(trained.model)
    run = Client().get_pipeline_run(trained.pipeline_run)
    [studies] = run.steps["ingest_studies"].outputs["studies"]
    # The dataset it trained on, with the hash of the files it was made from; the tests
    # de-identify with the public demo key, which the record says.
    assert model_version.run_metadata["data"] == {
        "studies_artifact_version": studies.version,
        "input_fingerprint": run.config.parameters["input_fingerprint"],
        "deid_key_id": DEMO_DEID_KEY_ID,
        "demo_deid_key": True,
    }
    assert studies.run_metadata["demo_deid_key"] is True
    # The tiny config leaves backend, dtype and the rest "auto": what the CPU made of them.
    resolved = model_version.run_metadata["llm_settings_resolved"]
    assert model_version.run_metadata["llm_settings"]["backend"] == "auto"
    assert resolved["backend"] == "hf" and resolved["device"] == "cpu"
    assert resolved["load_in_4bit"] is False and "auto" not in resolved.values()
    # decoder "auto" on the CPU: the native decoder, its matrices in bfloat16.
    engine = model_version.run_metadata["decoding_engine"]
    assert engine["decoder"] == "native" and engine["matrix_dtype"] == "bfloat16"


def test_the_stop_bias_chosen_on_val_writes_the_reports_and_stays_with_the_version(trained):
    model_version = _model_version(trained.model)
    calibration = model_version.run_metadata["stop_bias_calibration"]
    # At most 4 studies: the tiny data's val split has one.
    assert calibration["start_bias"] == 10.0 and calibration["studies"] == 1
    ratios = {trial["bias"]: trial["length_ratio"] for trial in calibration["trials"]}
    assert ratios[10.0] == 0.0 < ratios[5.0] and calibration["chosen_bias"] == 5.0
    run = Client().get_pipeline_run(trained.pipeline_run)
    used = run.steps["generate_reports"].inputs["settings"][0].load()
    assert used.stop_logit_bias == calibration["chosen_bias"]
    # The calibrated study's report at that bias is kept, not decoded a second time.
    kept = run.steps["generate_reports"].inputs["calibration_reports"][0].load()
    predictions = run.steps["generate_reports"].outputs["predictions"][0].load()
    assert len(kept) == 1 and kept["generated"].iloc[0].strip()
    written = predictions.set_index("study_id").loc[kept["study_id"].iloc[0]]
    assert written["generated"] == kept["generated"].iloc[0]
    # Its 6 new tokens cut it, and the split's predictions say so as the calibration saw it.
    assert bool(kept["out_of_room"].iloc[0]) and bool(written["out_of_room"])
    # `run.py generate` and `evaluate` decode as the pipeline's evaluation did.
    assert load_trained_model(trained.model).settings == used
    assert "+5 chosen on 1 val study" in "\n".join(trained.lines())


def test_the_model_version_holds_the_config_it_was_trained_from(trained, tiny_config):
    stored = _model_version(trained.model).run_metadata["run_config"]
    assert RunConfig.model_validate(stored) == tiny_config
    assert stored["data"]["deid"]["key"] is None


def test_the_merged_export_is_a_model_version_artifact_that_decodes_like_the_adapter(
    trained, tiny_llama_dir
):
    from radreport.llm.merge import ADAPTER_FILES

    model_version = _model_version(trained.model)
    merged = model_version.get_artifact("merged_model").load()
    assert (merged / "model.safetensors").is_file() and (merged / "tokenizer.json").is_file()
    assert not [name for name in ADAPTER_FILES if (merged / name).exists()]
    assert model_version.run_metadata["merged_model"]["dtype"] == "bfloat16"
    adapter = model_version.get_artifact("adapter").load()
    # The run's base with its adapter, merged here in the export's dtype: the stored folder
    # must be that model, weight for weight, and write the same tokens.
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.bfloat16)
    expected = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload().eval()
    stored = AutoModelForCausalLM.from_pretrained(merged).eval()
    assert stored.dtype == torch.bfloat16
    for name, weight in expected.state_dict().items():
        assert torch.equal(stored.state_dict()[name], weight), name
    tokenizer = AutoTokenizer.from_pretrained(merged)
    prompt = tokenizer(["Small right pleural effusion."], return_tensors="pt")
    with torch.inference_mode():
        tokens = [
            m.generate(**prompt, max_new_tokens=8, do_sample=False) for m in (stored, expected)
        ]
    assert torch.equal(*tokens)


def test_chain_logs_metrics_and_plots_to_mlflow(trained, tiny_config):
    mlflow.set_tracking_uri(mlflow_tracking_uri())
    # The model's experiment: every version of it, whichever pipeline trained it.
    assert trained.mlflow_experiment == tiny_config.model_name
    runs = mlflow.search_runs(experiment_names=[tiny_config.model_name], output_format="list")
    run = next(r for r in runs if r.info.run_name == trained.pipeline_run)
    assert "val_bleu4" in run.data.metrics and "eval_loss" in run.data.metrics
    assert run.data.metrics["val_rejected_prompts"] == 0
    assert run.data.metrics["val_reports_out_of_room"] > 0  # the tiny config's 6 new tokens
    evaluated = mlflow.load_table("evaluation/val_samples.json", run_ids=[run.info.run_id])
    assert evaluated["out_of_room"].all() and (evaluated["generated_length"] > 0).all()
    assert run.data.metrics["data_studies_accepted"] > 0
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "training")}
    assert {"training/loss_curves.png", "training/learning_rate.png"} <= artifacts
    generation = mlflow.MlflowClient().list_artifacts(run.info.run_id, "generation")
    assert {a.path for a in generation} == {"generation/stop_bias_calibration.png"}
    assert "stop_bias_chosen" in run.data.metrics
    # Sample generations: one table for the run, rows from every evaluation (steps 0, 1, 2).
    samples = mlflow.load_table("training/sample_generations.json", run_ids=[run.info.run_id])
    assert sorted(set(samples["step"])) == [0, 1, 2]
    assert {"study_id", "impression", "reference", "generated"} <= set(samples.columns)
    assert samples.groupby("step").size().nunique() == 1  # the same studies at each step
    # The run leads to its model version, which holds the test split's evaluation report.
    name, version = trained.model.split(":")
    assert (run.data.tags["zenml_model"], run.data.tags["zenml_model_version"]) == (name, version)
    assert run.data.params["llm_backend_resolved"] == "hf"
    assert run.data.params["demo_deid_key"] == "True"
    # The data and evaluation sections too, not the llm section alone; and the bias the
    # reports were decoded at.
    assert run.data.params["data_split_test"] == "0.2"
    assert run.data.params["evaluation_bootstrap_resamples"] == "20"
    assert run.data.params["llm_stop_logit_bias"] == "10.0"
    assert run.data.params["llm_stop_logit_bias_decoded"] == "5.0"
    test_html = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="evaluation/test/evaluation.html"
    )
    report = _model_version(trained.model).get_artifact("evaluation_report").load()
    assert str(report) == Path(test_html).read_text()


def _model_version(label: str):
    name, version = label.split(":")
    return Client().get_model_version(name, version)


def calibrated(settings, label: str):
    """`settings` with the stop bias the version's run chose."""
    chosen = _model_version(label).run_metadata["stop_bias_calibration"]["chosen_bias"]
    return settings.model_copy(update={"stop_logit_bias": chosen})


def test_training_again_on_unchanged_input_is_a_cache_hit(trained, tiny_config):
    rerun = run_training(tiny_config)
    steps = Client().get_pipeline_run(rerun.pipeline_run).steps
    assert {name: s.status.value for name, s in steps.items()} == dict.fromkeys(steps, "cached")
    # No step ran, so the tracker made no MLflow run: the report does not name one.
    assert trained.mlflow_run_made and not rerun.mlflow_run_made
    assert "every step was a cache hit" in "\n".join(rerun.lines())
    assert rerun.model != trained.model  # a new model version, holding the cached outputs
    model_version = _model_version(rerun.model)
    adapter = model_version.get_artifact("adapter").load()
    assert (adapter / "adapter_model.safetensors").is_file()
    # The cached steps' metadata, as the first run logged it.
    assert model_version.run_metadata == _model_version(trained.model).run_metadata
    # What `run.py generate` needs of the latest version (the settings it was trained with).
    assert load_trained_model(rerun.model).settings == calibrated(tiny_config.llm, rerun.model)


def test_a_finished_run_found_again_is_recorded_as_restored_and_carried(trained, tiny_config):
    # Another token budget: finetune_llm runs again (its settings changed) but finds the
    # finished checkpoint of the same training in its run folder, and trains nothing.
    # (Before the seed test below: another training config removes that folder.)
    budget = tiny_config.llm.model_copy(update={"max_new_tokens": 7})
    restored = run_training(tiny_config.model_copy(update={"llm": budget}))
    metadata = _model_version(restored.model).run_metadata
    assert metadata["restored_from_step"] == 2 and "resumed_from_step" not in metadata
    # A cache hit of that run carries it to its version, as the other keys of the step.
    again = run_training(tiny_config.model_copy(update={"llm": budget}))
    assert _model_version(again.model).run_metadata["restored_from_step"] == 2


def test_cached_metadata_comes_from_the_run_that_executed_each_step(trained, tiny_config):
    # Other LLM settings: the data steps stay cached (from the first run), training reruns.
    other = tiny_config.model_copy(update={"llm": tiny_config.llm.model_copy(update={"seed": 7})})
    changed = run_training(other)
    again = run_training(other)  # every step cached; the data steps' original is the first run
    assert _model_version(again.model).run_metadata["llm_settings"]["seed"] == 7
    assert load_trained_model(again.model).settings == calibrated(other.llm, again.model)
    assert load_trained_model(changed.model).settings == calibrated(other.llm, changed.model)


def test_the_llm_pipeline_trains_on_a_stored_studies_version(trained, tiny_config):
    studies = Client().get_pipeline_run(trained.pipeline_run).steps["ingest_studies"]
    studies = studies.outputs["studies"][0]
    report = run_llm(tiny_config, str(studies.version))

    run = Client().get_pipeline_run(report.pipeline_run)
    assert run.pipeline.name == "llm_pipeline" and "ingest_studies" not in run.steps
    assert run.steps["format_alpaca"].inputs["studies"][0].id == studies.id
    # The same studies and settings as the chain's run: every step of it a cache hit.
    assert {s.status.value for s in run.steps.values()} == {"cached"}
    model_version = _model_version(report.model)
    assert (model_version.get_artifact("adapter").load() / "adapter_model.safetensors").is_file()
    stored = model_version.run_metadata["run_config"]
    assert stored["studies"] == {"artifact": "studies", "version": studies.version}
    assert "data" not in stored and stored["llm"] == tiny_config.llm.model_dump(mode="json")


def test_auto_token_budgets_are_sized_by_the_training_data_and_stored_as_numbers(
    trained, tiny_config
):
    studies = Client().get_pipeline_run(trained.pipeline_run).steps["ingest_studies"]
    studies = studies.outputs["studies"][0]
    # Every report ends at once: sized budgets let the random model write long runs of random
    # word pieces, which can spell a synthetic header's name for the PHI check of this
    # module's runs to flag.
    auto = {
        "max_seq_length": "auto",
        "max_new_tokens": "auto",
        "stop_logit_bias": 20.0,
        "stop_bias_calibration_studies": 0,
    }
    config = tiny_config.model_copy(update={"llm": tiny_config.llm.model_copy(update=auto)})
    report = run_llm(config, str(studies.version))

    model_version = _model_version(report.model)
    budgets = model_version.run_metadata["token_budgets"]
    # The tiny model's context (1,024) is longer than any of the tiny data's examples.
    assert budgets["max_seq_length"] == budgets["longest_train_example_tokens"] > 384
    assert budgets["max_new_tokens"] == budgets["longest_train_report_tokens"] > 6
    assert budgets["truncated_train_examples"] == budgets["longer_train_reports"] == 0
    assert not [line for line in report.lines() if line.startswith("Token budget:")]
    said = "\n".join(report.lines())
    assert f"Auto budgets:   max_seq_length {budgets['max_seq_length']} (the longest" in said
    # Every step after format_alpaca ran by its sized settings; the version keeps the numbers
    # (what generation reads) and the config as written.
    run = Client().get_pipeline_run(report.pipeline_run)
    [sized] = run.steps["format_alpaca"].outputs["llm_settings"]
    inputs = {
        "finetune_llm": "settings",
        "generate_reports": "settings",
        "export_merged_model": "llm_settings",
    }
    for step, name in inputs.items():
        assert run.steps[step].inputs[name][0].id == sized.id
    trained_with = model_version.run_metadata["llm_settings"]
    assert trained_with["max_seq_length"] == budgets["max_seq_length"]
    assert load_trained_model(report.model).settings.max_new_tokens == budgets["max_new_tokens"]
    assert model_version.run_metadata["run_config"]["llm"]["max_new_tokens"] == "auto"


def test_a_missing_studies_version_is_one_line_naming_the_latest(trained, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("model_name: radreport-test\n")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "run.py"), "train", "--config", str(config),
         "--studies", "999"],
        capture_output=True, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"error: --studies 999: no version '999' of the 'studies' artifact \(latest: \d+\)", last
    )


def test_unchanged_input_is_a_cache_hit_and_a_changed_file_is_not(trained, tiny_config):
    rerun = Client().get_pipeline_run(run_data(tiny_config).pipeline_run)
    assert {s.status.value for s in rerun.steps.values()} == {"cached"}
    manifest = demo_studies_dir(tiny_config.data.synthetic) / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("No pleural effusion.", "No effusion."))
    changed = Client().get_pipeline_run(run_data(tiny_config).pipeline_run)
    assert changed.steps["ingest_studies"].status.value == "completed"


def test_training_on_a_table_the_data_pipeline_made_keeps_its_budget_record(trained, tiny_config):
    # The data pipeline's prompt table (made by the test above, which changed the manifest)
    # is a cache hit for this training run; its run has no model version to hold the budgets.
    report = run_training(tiny_config)
    steps = Client().get_pipeline_run(report.pipeline_run).steps
    assert steps["format_alpaca"].status.value == "cached"
    original = Client().get_run_step(steps["format_alpaca"].original_step_run_id)
    assert Client().get_pipeline_run(original.pipeline_run_id).pipeline.name == "data_pipeline"
    metadata = _model_version(report.model).run_metadata
    assert metadata["token_budgets"]["max_seq_length"] == tiny_config.llm.max_seq_length
    assert set(metadata["report_shape"]) == set(
        _model_version(trained.model).run_metadata["report_shape"]
    )


def test_no_original_phi_in_artifacts_logs_or_mlflow(trained, tiny_config):
    phi = original_phi(tiny_config.data.synthetic.out_dir)
    assert len(phi) > 10  # the demo headers really carry names, ids, dates, institutions
    run = Client().get_pipeline_run(trained.pipeline_run)
    stored_text = []
    for step_run in run.steps.values():
        for artifacts in step_run.outputs.values():
            for artifact in artifacts:
                if artifact.data_type.attribute in {"DataFrame", "dict", "str", "HTMLString"}:
                    stored_text.append(str(artifact.load()))
    store_root = Path(Client().active_stack.artifact_store.path)
    for path in store_root.rglob("*"):
        if path.is_file() and path.suffix not in BINARY_SUFFIXES and not is_vocabulary(path):
            stored_text.append(path.read_bytes().decode("utf-8", errors="ignore"))
    everything = "\n".join(stored_text)
    leaked = {
        value: everything[max(0, everything.find(value) - 80) : everything.find(value) + 40]
        for value in phi
        if value in everything
    }
    assert leaked == {}


def test_generate_cli_on_onnxruntime_writes_the_fp32_torch_report(trained, tmp_path):
    from radreport.llm.generate import ReportGenerator
    from radreport.llm.predictions import predict_impressions

    impression = "Mild cardiomegaly. No acute disease."
    model = load_trained_model(trained.model)
    environment = {**os.environ, "RADREPORT_CACHE_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "run.py"), "generate", "--impression", impression,
         "--model", trained.model, "--decoder", "onnxruntime"],
        capture_output=True, text=True, cwd=REPO_ROOT, env=environment,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # stdout is the report alone (library notices and the model's label go to stderr), so
    # `> report.txt` keeps only the report.
    report = result.stdout.removesuffix("\n")
    assert f"[{trained.model}]" in result.stderr
    assert "kernels-community" not in result.stderr and "Enum subclass" not in result.stderr
    settings = model.settings
    torch_generator = ReportGenerator(
        settings.base_model, model.adapter_dir, dtype=torch.float32,
        max_new_tokens=settings.max_new_tokens, stop_logit_bias=settings.stop_logit_bias,
    )  # fmt: skip
    expected = predict_impressions(
        torch_generator,
        [impression],
        model.train_pairs,
        settings.retrieval_k,
        settings.retrieval_match,
    )
    assert report and report == expected[0]
    assert list((tmp_path / "onnx").glob("*/model.onnx"))  # exported into the cache


def test_generate_cli_stop_bias_overrides_the_versions_and_is_bounded(trained, tmp_path):
    def generate(bias: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(REPO_ROOT / "run.py"), "generate", "--impression",
             "Mild cardiomegaly.", "--model", trained.model, "--stop-bias", bias],
            capture_output=True, text=True, cwd=REPO_ROOT,
            env={**os.environ, "RADREPORT_CACHE_DIR": str(tmp_path)},
        )  # fmt: skip

    # +20 on the stop tokens' logits: the report ends before its first word.
    ended = generate("20")
    assert ended.returncode == 0, ended.stderr
    assert ended.stdout == "\n" and "wrote an empty report" in ended.stderr
    assert f"[{trained.model}] stop bias +20" in ended.stderr
    refused = generate("30")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("error: --stop-bias 30.0: ")


def test_generate_cli_max_new_tokens_overrides_the_versions_budget(trained, tmp_path):
    def generate(*options: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(REPO_ROOT / "run.py"), "generate", "--impression",
             "Mild cardiomegaly.", "--model", trained.model, *options],
            capture_output=True, text=True, cwd=REPO_ROOT,
            env={**os.environ, "RADREPORT_CACHE_DIR": str(tmp_path)},
        )  # fmt: skip

    # The version decodes greedily with 6 new tokens; 2 are its first 2.
    whole, cut = generate(), generate("--max-new-tokens", "2")
    assert whole.returncode == cut.returncode == 0, whole.stderr + cut.stderr
    assert cut.stdout.strip() and len(cut.stdout) < len(whole.stdout)
    assert whole.stdout.startswith(cut.stdout.strip())
    refused = generate("--max-new-tokens", "0")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("error: --max-new-tokens 0: ")


def test_a_missing_model_or_version_is_named_with_what_exists(trained):
    from pipelines.model_versions import ModelVersionNotFound

    name, _ = trained.model.split(":")
    with pytest.raises(ModelVersionNotFound, match="no version '999' \\(latest: "):
        load_trained_model(f"{name}:999")
    with pytest.raises(ModelVersionNotFound, match=f"no model 'absent' \\(models here: .*{name}"):
        load_trained_model("absent")
    with pytest.raises(ModelVersionNotFound, match="has no version in stage 'staging' \\(latest"):
        load_trained_model(f"{name}:staging")
    assert load_trained_model(f" {trained.model} ").label == trained.model
    for malformed in (f"{name}:", f":{trained.model.split(':')[1]}", " "):
        with pytest.raises(ModelVersionNotFound, match="is not NAME or NAME:VERSION"):
            load_trained_model(malformed)


def test_evaluate_rejects_only_the_row_whose_prompt_overflows_the_context(trained, tmp_path):
    reports = tmp_path / "reports.csv"
    too_long = " ".join(["effusion"] * 2000)  # far beyond the tiny model's 1,024 positions
    reports.write_text(
        "study_id,impression,findings\n"
        "ok-1,Clear lungs.,The lungs are clear.\n"
        f"long-2,{too_long},No effusion.\n"
        "ok-3,Mild cardiomegaly.,The heart is mildly enlarged.\n"
        "empty-4,,The lungs are clear.\n"
        "noref-5,Small effusion.,\n"
        "ok-1,Clear lungs.,The lungs are clear.\n"
    )
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "run.py"), "evaluate", "--reports", str(reports),
         "--model", trained.model, "--out", str(out)],
        capture_output=True, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == 2
    # Decoded at the bias the version's run calibrated (+5; the config says +10).
    assert "(6 rows, stop bias +5)" in result.stdout
    last_line = result.stderr.strip().splitlines()[-1]
    assert "1 of 6 rows rejected" in last_line and "row 2 (study_id long-2)" in last_line
    assert "context is 1024" in last_line
    # The valid rows are written and scored; the rejected one is kept, empty, and recorded.
    predictions = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert predictions["study_id"].tolist() == [
        "ok-1", "long-2", "ok-3", "empty-4", "noref-5", "ok-1"
    ]  # fmt: skip
    written = dict(zip(predictions["study_id"][:5], predictions["prediction"][:5], strict=True))
    assert written["ok-1"] and written["ok-3"] and written["long-2"] == ""
    # An empty impression is said, not refused: its report is written and scored.
    assert written["empty-4"]
    assert "1 of 6 rows have an empty impression (first: row 4, study_id empty-4)" in (
        result.stderr
    )
    # A row without a reference is written, not scored.
    assert written["noref-5"]
    assert "1 of 6 rows have an empty reference (findings or report) (first: row 5, " in (
        result.stderr
    )
    # How the file was written: the version, its decoding settings, the input's digest.
    record = json.loads((out / "generation.json").read_text())
    assert record["model"] == trained.model
    assert record["llm_settings"]["stop_logit_bias"] == 5.0
    assert record["llm_settings"]["max_new_tokens"] == 6
    assert record["reports_csv"] == {
        "path": str(reports),
        "sha256": hashlib.sha256(reports.read_bytes()).hexdigest(),
        "rows": 6,
    }
    assert record["reports_written"] == 5
    assert record["decoding_engine"]["decoder"] == "native"  # decoder auto, on the CPU
    # The tiny model ends no report within its 6 tokens: every one ran out, and was said.
    assert record["reports_out_of_room"] == 5
    assert record["rows_out_of_room"] == [1, 3, 4, 5, 6]  # not row 2: it has no report
    assert "5 of 5 reports ran out of room before they ended (max_new_tokens 6" in result.stderr
    assert record["report_shape"] == {"ends_at_blank_line": True, "ends_at_repeated_label": True}
    rejected = pd.read_csv(out / "rejected.csv")
    assert rejected[["row", "study_id"]].values.tolist() == [[2, "long-2"]]
    assert "context is 1024" in rejected["reason"].iloc[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["metrics"]["n_reports"] == 4
    assert {sample["study_id"] for sample in metrics["samples"]} == {"ok-1", "ok-3", "empty-4"}
    # Each scored report says the budget cut it, in the table beside the evaluation report.
    samples = pd.read_csv(out / "samples.csv", keep_default_na=False)
    assert samples["out_of_room"].tolist() == [True] * 4
    assert "4 of 4 reports ran out of room" in (out / "evaluation.html").read_text()
    # A repeated study id is said; the rows stay in input order.
    assert "2 of 6 rows share their study_id with another row (first: row 1, study_id ok-1)" in (
        result.stderr
    )
    # Into the same folder, a table with nothing to score: none of the first run's scores,
    # report or rejections stay beside the new predictions.
    assert all((out / name).exists() for name in REPORT_FILES)
    unnamed = tmp_path / "unnamed.csv"
    unnamed.write_text("study_id,impression\n,Small nodule.\n")
    again = subprocess.run(
        [sys.executable, str(REPO_ROOT / "run.py"), "evaluate", "--reports", str(unnamed),
         "--model", trained.model, "--out", str(out)],
        capture_output=True, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "1 of 1 rows have an empty study_id (first: row 1, no study_id)" in again.stderr
    assert sorted(path.name for path in out.iterdir()) == ["generation.json", "predictions.csv"]
    predictions = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert predictions["study_id"].tolist() == [""] and predictions["prediction"].iloc[0]


def test_evaluate_out_that_cannot_be_written_keeps_its_earlier_files(trained, tmp_path):
    """A disk that fills up at the last plot. Loading the model writes more than the plots
    (the adapter is copied out of the artifact store), so no file size limit can stand in for
    it: the plot's write raises the error a full disk gives."""
    reports = tmp_path / "reports.csv"
    reports.write_text("study_id,impression,findings\nb,Small effusion.,A small effusion.\n")
    out = tmp_path / "out"
    out.mkdir()
    # An earlier run's files (each file evaluate writes).
    for name in ("predictions.csv", "generation.json", "metrics.json", *REPORT_FILES):
        (out / name).write_text(f"the earlier run's {name}")
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    arguments = ["evaluate", "--reports", str(reports), "--model", trained.model, "--out", str(out)]
    disk_full_at_the_last_plot = (
        "import errno, run\n"
        "from radreport.metrics import report_html\n"
        "def full(*args):\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "report_html.plot_report_lengths = full\n"
        "run.main()\n"
    )
    failed = subprocess.run(
        [sys.executable, "-c", disk_full_at_the_last_plot, *arguments],
        capture_output=True, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1] == (
        f"error: --out {out}: cannot write its files (No space left on device); it keeps the "
        "files it had"
    )
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_without_a_version_the_newest_version_with_an_adapter_is_used(trained, caplog):
    """A run that failed or is still going leaves the latest version without an adapter;
    asking for the model, not that version, still finds the one trained before it."""
    from zenml.client import Client

    from pipelines.model_versions import ModelVersionNotFound

    name, _ = trained.model.split(":")
    newest = load_trained_model(name).label
    client = Client()
    empty = client.create_model_version(model_name_or_id=name, name="a-run-that-failed")
    try:
        assert load_trained_model(name).label == newest
        assert f"latest version, {empty.name}, has no adapter" in caplog.text
        with pytest.raises(ModelVersionNotFound, match=f"{name}:{empty.name} has no adapter"):
            load_trained_model(f"{name}:{empty.name}")
    finally:
        client.delete_model_version(empty.id)
    # A model none of whose versions holds one: said of the model, not of its latest version.
    client.create_model(name="radreport-untrained")
    client.create_model_version(model_name_or_id="radreport-untrained", name="failed")
    with pytest.raises(ModelVersionNotFound) as raised:
        load_trained_model("radreport-untrained")
    assert str(raised.value) == (
        "no version of model 'radreport-untrained' holds an adapter (latest: failed; runs that "
        "failed, were stopped or are still going leave none)"
    )


def test_new_weights_in_the_base_model_folder_are_not_a_cache_hit_and_generate_says_so(
    trained, tiny_config, tmp_path, caplog
):
    # A new model revision copied over the old one keeps the folder's path.
    base = tmp_path / "base"
    shutil.copytree(tiny_config.llm.base_model, base)
    llm = tiny_config.llm.model_copy(update={"base_model": str(base)})
    config = tiny_config.model_copy(update={"llm": llm})
    first = Client().get_pipeline_run(run_data(config).pipeline_run)
    assert first.steps["format_alpaca"].status.value == "completed"
    save_tiny_llama(base, initializer_range=0.3)  # other weights, same path and shapes
    changed = Client().get_pipeline_run(run_data(config).pipeline_run)
    assert changed.steps["ingest_studies"].status.value == "cached"
    assert changed.steps["format_alpaca"].status.value == "completed"
    assert (
        changed.config.parameters["base_model_content"]
        != (first.config.parameters["base_model_content"])
    )
    # A version trained on the folder before, used after: generate warns.
    version = _model_version(trained.model)
    recorded = version.run_metadata["base_model_content"]
    assert recorded == base_model_content(tiny_config.llm.base_model)
    assert base_model_change(recorded, str(base)).startswith(
        f"the files of its base model '{base}' have changed since it was trained"
    )
    assert base_model_change(recorded, tiny_config.llm.base_model) is None
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model_versions, "base_model_change", lambda recorded, spec: "it changed")
        load_trained_model(trained.model)
    assert f"model version {trained.model}: it changed" in caplog.text
