"""From a validated config to a pipeline run: resolve the inputs the cache must see, keep
secrets out of the stored run config, name the ZenML model version, report where results are.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from zenml import Model, log_metadata
from zenml.client import Client
from zenml.enums import ExecutionStatus
from zenml.integrations.mlflow.flavors.mlflow_experiment_tracker_flavor import (
    MLFlowExperimentTrackerSettings,
)

from pipelines.cached_metadata import carry_cached_step_metadata
from pipelines.run_failure import raise_if_a_step_failed
from pipelines.stack import mlflow_ui_command
from radreport.config import RunConfig
from radreport.data.pseudonyms import deid_key_id, resolve_deid_keys
from radreport.data.run_inputs import RunInputs, resolve_run_inputs
from radreport.data.settings import DataSettings
from radreport.llm.base_model_content import base_model_content
from radreport.llm.bundled import cache_dir
from radreport.llm.token_budgets import auto_budget_summary, budget_shortfalls
from radreport.start_up_gc import resume_full_collections

logger = logging.getLogger(__name__)

STUDIES_ARTIFACT = "studies"  # steps/ingest_studies.py's output


@dataclass(frozen=True)
class RunReport:
    pipeline_run: str
    status: str
    model: str | None
    mlflow_experiment: str
    mlflow_tracking_uri: str
    highlights: tuple[str, ...] = ()
    # False when every step was a cache hit: no step ran, so no MLflow run was made.
    mlflow_run_made: bool = True

    def lines(self) -> list[str]:
        lines = [f"ZenML run:      {self.pipeline_run} ({self.status})"]
        if self.model:
            lines.append(f"Model version:  {self.model}")
        lines += list(self.highlights)
        lines += [
            (
                f"MLflow run:     experiment '{self.mlflow_experiment}', run '{self.pipeline_run}'"
                if self.mlflow_run_made
                else "MLflow run:     none, every step was a cache hit (the runs that executed "
                "them hold their MLflow records)"
            ),
            f"MLflow UI:      {mlflow_ui_command(self.mlflow_tracking_uri)}",
            "ZenML UI:       zenml login --local",
        ]
        return lines


def data_settings_without_secrets(config: RunConfig) -> tuple[DataSettings, str]:
    """DataSettings safe to store with the run, and a non-reversible id of the de-id key.

    A key given in the config travels to the steps through its environment variable
    instead of the stored step parameters; the key id still keys the cache, so another key
    never reuses pseudonyms made with the old one.
    """
    deid = config.data.deid
    secret = resolve_deid_keys(deid).secret
    if deid.key is not None:
        os.environ[deid.key_env] = deid.key.get_secret_value()
    key_id = deid_key_id(secret)
    stored = config.data.model_dump(exclude={"source"})
    stored["deid"]["key"] = None
    return DataSettings.model_validate(stored), key_id


def resolve_inputs(config: RunConfig) -> RunInputs:
    data = config.data
    columns = data.manifest.columns if data.source == "manifest" else {}
    return resolve_run_inputs(data.source, data.synthetic, data.manifest.path, columns)


def mark_orphaned_runs() -> None:
    """This process runs pipelines from now on; earlier runs whose process died are marked
    failed (pipelines.orphaned_runs)."""
    from pipelines.orphaned_runs import hold_launch_lock, mark_orphaned_runs_failed

    try:
        hold_launch_lock()
        mark_orphaned_runs_failed()
    except Exception as error:  # housekeeping: it must never cost the run it precedes
        logger.warning("Could not look for runs left running by a killed process: %r", error)


def common_parameters(config: RunConfig) -> dict:
    """Also makes sure the radreport stack is active: a repository's active stack is reset to
    ZenML's default when another store (a test run's) was used from the same checkout."""
    from pipelines.stack import ensure_stack

    ensure_stack()
    mark_orphaned_runs()
    inputs = resolve_inputs(config)
    data_settings, key_id = data_settings_without_secrets(config)
    return {
        "manifest_path": str(inputs.manifest_path),
        "input_fingerprint": inputs.fingerprint,
        "deid_key_id": key_id,
        "data_settings": data_settings,
        "llm_settings": config.llm,
        "base_model_content": base_model_content(config.llm.base_model),
    }


def run_data(config: RunConfig) -> RunReport:
    parameters = common_parameters(config)
    # Only after ensure_stack: loading the steps opens the ZenML store, and two runs opening
    # a new one at once both create it (pipelines.stack.ensure_stack).
    from pipelines.data import data_pipeline

    resume_full_collections()  # start-up is over; the steps run in this process
    try:
        run = data_pipeline(**parameters)
    except RuntimeError as error:
        raise_if_a_step_failed(data_pipeline.name, error)
        raise
    return report_of(run)


def run_training(config: RunConfig) -> RunReport:
    parameters = common_parameters(config)
    from pipelines.training import training_pipeline  # after ensure_stack, as in run_data

    resume_full_collections()
    stored = stored_run_config(config, parameters["data_settings"])
    return run_model_pipeline(training_pipeline, config, stored, **parameters)


class StudiesVersionNotFound(LookupError):
    """`run.py train --studies VERSION` names no version of the `studies` artifact."""


def studies_version(version: str):
    """The stored `studies` artifact version (a data run's de-identified studies)."""
    client = Client()
    try:
        return client.get_artifact_version(STUDIES_ARTIFACT, version)
    except KeyError:
        pass
    try:
        latest = f"latest: {client.get_artifact_version(STUDIES_ARTIFACT).version}"
    except KeyError:
        latest = "none is stored yet: `run.py data --config FILE` makes one"
    raise StudiesVersionNotFound(
        f"no version {version!r} of the {STUDIES_ARTIFACT!r} artifact ({latest})"
    )


def run_llm(config: RunConfig, studies: str) -> RunReport:
    """The LLM stage of `config` (its llm, evaluation and export sections) on a stored
    version of the studies, instead of the data its data section would ingest."""
    from pipelines.stack import ensure_stack

    ensure_stack()
    mark_orphaned_runs()
    from pipelines.llm import llm_pipeline  # after ensure_stack, as in run_data

    resume_full_collections()
    dataset = studies_version(studies)
    stored = config.model_dump(mode="json", exclude={"data"})
    stored["studies"] = {"artifact": STUDIES_ARTIFACT, "version": dataset.version}
    return run_model_pipeline(
        llm_pipeline,
        config,
        stored,
        studies_version_id=str(dataset.id),
        llm_settings=config.llm,
        base_model_content=base_model_content(config.llm.base_model),
    )


def run_model_pipeline(pipeline, config: RunConfig, stored_config: dict, **parameters):
    """Run a pipeline that ends in a version of the config's model; that version also gets
    the config it was trained from (`stored_config`) and the metadata of cached steps.

    Its steps log to the MLflow experiment named after the model, not after the pipeline:
    one experiment then compares every version of a model, whichever pipeline trained it,
    and holds no other model's runs."""
    model = Model(name=config.model_name, description=config.description or None)
    tracker = MLFlowExperimentTrackerSettings(experiment_name=config.model_name)
    try:
        run = pipeline.with_options(model=model, settings={"experiment_tracker": tracker})(
            **parameters,
            evaluation_settings=config.evaluation,
            export_settings=config.export,
            checkpoint_dir=str(cache_dir() / "checkpoints" / config.model_name),
        )
    except RuntimeError as error:
        raise_if_a_step_failed(pipeline.name, error)
        raise
    carry_cached_step_metadata(run)
    if run.model_version is not None:
        metadata = {"run_config": stored_config, "data": data_record(run)}
        log_metadata(metadata=metadata, model_version_id=run.model_version.id)
    return report_of(Client().get_pipeline_run(run.id), mlflow_experiment=config.model_name)


def data_record(run) -> dict:
    """The dataset version the model trained on, with the content hash of the manifest and
    DICOM files it was made from and the id of its de-identification key (and whether that
    is the public demo key), as its ingestion recorded them."""
    from steps.ingest_studies import DATASET_PROVENANCE

    [studies] = run.steps["format_alpaca"].inputs[STUDIES_ARTIFACT]
    # None where a version was made before ingestion recorded these.
    made_from = {key: studies.run_metadata.get(key) for key in DATASET_PROVENANCE}
    return {"studies_artifact_version": studies.version, **made_from}


def stored_run_config(config: RunConfig, data_settings: DataSettings) -> dict:
    """The whole config the version was trained from, as a YAML file of it would say, with
    the data settings the steps got (no de-identification key)."""
    stored = config.model_dump(mode="json")
    stored["data"] = {"source": config.data.source, **data_settings.model_dump(mode="json")}
    return stored


def report_of(run, mlflow_experiment: str | None = None) -> RunReport:
    """`mlflow_experiment` defaults to the tracker's default, the pipeline's name."""
    from pipelines.stack import mlflow_tracking_uri

    version = run.model_version
    return RunReport(
        pipeline_run=run.name,
        status=str(run.status.value),
        model=f"{version.model.name}:{version.name}" if version else None,
        mlflow_experiment=mlflow_experiment or run.pipeline.name,
        mlflow_tracking_uri=mlflow_tracking_uri(),
        highlights=highlights_of(version.run_metadata) if version else (),
        mlflow_run_made=any(step.status != ExecutionStatus.CACHED for step in run.steps.values()),
    )


def highlights_of(metadata: dict) -> tuple[str, ...]:
    """The figures a user looks at first: did validation loss fall, does the model beat
    the strongest baseline on the validation split."""
    lines = []
    training = metadata.get("training", {})
    if "eval_loss_before_training" in training:
        lines.append(
            f"Val loss:       {training['eval_loss_before_training']:.3f} before training"
            f" -> {training['eval_loss']:.3f} after"
        )
    calibration = metadata.get("stop_bias_calibration")
    if calibration:
        trials = {trial["bias"]: trial["length_ratio"] for trial in calibration["trials"]}
        start, chosen = calibration["start_bias"], calibration["chosen_bias"]
        studies = (
            f"{calibration['studies']} val stud{'y' if calibration['studies'] == 1 else 'ies'}"
        )
        if len(set(trials.values())) == 1 < len(trials):
            lines.append(
                f"Stop bias:      {start:+g} kept: length ratio {trials[start]:.2f} on "
                f"{studies} at {' and '.join(f'{bias:+g}' for bias in trials)}, the bias "
                "moves none of these reports"
            )
        else:
            lines.append(
                f"Stop bias:      {chosen:+g} chosen on {studies} "
                f"(length ratio {trials[chosen]:.2f}; {start:+g} gave {trials[start]:.2f})"
            )
    evaluation = metadata.get("evaluation", {})
    val = evaluation.get("val", {})
    if "model" in val:
        model, lookup = val["model"], val["baselines"]["exact_impression_lookup"]
        # Versions evaluated before the length ratio was measured have none.
        length = f", length ratio {model['length_ratio']:.2f}" if "length_ratio" in model else ""
        lines.append(
            f"Val metrics:    BLEU-4 {model['bleu4']:.3f} (exact-impression lookup "
            f"{lookup['bleu4']:.3f}), finding F1 {model['finding_f1_micro']:.3f} "
            f"(lookup {lookup['finding_f1_micro']:.3f}){length}"
        )
    if budgets := metadata.get("token_budgets"):
        config_llm = metadata.get("run_config", {}).get("llm", {})
        if summary := auto_budget_summary(config_llm, budgets):
            lines.append(f"Auto budgets:   {summary}")
        lines += [f"Token budget:   {shortfall}" for shortfall in budget_shortfalls(budgets)]
    if cut := _reports_out_of_room(evaluation):
        budget = metadata.get("llm_settings", {}).get("max_new_tokens")
        longest = (budgets or {}).get("longest_train_report_tokens")
        if budget and longest and budget >= longest:
            # More room would not help: the model wrote past every report it was taught.
            why = (
                f"; no train report is that long (the longest: {longest} tokens), so these "
                "are more likely loops than reports the budget cut short"
            )
        else:
            why = "; llm.max_new_tokens gives them more"
        lines.append(
            f"Out of room:    {cut} reports cut where they ran out of room"
            + (f" (max_new_tokens {budget})" if budget else "")
            + f", not ended by the model{why}"
        )
    rejected = {split: scores.get("rejected_prompts", 0) for split, scores in evaluation.items()}
    if any(rejected.values()):
        counts = ", ".join(f"{count} {split}" for split, count in rejected.items() if count)
        lines.append(
            f"Not written:    {counts} studies, their prompts longer than the model's context "
            "(artifact rejected_prompts; not scored)"
        )
    return tuple(lines)


def _reports_out_of_room(evaluation: dict) -> str:
    """The scored reports that ran out of room per split, as in "3 of 189 val, 1 of 190
    test"; empty when none did."""
    counts = [
        f"{scores['reports_out_of_room']} of {scores['scored_reports']} {split}"
        for split, scores in evaluation.items()
        if scores.get("reports_out_of_room")
    ]
    return ", ".join(counts)
