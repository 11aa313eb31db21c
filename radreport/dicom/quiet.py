"""pydicom kept quiet while ingestion reads files.

pydicom warns, and logs the same text, about whatever it finds odd in a file, and its
messages quote the file's path (export tools name folders after the patient) and header
values. Ingestion judges every file itself and records what is wrong as a quarantine reason,
so those messages would add nothing but identifiers to stderr and to the step logs that
ZenML stores.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

PYDICOM_LOGGER = "pydicom"


@contextmanager
def pydicom_silenced() -> Iterator[None]:
    logger = logging.getLogger(PYDICOM_LOGGER)
    was_disabled = logger.disabled
    logger.disabled = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.disabled = was_disabled


_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")


def decoder_message(text: str, path: str) -> str:
    """A decoder's error text for the quarantine: without the file's path or name, and
    without the values it quotes, which may be header text."""
    for location in sorted({path, path.rsplit("/", 1)[-1]}, key=len, reverse=True):
        if location:
            text = text.replace(location, "<file>")
    return _QUOTED.sub("'…'", text)
