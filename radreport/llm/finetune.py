"""Fine-tune LoRA adapters on impression -> report pairs: the one entry point for both backends."""

from __future__ import annotations

import importlib
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import torch

from radreport.data.alpaca import AlpacaDataset, build_alpaca_dataset
from radreport.llm.device import resolve_backend, resolve_for_device
from radreport.llm.resume import (
    ADAPTER_DIR_NAME,
    checkpoint_step,
    fingerprint_of,
    fingerprint_parts,
    prepare_output_dir,
    training_finished,
)
from radreport.llm.run_folder import RunFolder, claim_run_folder
from radreport.llm.settings import LLMSettings
from radreport.llm.validation_sample import validation_loss_rows

if TYPE_CHECKING:
    # Not at run time: it imports transformers, which must load after the backend.
    from radreport.llm.sample_generations import SampleRows

logger = logging.getLogger(__name__)
_BACKEND_MODULES = {"unsloth": "radreport.llm.backend_unsloth", "hf": "radreport.llm.backend_hf"}


def import_backend(settings: LLMSettings) -> ModuleType:
    """The training backend's module for `settings`, resolved for this machine.

    Call it before anything imports transformers: unsloth patches transformers, peft and
    TRL when it is imported, and warns that training may run slower and take more memory
    when they were loaded first. This module imports none of them at import time, so a
    process that trains can import it, then the backend, then the rest.
    """
    return importlib.import_module(_BACKEND_MODULES[resolve_backend(settings)])


@dataclass(frozen=True)
class FineTuneResult:
    adapter_dir: Path
    metrics: dict[str, float]
    log_history: list[dict]
    # (step, learning rate that optimizer step took) for every step of the run; empty where
    # this process ran no scheduler (a finished run restored).
    learning_rates: list[tuple[int, float]]
    resumed_from_step: int | None  # the checkpoint this run started from, if any
    restored: bool  # that checkpoint ended the run: nothing was trained, its result restored
    samples: SampleRows  # generated at each evaluation of this process (see eval_samples)
    settings: LLMSettings  # as trained: resolved for this machine, no "auto" left


@dataclass
class PreparedTraining:
    """A trainer ready to run, with what went into it."""

    trainer: object
    tokenizer: object
    settings: LLMSettings  # resolved for this machine: no "auto" left
    train_data: AlpacaDataset
    val_data: AlpacaDataset
    resume_from: Path | None
    run_folder: RunFolder  # locked for this process until released


def prepare_training(
    train_rows: Sequence[Mapping],
    val_rows: Sequence[Mapping],
    settings: LLMSettings,
    output_dir: str | Path,
    report_to: Sequence[str] = (),
    callbacks: Sequence = (),
) -> PreparedTraining:
    """Model with fresh adapters, tokenized data and a configured trainer for the backend.

    The run works in its own folder under `output_dir`, named by its config and data and
    locked until `run_folder.release()` (radreport.llm.run_folder). Decides whether the run
    resumes: see radreport.llm.resume.
    """
    settings = resolve_for_device(settings)
    if settings.num_threads is not None:
        torch.set_num_threads(settings.num_threads)
    loss_rows = validation_loss_rows(val_rows, settings.eval_loss_studies, settings.seed)
    if len(loss_rows) < len(val_rows):
        logger.info(
            "validation loss on %d of the %d val studies, drawn by seed %d (llm.eval_loss_studies)",
            len(loss_rows),
            len(val_rows),
            settings.seed,
        )
    val_rows = loss_rows
    parts = fingerprint_parts(settings, train_rows, val_rows)
    fingerprint = fingerprint_of(parts)
    run_folder = claim_run_folder(Path(output_dir), fingerprint, parts)
    try:
        return _prepare_in(run_folder, parts, train_rows, val_rows, settings, report_to, callbacks)
    except BaseException:
        run_folder.release()
        raise


