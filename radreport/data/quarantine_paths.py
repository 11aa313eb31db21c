"""Where a quarantined file lies, told without the identifiers its path may hold.

Export tools name folders and files after what they hold: the patient's name or ID, the
accession, the study date, a Study, Series or SOP Instance UID. The raw path would carry
those into every artifact that keeps the quarantine. So a DICOM entry's path is its place
inside the study's dicom_dir (the entry's manifest line says which folder that is), each UID
in it replaced by its keyed pseudonym, as the series_uid column's is, and each name scrubbed
as report text is, with the study's own identifiers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import PurePath

from radreport.data.pseudonyms import DeidKeys
from radreport.data.text_scrub import scrub_report

STUDY_FOLDER = "."  # the entry is the study's dicom_dir itself

# Four or more dot-separated numbers: a DICOM UID (1.2.840.113619.2...), not a version or a
# slice thickness ("3.0", "1.25mm"); an extension after it (".dcm") stays.
_UID = re.compile(r"(?<!\d)(?<!\d\.)\d+(?:\.\d+){3,}(?!\d)")


def path_in_study(
    path: str,
    dicom_dir: str,
    keys: DeidKeys,
    identifiers: Iterable[str] = (),
    pseudonyms: Mapping[str, str] | None = None,
) -> str:
    """`path` relative to `dicom_dir`, each part de-identified; a path outside it (none
    should be) keeps only its de-identified name."""
    try:
        parts = PurePath(path).relative_to(dicom_dir).parts
    except ValueError:
        parts = (PurePath(path).name,)
    if not parts:
        return STUDY_FOLDER
    identifiers = tuple(identifiers)
    return "/".join(_deidentified_name(part, keys, identifiers, pseudonyms or {}) for part in parts)


def _deidentified_name(
    name: str, keys: DeidKeys, identifiers: tuple[str, ...], pseudonyms: Mapping[str, str]
) -> str:
    uids = {uid: str(keys.uid(uid)) for uid in _UID.findall(name)}
    # The scrub's word boundaries do not split at "_", which file names use for spaces
    # ("DOE_JOHN_0012345"); it parks the given pseudonyms, so the UIDs' are not scrubbed.
    spaced = name.replace("_", " ")
    scrubbed = scrub_report(spaced, identifiers, {**pseudonyms, **uids})
    if scrubbed == spaced:
        return name
    return scrubbed if " " in name else scrubbed.replace(" ", "_")
