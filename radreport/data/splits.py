"""Patient-level train / val / test assignment by a keyed hash of the pseudonymous patient id.

All studies of a patient land in one split, so no patient's anatomy is seen in training and
then again in evaluation; the assignment of a patient never depends on which other
patients are in the data, so adding studies never moves an existing patient.
"""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd

from radreport.data.settings import SplitSettings

SPLITS = ("train", "val", "test")


def split_of(patient_pseudonym: str, settings: SplitSettings) -> str:
    digest = hmac.new(settings.salt.encode(), patient_pseudonym.encode(), hashlib.sha256).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    if position < settings.train:
        return "train"
    return "val" if position < settings.train + settings.val else "test"


def assign_splits(studies: pd.DataFrame, settings: SplitSettings) -> pd.Series:
    """The split of each row, from its `patient_id` column (already pseudonymous)."""
    by_patient = {p: split_of(p, settings) for p in studies["patient_id"].unique()}
    return studies["patient_id"].map(by_patient).rename("split")