def _prepare_in(
    run_folder: RunFolder,
    parts: Mapping[str, str],
    train_rows: Sequence[Mapping],
    val_rows: Sequence[Mapping],
    settings: LLMSettings,
    report_to: Sequence[str],
    callbacks: Sequence,
) -> PreparedTraining:
    output_dir = run_folder.path
    resume_from = prepare_output_dir(output_dir, fingerprint_of(parts), parts)
    backend = import_backend(settings)
    from transformers import set_seed

    from radreport.llm.collator import ResponseOnlyCollator
    from radreport.llm.printed_logs import print_logs_on_stderr
    from radreport.llm.sft_config import build_sft_config
    from radreport.llm.tokenizer_checks import ready_tokenizer
    from radreport.llm.train_loss_logging import LogAtEvaluationsAndLastStep

    trainer_class = backend.trainer_class()
    set_seed(settings.seed)  # LoRA initialisation draws from it
    model, tokenizer = backend.load_model(settings)
    embeddings = model.get_input_embeddings().num_embeddings
    tokenizer = ready_tokenizer(tokenizer, settings.base_model, embeddings)
    train_data, val_data = (
        build_alpaca_dataset(rows, tokenizer, settings.max_seq_length, settings.overlength)
        for rows in (train_rows, val_rows)
    )
    trainer = trainer_class(
        model=model,
        args=build_sft_config(settings, output_dir, report_to, eval_on_start=resume_from is None),
        train_dataset=_as_hf_dataset(train_data, "train", settings.max_seq_length),
        eval_dataset=_as_hf_dataset(val_data, "val", settings.max_seq_length),
        processing_class=tokenizer,
        data_collator=ResponseOnlyCollator(
            pad_token_id=tokenizer.pad_token_id,
            padding_free=settings.batching == "padding_free",
            pad_to_multiple_of=settings.pad_to_multiple_of,
        ),
        callbacks=[LogAtEvaluationsAndLastStep(), *_early_stopping(settings), *callbacks],
        **backend.trainer_options(settings),
    )
    print_logs_on_stderr(trainer)
    return PreparedTraining(
        trainer, tokenizer, settings, train_data, val_data, resume_from, run_folder
    )


def finetune(
    train_rows: Sequence[Mapping],
    val_rows: Sequence[Mapping],
    settings: LLMSettings,
    output_dir: str | Path,
    report_to: Sequence[str] = (),
    callbacks: Sequence = (),
    on_samples: Callable[[int, SampleRows], None] | None = None,
    adapter_dir: str | Path | None = None,
) -> FineTuneResult:
    """Train adapters on rows with `impression` and `report` (optionally `examples`).

    Checkpoints go to the run's own folder under `output_dir` (one per settings and rows,
    held by one process at a time: radreport.llm.run_folder) every `save_steps`; calling
    again with the same output_dir, settings and rows resumes from the last one. The
    validation loss is measured once before training (step 0) and every `eval_steps`. The
    adapter (safetensors, with the tokenizer) is written to `adapter_dir` (default: the run
    folder's `adapter`) before the folder is released. The default lasts only until the next
    run of another config or data in `output_dir` starts (it removes the folders no process
    holds) or the same run is trained again: keep it by copying, or give a folder of the
    caller's own. With early stopping it is the best one by validation loss, and
    metrics["eval_loss"] is always the saved adapter's. `report_to` goes to the Trainer
    (["mlflow"] logs into the active MLflow run; [] logs nowhere); `callbacks` are extra
    transformers TrainerCallbacks. At each evaluation the first `settings.eval_samples`
    validation rows are written out greedily; each step's rows go to `on_samples(step,
    rows)` as they come and all of them into the result.
    """
    settings.require_token_budgets("max_seq_length")
    import_backend(settings)
    sampler = None
    if settings.eval_samples:
        from radreport.llm.sample_generations import SampleGenerationsCallback

        sampler = SampleGenerationsCallback(
            val_rows[: settings.eval_samples], settings.eval_sample_max_new_tokens, on_samples
        )
        callbacks = [*callbacks, sampler]
    run = prepare_training(train_rows, val_rows, settings, output_dir, report_to, callbacks)
    try:
        resume_from = run.resume_from
        restored = bool(resume_from and training_finished(resume_from))
        if restored:
            _restore_finished_run(run, resume_from)
        else:
            run.trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        final_eval = run.trainer.evaluate()
        adapter_dir = Path(adapter_dir or run.run_folder.path / ADAPTER_DIR_NAME)
        _save_adapter(run, adapter_dir)
    finally:
        run.run_folder.release()
    return FineTuneResult(
        adapter_dir=adapter_dir,
        metrics=_summary(final_eval, run),
        log_history=list(run.trainer.state.log_history),
        learning_rates=learning_rate_schedule(run.trainer),
        resumed_from_step=checkpoint_step(resume_from) if resume_from else None,
        restored=restored,
        samples=sampler.samples if sampler else [],
        settings=run.settings,
    )


