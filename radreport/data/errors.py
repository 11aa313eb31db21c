"""Errors that mean the input as a whole is unusable. Their messages are one line, fit for
a command line that prints them and exits 1; everything smaller is quarantined instead."""

from __future__ import annotations


class DatasetError(Exception):
    """Base of the data pipeline's whole-input failures."""


class ManifestError(DatasetError):
    """The manifest cannot be read, lacks a required column, or has no valid row."""


class NoUsableStudiesError(DatasetError):
    """Every study was rejected: there is nothing to train on."""
