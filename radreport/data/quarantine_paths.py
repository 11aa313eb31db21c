"""Where a quarantined file lies, told without the identifiers its path may hold.

Export tools name folders and files after what they hold: the patient's name or ID, the
accession, the study date, a Study, Series or SOP Instance UID, in any spelling. No pattern
finds them all, and a study whose files are all broken has no header to say what its
patient is called. So a file's path in the quarantine is its place inside the study's
dicom_dir (the entry's manifest line says which folder that is) with every folder and file
name replaced by a keyed pseudonym: the same name gives the same pseudonym, so files of one
folder still group, and nothing of the name is left. The owner of the data finds the files
again in `quarantine_sources.csv`, which `run.py data --out` writes beside the raw data and
no pipeline stores.
"""

from __future__ import annotations

from pathlib import PurePath

from radreport.data.pseudonyms import DeidKeys

STUDY_FOLDER = "."  # the entry is the study's dicom_dir itself
NAME_KIND = "F"  # pseudonym prefix of a folder or file name


def path_in_study(path: str, dicom_dir: str, keys: DeidKeys) -> str:
    """`path` relative to `dicom_dir`, each name a pseudonym; a path outside it (none should
    be) keeps only its name's pseudonym."""
    try:
        parts = PurePath(path).relative_to(dicom_dir).parts
    except ValueError:
        parts = (PurePath(path).name,)
    if not parts:
        return STUDY_FOLDER
    return "/".join(keys.pseudonym(NAME_KIND, printable_path(part)) for part in parts)


def printable_path(path: str) -> str:
    """A file name that is not UTF-8 (kept by Python as lone surrogates) written with
    backslash escapes, so that a table can store it at all: `b'\\xff.dcm'` -> `\\xff.dcm`."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
