"""Library notices that tell a user of this project nothing they can act on, dropped.

Each is printed by every command (or every step) on some or all of our machines:
- bitsandbytes, on CPUs with AVX-512 BF16, at import: it could not fetch its 4-bit CPU
  kernel from the Hugging Face hub through the `kernels` package. Our runs fetch nothing
  from a hub at run time, and bitsandbytes computes with its own kernels instead.
- torch, when a library registers an Enum class with torch.compile's pytree (torchao
  does at import): a deprecation meant for that library's authors, whichever it is.
- ZenML's MLflow tracker, at the end of every step: it disables autologging for a list of
  frameworks that includes fastai, which MLflow 3 no longer has.
Any other message from the same loggers still shows.
"""

from __future__ import annotations

import logging

# logger name -> phrases of the messages dropped
UNACTIONABLE = {
    "bitsandbytes.backends.cpu.ops": (
        "Failed to load CPU gemm_4bit_forward from kernels-community",
    ),
    "torch.utils._pytree": ("is an Enum subclass and is now natively supported by torch.compile",),
    "zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker": (
        "Failed to disable MLflow autologging for the following frameworks: ['fastai'].",
    ),
}


class _DropMessages(logging.Filter):
    def __init__(self, phrases: tuple[str, ...]):
        super().__init__()
        self.phrases = phrases

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(phrase in message for phrase in self.phrases)


def drop_unactionable_notices() -> None:
    """Filter the notices above out of their loggers (idempotent). Call before the
    libraries are imported: two of them speak at import."""
    for name, phrases in UNACTIONABLE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(existing, _DropMessages) for existing in logger.filters):
            logger.addFilter(_DropMessages(phrases))
