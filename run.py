"""radreport command line: every user action is a subcommand.

Heavy libraries (torch, transformers, unsloth, zenml) are imported inside the
commands, never at module level, so `python run.py --help` answers at once.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import click

DEMO_CONFIG = Path(__file__).parent / "configs" / "demo.yaml"


def fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def load_config_or_exit(path: Path):
    from radreport.config import load_run_config
    from radreport.config_loading import ConfigError

    try:
        return load_run_config(path)
    except ConfigError as exc:
        fail(str(exc), 2)


@click.group()
def cli() -> None:
    """Draft detailed radiology reports from CT studies and impressions, reproducibly."""
    from pipelines.library_notices import drop_unactionable_notices
    from radreport.llm.bundled import CacheDirError, make_cache_dir

    drop_unactionable_notices()
    try:
        make_cache_dir()  # checkpoints, models and kernels go there: a failure later costs more
    except CacheDirError as exc:
        fail(str(exc), 2)


@cli.command()
def setup() -> None:
    """Register the MLflow tracker and registry in a ZenML stack and activate it."""
    from pipelines.stack import ensure_stack, mlflow_tracking_uri, mlflow_ui_command

    changes = ensure_stack()
    if changes:
        for change in changes:
            click.echo(f"  {change}")
    else:
        click.echo("Stack already set up: nothing changed.")
    click.echo(f"MLflow UI: {mlflow_ui_command(mlflow_tracking_uri())}")
    click.echo("ZenML UI:  zenml login --local")


def print_report(report) -> None:
    for line in report.lines():
        click.echo(line)


def check_data_inputs_or_exit(config_path: Path, config) -> None:
    """What a run's data section needs from outside its config, checked before ZenML loads
    and the stack starts (about 13 s): the de-identification key where one is required, and
    the manifest."""
    from radreport.data.pseudonyms import DeidKeyError, check_deid_key

    try:
        check_deid_key(config.data.deid)
    except DeidKeyError as exc:
        fail(f"{config_path}: data.deid: {exc}", 2)
    manifest = config.data.manifest.path
    try:
        missing = config.data.source == "manifest" and not manifest.exists()
    except PermissionError:  # a folder above it cannot be entered
        fail(f"{config_path}: data.manifest.path: {manifest}: permission denied", 2)
    if missing:
        read_from = (
            "" if manifest.is_absolute() else f" (relative to the working directory, {Path.cwd()})"
        )
        fail(f"{config_path}: data.manifest.path: {manifest} does not exist{read_from}", 2)


def check_base_models_or_exit(config_path: Path, config) -> None:
    """A base model named by its hub id is in the local cache or the hub answers for it,
    checked before the run starts rather than after its data steps."""
    from radreport.llm.hub_model import hub_model_problem

    for key, spec in (
        ("llm.base_model", config.llm.base_model),
        ("export.base_model", config.export.base_model if config.export.merged else None),
    ):
        problem = hub_model_problem(spec) if spec else None
        if problem:
            fail(f"{config_path}: {key}: {problem}", 2)


def train_with(config_path: Path, studies: str | None = None) -> None:
    config = load_config_or_exit(config_path)  # before ZenML's import: a bad config in 1-2 s
    if studies is None:  # a stored dataset version needs none of the data section's inputs
        check_data_inputs_or_exit(config_path, config)
    check_base_models_or_exit(config_path, config)
    from pipelines.console import console_logs_to_stderr
    from pipelines.launch import StudiesVersionNotFound, run_llm, run_training

    console_logs_to_stderr()
    from radreport.llm.finetune import import_backend

    # Before the pipelines load transformers: unsloth has to patch it first.
    import_backend(config.llm)
    from radreport.llm.base_model import unknown_architecture

    # Now that transformers is loaded anyway: an architecture it does not know would fail
    # the training step, after the data steps.
    problem = unknown_architecture(config.llm.base_model)
    if problem:
        fail(f"{config_path}: llm.base_model: {problem}", 2)
    with input_errors_exit():
        try:
            report = run_training(config) if studies is None else run_llm(config, studies)
        except StudiesVersionNotFound as exc:
            fail(f"--studies {studies}: {exc}", 2)
    print_report(report)


@contextmanager
def input_errors_exit():
    """Data errors in one line each. A manifest that cannot be read is refused like the files
    of `evaluate` and `baselines` (exit 2); input read fine that leaves no usable study, and a
    run that fails at a step, exit 1 (ZenML has logged the step's traceback above it); Ctrl-C
    exits 130."""
    from pipelines.run_failure import PipelineRunFailed, PipelineRunInterrupted
    from radreport.data.errors import DatasetError, ManifestError

    try:
        yield
    except ManifestError as exc:
        fail(str(exc), 2)
    except PipelineRunInterrupted as exc:
        interrupted(f"{exc}, marked failed")
    except (DatasetError, PipelineRunFailed) as exc:
        fail(str(exc), 1)
    except KeyboardInterrupt:
        interrupted("the run stops here, marked failed")


def interrupted(what: str) -> None:
    """A signal ended the run: ZenML's handler raises its own exception in the step, or
    Python's KeyboardInterrupt after it, whichever is raised last. 130 is the shell's code
    for a command that SIGINT ended, so a script or scheduler tells it from a failure."""
    fail(
        f"interrupted: {what}; the same command again reuses the steps that finished and "
        "resumes training from its last checkpoint",
        130,
    )


@cli.command()
def demo() -> None:
    """Run the whole training chain on the bundled demo data (configs/demo.yaml)."""
    train_with(DEMO_CONFIG)


@cli.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), required=True)
@click.option(
    "--studies",
    default=None,
    metavar="VERSION",
    help=(
        "Train on this stored version of the `studies` artifact (a data run's de-identified "
        "studies) instead of ingesting the config's data section."
    ),
)
def train(config_path: Path, studies: str | None) -> None:
    """Run the training chain (data -> LLM -> evaluation) for a config; print the model version."""
    train_with(config_path, studies)


@cli.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Run the data pipeline of this config.",
)
@click.option(
    "--manifest",
    type=click.Path(path_type=Path),
    default=None,
    help="Ingest your own manifest with the default settings instead.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="With --manifest: write quarantine.csv, summary.json, studies.parquet, volumes.npz here.",
)
def data(config_path: Path | None, manifest: Path | None, out: Path | None) -> None:
    """Build a de-identified dataset: from a config (pipeline) or a manifest (ingest report)."""
    if (config_path is None) == (manifest is None):
        fail("give exactly one of --config or --manifest", 2)
    if out is not None and config_path is not None:
        fail("--out goes with --manifest: a --config run stores its outputs as artifacts", 2)
    if config_path is not None:
        config = load_config_or_exit(config_path)
        check_data_inputs_or_exit(config_path, config)
        check_base_models_or_exit(config_path, config)  # its tokenizer sizes the prompts
        from pipelines.console import console_logs_to_stderr
        from pipelines.launch import run_data

        console_logs_to_stderr()  # as `train`: stdout is the run's report alone
        with input_errors_exit():
            print_report(run_data(config))
        return
    from radreport.data.build import OUTPUT_FILES, build_dataset
    from radreport.data.manifest import check_manifest_path
    from radreport.start_up_gc import resume_full_collections
    from radreport.whole_file_writes import SetNotWritten

    resume_full_collections()
    with input_errors_exit():
        check_manifest_path(manifest)  # before --out is made
    if out is not None:
        prepare_output_dir(out, OUTPUT_FILES)
    with input_errors_exit():
        try:
            build = build_dataset(manifest, out_dir=out)
        except SetNotWritten as exc:
            fail(f"--out {exc}", 1)
    for line in summary_lines(build.summary):
        click.echo(line)
    if out is not None:
        names = f"{', '.join(OUTPUT_FILES[:-1])} and {OUTPUT_FILES[-1]}"
        click.echo(f"wrote {names} to {out}")


def summary_lines(summary: dict) -> list[str]:
    lines = [f"studies in: {summary['studies_in']}, accepted: {summary['studies_accepted']}"]
    lines += [f"  quarantined {code}: {n}" for code, n in summary["quarantined_by_reason"].items()]
    return lines


@cli.command()
@click.option("--train", "train_csv", type=click.Path(path_type=Path), required=True)
@click.option("--reports", "reports_csv", type=click.Path(path_type=Path), required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def baselines(train_csv: Path, reports_csv: Path, as_json: bool) -> None:
    """Score the retrieval and constant baselines on a split: the bar to beat.

    Rows without a reference (empty findings or report) are left out of both tables, with a
    warning: a training row has nothing to retrieve, a scored row nothing to compare with.
    """
    train = rows_with_reference("--train", train_csv, read_reports_or_exit("--train", train_csv))
    reports = read_reports_or_exit("--reports", reports_csv)
    reports = rows_with_reference("--reports", reports_csv, reports)
    # Once both tables are known good: the scoring imports scikit-learn (about a second).
    from radreport.metrics import baseline_table_json, baseline_table_text, score_baselines
    from radreport.start_up_gc import resume_full_collections

    resume_full_collections()
    table = score_baselines(train, reports)
    click.echo(baseline_table_json(table) if as_json else baseline_table_text(table))


def read_reports_or_exit(option: str, path: Path):
    from radreport.metrics.report_tables import read_report_table

    try:
        return read_report_table(path)
    except ValueError as exc:
        fail(f"{option} {exc}", 2)


def rows_with_reference(option: str, path: Path, table):
    """The rows that have a reference; the others are counted in a warning. Exit 2 when no
    row has one."""
    from radreport.metrics.report_tables import empty_rows

    missing = empty_rows(table, "reference")
    if len(missing) == len(table):
        fail(f"{option} {path}: no row has a reference (findings or report)", 2)
    warn_rows(path, table, missing, "have an empty reference (findings or report)", "left out")
    kept = table.drop(index=missing).reset_index(drop=True)
    warn_if_no_finding_is_read(path, kept["reference"])
    return kept


def warn_rows(path: Path, table, rows: list[int], problem: str, consequence: str) -> None:
    """One stderr line: how many rows of the file have `problem`, the first one named."""
    if rows:
        first = rows[0]
        study_id = table["study_id"].iloc[first]
        # An id holding a line break or another control character is shown escaped, so
        # the warning stays one line.
        shown = study_id if study_id.isprintable() else ascii(study_id)
        named = f"study_id {shown}" if study_id.strip() else "no study_id"
        click.echo(
            f"warning: {path}: {len(rows)} of {len(table)} rows {problem} (first: row "
            f"{first + 1}, {named}); {consequence}",
            err=True,
        )


def prepare_output_dir(out: Path, files: tuple[str, ...] = ()) -> None:
    """--out made (or reused) before any work, so an unusable one costs no ingestion or
    generation; `files` are the names the command writes there."""
    import os

    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        fail(f"--out {out}: exists and is not a directory", 2)
    except OSError as exc:
        fail(f"--out {out}: cannot be created ({exc.strerror or exc})", 2)
    if not os.access(out, os.W_OK | os.X_OK):
        fail(f"--out {out}: not writable", 2)
    for name in files:
        if (out / name).is_dir():
            fail(f"--out {out}: {name} is a directory there; the command writes a file", 2)
    _hold_output_dir(out)


def _hold_output_dir(out: Path) -> None:
    """One command at a time writes into an --out folder: two at once left files of both,
    and a torn volumes.npz. Held until the process ends."""
    import atexit

    from radreport.folder_lock import FolderLock

    def say_waiting() -> None:
        click.echo(f"another radreport command is writing to {out}: waiting for it", err=True)

    atexit.register(FolderLock(out, on_wait=say_waiting).release)


def load_model_or_exit(spec: str | None):
    from pipelines.console import console_logs_to_stderr
    from pipelines.model_versions import ModelVersionNotFound, load_trained_model

    console_logs_to_stderr()
    try:
        model = load_trained_model(spec)
    except ModelVersionNotFound as exc:
        fail(str(exc), 2)
    from radreport.start_up_gc import resume_full_collections

    resume_full_collections()  # start-up is over: the ML stack and ZenML are imported
    return model


def decoding_overrides(
    decoder: str | None, stop_bias: float | None, max_new_tokens: int | None
) -> list[tuple[str, str, object]]:
    """(option, LLM settings key, value) of each decoding option given on the command line."""
    given = (
        ("--decoder", "decoder", decoder),
        ("--stop-bias", "stop_logit_bias", stop_bias),
        ("--max-new-tokens", "max_new_tokens", max_new_tokens),
    )
    return [(option, key, value) for option, key, value in given if value is not None]


def decoding_settings(
    model,
    decoder: str | None = None,
    stop_bias: float | None = None,
    max_new_tokens: int | None = None,
):
    """The model version's LLM settings; `decoder` overrides the decoding engine it was
    trained with, `stop_bias` the stop bias it was trained or calibrated with and
    `max_new_tokens` its token budget (decoding choices: the weights are the same)."""
    from pydantic import ValidationError

    from radreport.llm.settings import LLMSettings

    settings = model.settings
    for option, key, value in decoding_overrides(decoder, stop_bias, max_new_tokens):
        try:
            settings = LLMSettings.model_validate({**settings.model_dump(), key: value})
        except ValidationError as exc:
            fail(f"{option} {value}: {exc.errors()[0]['msg']}", 2)
    return settings


def check_decoding_ranges(
    decoder: str | None, stop_bias: float | None, max_new_tokens: int | None
) -> None:
    """The decoding options against their fields' types and bounds before a model loads
    (seconds), so that a value out of range is refused at once; how they fit the version's
    other settings is checked once it has loaded (decoding_settings)."""
    from typing import Annotated

    from pydantic import TypeAdapter, ValidationError

    from radreport.llm.settings import LLMSettings

    for option, key, value in decoding_overrides(decoder, stop_bias, max_new_tokens):
        field = LLMSettings.model_fields[key]
        # The field's type with its bounds (a float's Ge and Le are kept apart as metadata).
        bounded = (
            Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        )
        try:
            TypeAdapter(bounded).validate_python(value)
        except ValidationError as exc:
            fail(f"{option} {value}: {exc.errors()[0]['msg']}", 2)


def report_generator(model, settings):
    """The model version's generator, decoding by `settings` (decoding_settings)."""
    from radreport.llm.base_model import BaseModelMissing
    from radreport.llm.decoder_support import DecoderUnavailable
    from radreport.llm.onnx_export import OnnxExportError
    from radreport.llm.trained_generator import trained_report_generator

    try:
        return trained_report_generator(settings, model.adapter_dir, model.alpaca_table)
    except (DecoderUnavailable, OnnxExportError) as exc:
        fail(f"decoder {settings.decoder}: {exc}", 2)
    except BaseModelMissing as exc:
        fail(f"{model.label}: {exc} (moved or deleted since it was trained: put it back)", 2)


DECODER_OPTION = click.option(
    "--decoder",
    type=click.Choice(["auto", "torch", "onnxruntime", "native"]),
    default=None,
    help=(
        "Decoding engine; default: the model's config. onnxruntime: greedy only, CPU. "
        "native: our C decode kernel, Llama models on the CPU (needs a C compiler). "
        "auto: native where it can run, else torch."
    ),
)

STOP_BIAS_OPTION = click.option(
    "--stop-bias",
    type=float,
    default=None,
    help=(
        "Added to the stop tokens' logits (-20 to 20; below 0 reports end later); default: "
        "the bias the model version was calibrated or trained with."
    ),
)

MAX_NEW_TOKENS_OPTION = click.option(
    "--max-new-tokens",
    type=int,
    default=None,
    help=(
        "The most tokens a report may take (it is cut there); default: the model version's "
        "llm.max_new_tokens."
    ),
)


def check_utf8_argument(option: str, value: str) -> None:
    """Bytes that are not UTF-8 in an argument (a latin-1 shell) reach Python as lone
    surrogates, which no tokenizer takes: one line naming the first, not a traceback."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        byte = ord(value[error.start]) - 0xDC00  # surrogateescape's mapping of the byte
        detail = f"byte 0x{byte:02x}" if 0 <= byte < 0x100 else "a lone surrogate"
        fail(f"{option} is not UTF-8 text ({detail} at character {error.start + 1})", 2)


@cli.command()
@click.option("--impression", required=True, help="The radiologist's impression.")
@click.option("--model", "model_spec", default=None, help="NAME[:VERSION]; default: latest demo.")
@DECODER_OPTION
@STOP_BIAS_OPTION
@MAX_NEW_TOKENS_OPTION
def generate(
    impression: str,
    model_spec: str | None,
    decoder: str | None,
    stop_bias: float | None,
    max_new_tokens: int | None,
) -> None:
    """Write the detailed report for one impression with a trained model version."""
    from radreport.visible_text import visible

    if not visible(impression).strip():
        fail("--impression is empty (or holds only spaces and invisible characters)", 2)
    check_utf8_argument("--impression", impression)
    check_decoding_ranges(decoder, stop_bias, max_new_tokens)
    from radreport.llm.generate import PromptTooLong
    from radreport.llm.predictions import predict_impressions

    model = load_model_or_exit(model_spec)
    generator = report_generator(
        model, decoding_settings(model, decoder, stop_bias, max_new_tokens)
    )
    try:
        [report] = predict_impressions(
            generator,
            [impression],
            model.train_pairs,
            model.settings.retrieval_k,
            model.settings.retrieval_match,
        )
    except PromptTooLong as exc:
        fail(f"--impression is too long: {exc}", 2)
    # The report alone on stdout (`> report.txt`); which model wrote it goes with the logs.
    click.echo(f"[{model.label}] stop bias {generator.rules.stop_logit_bias:+g}", err=True)
    if not report.strip():
        click.echo("warning: the model wrote an empty report for this impression", err=True)
    click.echo(report)


def write_generation_record(
    path: Path,
    model,
    settings,
    generator,
    reports_csv: Path,
    written: list[bool],
    out_of_room: list[bool],
) -> None:
    """How predictions.csv was written, to tell two evaluations apart or repeat one: the model
    version, the decoding settings after any override, the input file's digest and what became
    of each row (`written`: it has a report, else its prompt did not fit; `out_of_room`: the
    token budget cut its report)."""
    import json
    from dataclasses import asdict

    from radreport.llm.file_digests import sha256_of_file

    section_stop = generator.rules.section_stop
    record = {
        "model": model.label,
        "reports_csv": {
            "path": str(reports_csv),
            "sha256": sha256_of_file(reports_csv),
            "rows": len(written),
        },
        "llm_settings": settings.model_dump(mode="json"),
        "decoding_engine": generator.decoding_engine(),
        "report_shape": asdict(section_stop.shape) if section_stop and section_stop.shape else None,
        "reports_written": sum(written),
        "reports_out_of_room": sum(out_of_room),
        # Row numbers as in rejected.csv (1 = the first row after the header), since study
        # ids need not be unique.
        "rows_out_of_room": [row for row, cut in enumerate(out_of_room, start=1) if cut],
    }
    path.write_text(json.dumps(record, indent=2) + "\n")


def warn_empty_impressions(reports_csv: Path, table) -> None:
    """Training never sees a study without an impression (ingestion quarantines them), so a
    report written for one comes from the prompt's template and examples alone: said, not
    refused, so that the file's other rows and its scores are kept."""
    from radreport.metrics.report_tables import empty_rows

    empty = empty_rows(table, "impression")
    warn_rows(
        reports_csv,
        table,
        empty,
        "have an empty impression",
        "their reports are written without one",
    )


def warn_unclear_study_ids(reports_csv: Path, table) -> None:
    """Rows without a study_id, and rows that share one: written all the same, and
    predictions.csv, in the input's row order, tells them apart by position."""
    from radreport.metrics.report_tables import empty_rows

    no_id = empty_rows(table, "study_id")
    warn_rows(
        reports_csv, table, no_id, "have an empty study_id",
        "predictions.csv names them by their position alone",
    )  # fmt: skip
    repeated = [
        index for index, seen in enumerate(table["study_id"].duplicated(keep=False)) if seen
    ]
    warn_rows(
        reports_csv, table, repeated, "share their study_id with another row",
        "predictions.csv keeps the input's row order",
    )  # fmt: skip


def rows_to_score(reports_csv: Path, table) -> list[bool]:
    """The rows with a reference to score against (none in a table without references); the
    rows with an empty one are counted in a warning."""
    from radreport.metrics.report_tables import empty_rows

    if "reference" not in table.columns:
        return [False] * len(table)
    missing = set(empty_rows(table, "reference"))
    problem = "have an empty reference (findings or report)"
    warn_rows(reports_csv, table, sorted(missing), problem, "they are written, not scored")
    warn_if_no_finding_is_read(reports_csv, table["reference"])
    return [index not in missing for index in range(len(table))]


def warn_if_no_finding_is_read(path: Path, references) -> None:
    """A warning where the finding labeler reads no finding at all in the references, as in
    reports written in another language than English: finding F1 then scores nothing."""
    from radreport.metrics.labeler import mentions_any_finding

    if len(references) and not mentions_any_finding(references):
        click.echo(
            f"warning: {path}: the finding labeler (English CheXpert rules) reads no finding, "
            "present or absent, in any reference: finding F1 says nothing of these reports",
            err=True,
        )


@cli.command()
@click.option(
    "--reports",
    "reports_csv",
    type=click.Path(path_type=Path),
    required=True,
    help="CSV with study_id, impression and optionally findings or report.",
)
@click.option("--model", "model_spec", default=None, help="NAME[:VERSION]; default: latest demo.")
@click.option("--out", type=click.Path(path_type=Path), required=True)
@DECODER_OPTION
@STOP_BIAS_OPTION
@MAX_NEW_TOKENS_OPTION
def evaluate(
    reports_csv: Path,
    model_spec: str | None,
    out: Path,
    decoder: str | None,
    stop_bias: float | None,
    max_new_tokens: int | None,
) -> None:
    """Generate for every row of a CSV; write predictions.csv and, with references, metrics.json.

    A row whose prompt does not fit the model's context is rejected: its prediction is left
    empty, DIR/rejected.csv says why, the other rows are written and scored, and the command
    then exits with status 2 naming the first rejected row.
    """
    from radreport.metrics.report_tables import read_prompt_table

    check_decoding_ranges(decoder, stop_bias, max_new_tokens)
    try:
        table = read_prompt_table(reports_csv)
    except ValueError as exc:
        fail(f"--reports {exc}", 2)
    warn_empty_impressions(reports_csv, table)
    warn_unclear_study_ids(reports_csv, table)
    scorable = rows_to_score(reports_csv, table)
    from radreport.metrics.report_files import REPORT_FILES

    # Its own files and the evaluation report's.
    own_files = ("predictions.csv", "generation.json", "metrics.json", "rejected.csv")
    prepare_output_dir(out, (*own_files, *REPORT_FILES))
    # Imported once the input is known good: torch and the metrics take seconds to load, and
    # a mistyped file should be refused at once.
    from radreport.llm.predictions import predict_fitting_impressions
    from radreport.metrics.evaluate import evaluate_reports
    from radreport.whole_file_writes import SetNotWritten, replaced_as_a_set

    model = load_model_or_exit(model_spec)
    settings = decoding_settings(model, decoder, stop_bias, max_new_tokens)
    generator = report_generator(model, settings)
    generated, out_of_room, too_long = predict_fitting_impressions(
        generator,
        table["impression"].tolist(),
        model.train_pairs,
        model.settings.retrieval_k,
        model.settings.retrieval_match,
    )
    written = [report is not None for report in generated]
    table["generated"] = [report or "" for report in generated]
    table["out_of_room"] = out_of_room
    scored_rows = [
        fits and has_reference for fits, has_reference in zip(written, scorable, strict=True)
    ]
    result = None
    # One set: a write that fails (a full disk) leaves the previous run's files, all of them.
    # The scores and rejections of a run without any are not kept from the previous one.
    try:
        with replaced_as_a_set(out, (*own_files, *REPORT_FILES)) as staged:
            table[["study_id", "generated"]].rename(columns={"generated": "prediction"}).to_csv(
                staged / "predictions.csv", index=False
            )
            write_generation_record(
                staged / "generation.json", model, settings, generator, reports_csv, written,
                out_of_room,
            )  # fmt: skip
            if any(scored_rows):
                scored = table[scored_rows].reset_index(drop=True)
                result = evaluate_reports(scored, model.train_pairs, output_dir=staged)
                result = moved_report_files(result, out)
                (staged / "metrics.json").write_text(result.to_json())
            if too_long:
                rejected_table(table, too_long).to_csv(staged / "rejected.csv", index=False)
    except SetNotWritten as exc:
        fail(f"--out {exc}", 1)
    click.echo(
        f"[{model.label}] wrote {out / 'predictions.csv'} ({len(table)} rows, stop bias "
        f"{generator.rules.stop_logit_bias:+g}) and {out / 'generation.json'}"
    )
    if result is not None:
        click.echo(f"wrote {out / 'metrics.json'} and {result.html_path} ({sum(scored_rows)} rows)")
        for key in ("bleu1", "bleu4", "rouge_l", "finding_f1_micro", "length_ratio"):
            click.echo(f"  {key}: {result.metrics[key]:.3f}")
    if too_long:
        first = too_long[0]
        fail(
            f"{reports_csv}: {len(too_long)} of {len(table)} rows rejected (see "
            f"{out / 'rejected.csv'}); row {first.index + 1} (study_id "
            f"{table['study_id'].iloc[first.index]}): {first}",
            2,
        )


def moved_report_files(result, out: Path):
    """`result` naming its report files where they are once moved from staging into `out`."""
    from dataclasses import replace

    return replace(
        result,
        html_path=out / result.html_path.name,
        plot_paths=[out / path.name for path in result.plot_paths],
    )


def rejected_table(table, too_long):
    """rejected.csv: the rows whose prompt did not fit, and why."""
    import pandas as pd

    return pd.DataFrame(
        {
            "row": [error.index + 1 for error in too_long],
            "study_id": [table["study_id"].iloc[error.index] for error in too_long],
            "reason": [str(error) for error in too_long],
        }
    )


def main() -> None:
    from radreport.start_up_gc import pause_full_collections, skip_final_collection

    pause_full_collections()
    try:
        cli()
    finally:
        skip_final_collection()


if __name__ == "__main__":
    main()