def learning_rate_schedule(trainer) -> list[tuple[int, float]]:
    """The learning rate each optimizer step of the run took, from the scheduler's own rule
    (a resumed run's steps before its checkpoint included). The trainer logs the rate every
    logging_steps only, which hides a warmup of a few steps. Step s takes the rule's rate
    at s - 1 (the scheduler moves on after each step), which is what the trainer logs at
    step s."""
    scheduler = getattr(trainer, "lr_scheduler", None)
    rules = getattr(scheduler, "lr_lambdas", None)
    if not rules:
        return []
    base = float(scheduler.base_lrs[0])
    steps = int(trainer.state.max_steps)
    return [(step, base * float(rules[0](step - 1))) for step in range(1, steps + 1)]


def _save_adapter(run: PreparedTraining, adapter_dir: Path) -> None:
    if adapter_dir.exists():
        shutil.rmtree(adapter_dir)  # no file of an earlier save may join this adapter
    run.trainer.save_model(str(adapter_dir))
    run.tokenizer.save_pretrained(adapter_dir)
    # The Trainer pickles its arguments next to the adapter; model artifacts stay pickle-free.
    (adapter_dir / "training_args.bin").unlink(missing_ok=True)


def _restore_finished_run(run: PreparedTraining, checkpoint: Path) -> None:
    """The trainer as the run ended at `checkpoint`: its state (steps, logged losses) and
    the adapter it ends with, the best checkpoint's when the best is kept."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import TrainerState

    state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    weights = checkpoint
    if run.trainer.args.load_best_model_at_end and state.best_model_checkpoint:
        best = checkpoint.parent / Path(state.best_model_checkpoint).name
        weights = best if (best / "adapter_model.safetensors").is_file() else checkpoint
    set_peft_model_state_dict(run.trainer.model, load_file(weights / "adapter_model.safetensors"))
    run.trainer.state = state
    logger.info(
        "The run in %s had finished at step %d: nothing to train",
        checkpoint.parent,
        state.global_step,
    )


def _early_stopping(settings: LLMSettings) -> list:
    from transformers import EarlyStoppingCallback

    if settings.early_stopping_patience is None:
        return []
    return [EarlyStoppingCallback(early_stopping_patience=settings.early_stopping_patience)]


def _as_hf_dataset(data: AlpacaDataset, split: str, max_seq_length: int):
    from datasets import Dataset

    if not data.examples:
        if not data.dropped:
            raise ValueError(
                f"the {split} split has no study: add studies or raise data.split.{split}"
            )
        raise ValueError(
            f"no {split} example fits max_seq_length {max_seq_length}: all {data.dropped} "
            "were dropped (a prompt that fills it alone, or overlength: drop); raise "
            "max_seq_length or shorten the prompts (retrieval_k)"
        )
    return Dataset.from_dict(
        {
            "input_ids": [example.input_ids for example in data.examples],
            "labels": [example.labels for example in data.examples],
            # read by the length-grouped sampler instead of re-measuring every example
            "length": [len(example.input_ids) for example in data.examples],
        }
    )


def _eval_loss_before_training(log_history: list[dict]) -> float | None:
    for entry in log_history:
        if entry.get("step") == 0 and "eval_loss" in entry:
            return entry["eval_loss"]
    return None


def _summary(final_eval: dict, run: PreparedTraining) -> dict[str, float]:
    state = run.trainer.state
    # The Trainer's own train_loss divides one session's losses by all steps, which is wrong
    # after a resume; the logged losses span both sessions (the history is restored). Each
    # logged loss is the mean of the steps since the log before it, so it weighs by them.
    logged = [entry for entry in state.log_history if "loss" in entry]
    steps = [entry["step"] for entry in logged]
    windows = [step - before for step, before in zip(steps, [0, *steps[:-1]], strict=True)]
    losses = [entry["loss"] for entry in logged]
    metrics = {
        "train_loss": (
            sum(w * loss for w, loss in zip(windows, losses, strict=True)) / sum(windows)
            if sum(windows) > 0
            else float("nan")
        ),
        "train_loss_last": losses[-1] if losses else float("nan"),
        "train_steps": state.global_step,
        "eval_loss": final_eval["eval_loss"],
    }
    before = _eval_loss_before_training(state.log_history)
    if before is not None:
        metrics["eval_loss_before_training"] = before
    for split, data in (("train", run.train_data), ("val", run.val_data)):
        metrics.update({f"{split}_{name}": value for name, value in data.stats().items()})
    return metrics
