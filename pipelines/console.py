"""ZenML's console log lines on stderr, so a command's stdout is only its output.

ZenML's console handler sits on the root logger and writes to stdout, so every library
warning that goes through `logging` (ZenML's own notices, bitsandbytes' kernel notice, ...)
would land in front of the report that `run.py generate` prints: `> report.txt` would catch
them too.
"""

from __future__ import annotations

import logging
import os

_stderr_stream = None


def console_logs_to_stderr() -> None:
    """Point ZenML's console handler(s) at stderr (idempotent)."""
    global _stderr_stream
    from zenml.logger import ZenMLConsoleHandler

    if _stderr_stream is None:
        # A stream of our own on the stderr file: ZenML wraps `sys.stderr.write` while a step
        # runs to store what it prints, and its log-storage handler already stores each record.
        _stderr_stream = open(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, ZenMLConsoleHandler) and handler.stream is not _stderr_stream:
            handler.setStream(_stderr_stream)
