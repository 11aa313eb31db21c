"""Patient-level splits: deterministic, stable as data grows, no patient in two splits."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from radreport.data.settings import SplitSettings
from radreport.data.splits import assign_splits, split_of


def test_no_patient_crosses_splits_and_fractions_hold():
    patients = [f"P{n:05d}" for n in range(5000)]
    studies = pd.DataFrame({"patient_id": patients * 3})  # three studies each
    splits = assign_splits(studies, SplitSettings())
    assert (studies.assign(split=splits).groupby("patient_id")["split"].nunique() == 1).all()
    shares = splits[:5000].value_counts(normalize=True)
    assert abs(shares["train"] - 0.8) < 0.03 and abs(shares["val"] - 0.1) < 0.02


def test_assignment_is_stable_and_keyed():
    settings = SplitSettings()
    first = {p: split_of(p, settings) for p in (f"P{n}" for n in range(200))}
    grown = assign_splits(pd.DataFrame({"patient_id": [*first, "Pnew"]}), settings)
    assert list(grown[:200]) == list(first.values())  # adding a patient moves nobody
    other = SplitSettings(salt="another-salt")
    assert [split_of(p, other) for p in first] != list(first.values())


def test_fractions_must_sum_to_one():
    with pytest.raises(ValidationError):
        SplitSettings(train=0.8, val=0.3, test=0.1)
