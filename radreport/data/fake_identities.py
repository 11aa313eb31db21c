"""Invented identities for the demo studies, so de-identification has real-looking PHI to
remove. Every value is made up; none comes from a real person or institution."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

GIVEN_NAMES = (
    "Amelia", "Bartholomew", "Cordelia", "Desmond", "Evangeline", "Fitzgerald", "Gwendolyn",
    "Horatio", "Isadora", "Jasper", "Katarina", "Leopold", "Marisol", "Nikolai", "Ophelia",
    "Percival", "Rosalind", "Sebastian", "Theodora", "Ulysses", "Valentina", "Wilhelmina",
)  # fmt: skip
FAMILY_NAMES = (
    "Abernathy", "Blackwood", "Castellano", "Drummond", "Eastwick", "Fairbanks", "Galloway",
    "Hargreaves", "Ingleby", "Jarrow", "Kingsley", "Lockhart", "Montague", "Northcott",
    "Ormsby", "Pemberton", "Quennell", "Rutherford", "Sinclair", "Thistlewood", "Underhill",
    "Vandermeer", "Whitcombe", "Yardley",
)  # fmt: skip
TOWNS = ("Elmsford", "Harrowgate", "Kestrel Bay", "Marlow Vale", "Oakhurst", "Pinecrest")
STREETS = ("Juniper Lane", "Quarry Road", "Wexford Street", "Larkspur Avenue", "Fenwick Row")


@dataclass(frozen=True)
class FakePatient:
    patient_id: str
    given_name: str
    family_name: str
    birth_date: dt.date
    sex: str
    address: str

    @property
    def dicom_name(self) -> str:
        return f"{self.family_name}^{self.given_name}"


@dataclass(frozen=True)
class FakeSite:
    institution: str
    address: str
    station: str


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def fake_patient(rng: np.random.Generator) -> FakePatient:
    birth = dt.date(1935, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 55)))
    return FakePatient(
        patient_id=f"MRN{int(rng.integers(10**6, 10**7))}",
        given_name=_pick(rng, GIVEN_NAMES),
        family_name=_pick(rng, FAMILY_NAMES),
        birth_date=birth,
        sex=_pick(rng, ("F", "M")),
        address=f"{int(rng.integers(1, 999))} {_pick(rng, STREETS)}, {_pick(rng, TOWNS)}",
    )


def fake_physician(rng: np.random.Generator) -> tuple[str, str]:
    """(given, family) of a referring physician."""
    return _pick(rng, GIVEN_NAMES), _pick(rng, FAMILY_NAMES)


def fake_site(rng: np.random.Generator) -> FakeSite:
    town = _pick(rng, TOWNS)
    kind = _pick(rng, ("General Hospital", "Memorial Medical Center", "Infirmary"))
    return FakeSite(
        institution=f"{town} {kind}",
        address=f"{int(rng.integers(1, 999))} {_pick(rng, STREETS)}, {town}",
        station=f"CT{int(rng.integers(1, 9))}-{town.split()[0].upper()}",
    )
