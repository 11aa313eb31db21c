"""A pipeline run that failed at a step, told in one line: the run, the step, the step's error.

Kept free of module-level ZenML imports so that the command line can catch it cheaply.
"""

from __future__ import annotations


class PipelineRunFailed(RuntimeError):
    """A step of the run raised. The message names the run, the step and the step's own
    error on one line; ZenML has logged the full traceback before."""


class PipelineRunInterrupted(PipelineRunFailed):
    """A signal (Ctrl-C, a scheduler's stop) ended a step; ZenML marked the run failed."""


def raise_if_a_step_failed(pipeline_name: str, error: Exception) -> None:
    """PipelineRunFailed from `error` when it is the local orchestrator's report that steps
    of the pipeline's latest run failed; otherwise nothing, and the caller re-raises `error`
    with its traceback (a fault outside the steps). The orchestrator names only the failed
    steps; each one's exception is in the store, with the run."""
    from zenml.client import Client
    from zenml.enums import ExecutionStatus

    run = Client().get_pipeline(pipeline_name).last_run
    failed = [
        (name, step)
        for name, step in run.steps.items()
        if step.status == ExecutionStatus.FAILED and name in str(error)
    ]
    if run.status != ExecutionStatus.FAILED or not failed:
        return
    name, step = failed[0]
    info = step.exception_info
    kind = (info.source or "").rsplit(".", 1)[-1] if info is not None else ""
    if kind == "RunInterruptedException":  # ZenML's signal handler, when it is the last word
        raise PipelineRunInterrupted(f"ZenML run {run.name} stopped at step {name}") from error
    cause = "see the traceback above"
    if info is not None and info.message and info.message.strip():
        cause = f"{kind + ': ' if kind else ''}{info.message.strip().splitlines()[0]}"
    raise PipelineRunFailed(f"ZenML run {run.name} failed at step {name}: {cause}") from error
