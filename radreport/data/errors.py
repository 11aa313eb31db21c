"""Errors that mean the input as a whole is unusable. Their messages are one line, fit for
a command line to print: a manifest that cannot be read is a usage error (exit 2), input
read fine that leaves no study is exit 1. Everything smaller is quarantined instead."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


class DatasetError(Exception):
    """Base of the data pipeline's whole-input failures."""


class ManifestError(DatasetError):
    """The manifest cannot be read, has no rows, or lacks a required column."""


class NoUsableStudiesError(DatasetError):
    """Every row or study was rejected: there is nothing to train on. `rejected` holds the
    quarantine entries that say why, so the record can still be written; `build_dataset`
    adds `quarantine`, the same record de-identified (QUARANTINE_COLUMNS), fit to be kept,
    once it has de-identified anything (None for a manifest refused before that)."""

    def __init__(self, message: str, rejected: list | None = None):
        super().__init__(message)
        self.rejected = list(rejected or [])
        self.quarantine: pd.DataFrame | None = None
