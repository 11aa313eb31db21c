"""The Trainer's printed logs (`{'eval_loss': ...}`, `{'train_runtime': ...}`) go to stderr.

transformers' progress-bar callback writes them with tqdm.write, and its printer callback
(taken where tqdm is disabled) with print: both to stdout, which for `run.py` is the run's
report alone.
"""

from __future__ import annotations

import sys
from contextlib import redirect_stdout

from transformers.trainer_callback import PrinterCallback, ProgressCallback


class _OnStderr:
    def on_log(self, args, state, control, logs=None, **kwargs):
        with redirect_stdout(sys.stderr):
            return super().on_log(args, state, control, logs=logs, **kwargs)


class ProgressOnStderr(_OnStderr, ProgressCallback):
    pass


class PrinterOnStderr(_OnStderr, PrinterCallback):
    pass


def print_logs_on_stderr(trainer) -> None:
    """Swap the trainer's log-printing callback for the same one writing to stderr."""
    for printer, on_stderr in (
        (ProgressCallback, ProgressOnStderr),
        (PrinterCallback, PrinterOnStderr),
    ):
        if trainer.pop_callback(printer) is not None:
            trainer.add_callback(on_stderr)
