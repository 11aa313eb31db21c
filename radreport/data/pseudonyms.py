"""Keyed pseudonyms shared by images and reports: one secret, one HMAC per kind of value.

The same secret and input always give the same pseudonym, so a patient's DICOM headers and
manifest rows meet again after de-identification; without the secret a pseudonym cannot
be reversed or recomputed from a guessed identifier.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import unicodedata
from dataclasses import dataclass

from pydicom.uid import UID, generate_uid

from radreport.data.settings import DeidSettings
from radreport.visible_text import visible

logger = logging.getLogger(__name__)

DEMO_DEID_KEY = "radreport-DEMO-KEY-not-for-real-patient-data"

PSEUDONYM_HEX_CHARS = 15  # 60 bits, and with its prefix it fits a 16-character SH element


def deid_key_id(secret: str) -> str:
    """A non-reversible id of a key: runs made with different keys are told apart, and the
    key itself is never stored."""
    return hmac.new(secret.encode(), b"radreport-deid-key-id", hashlib.sha256).hexdigest()[:16]


DEMO_DEID_KEY_ID = deid_key_id(DEMO_DEID_KEY)


def canonical_patient_id(patient_id: str) -> str:
    """One patient's id however a spreadsheet or another system wrote it: surrounding
    spaces, letter case, the leading zeros of an all-digit id (Excel drops them), invisible
    characters (a zero-width space or a soft hyphen pasted from a web page) and composed or
    decomposed accents (NFC and NFD) do not tell two patients apart. Otherwise one
    patient's studies could land in two splits, and images whose header says 0001004 would
    not meet the manifest row that says 1004."""
    text = unicodedata.normalize("NFC", visible(patient_id)).strip().upper()
    if text.isascii() and text.isdigit():
        return text.lstrip("0") or "0"
    return text


class DeidKeyError(RuntimeError):
    """Real patient data was requested to be de-identified with no key configured."""


@dataclass(frozen=True)
class DeidKeys:
    secret: str
    max_date_shift_days: int = 730

    def _digest(self, kind: str, value: str) -> bytes:
        message = f"{kind}\x1f{value}".encode()  # unit separator: no kind/value ambiguity
        return hmac.new(self.secret.encode(), message, hashlib.sha256).digest()

    def pseudonym(self, kind: str, value: str) -> str:
        """`kind` is a short prefix (P patient, S study, A accession) kept in the pseudonym."""
        return kind + self._digest(kind, value).hex()[:PSEUDONYM_HEX_CHARS]

    def patient(self, patient_id: str) -> str:
        return self.pseudonym("P", canonical_patient_id(patient_id))

    def study(self, study_id: str) -> str:
        return self.pseudonym("S", study_id)

    def accession(self, accession_number: str) -> str:
        return self.pseudonym("A", accession_number)

    def uid(self, original: str) -> UID:
        return generate_uid(entropy_srcs=[self.secret, original])

    def date_shift(self, patient_id: str) -> dt.timedelta:
        """A fixed shift into the past per patient, so intervals between studies survive."""
        draw = int.from_bytes(
            self._digest("date-shift", canonical_patient_id(patient_id))[:8], "big"
        )
        return -dt.timedelta(days=1 + draw % self.max_date_shift_days)


def _configured_secret(settings: DeidSettings) -> str | None:
    return os.environ.get(settings.key_env) or (
        settings.key.get_secret_value() if settings.key else None
    )


def check_deid_key(settings: DeidSettings) -> None:
    """DeidKeyError where the settings refuse the demo key and no key is set: a run can say
    so before it starts."""
    if settings.require_key and not _configured_secret(settings):
        raise DeidKeyError(
            f"no de-identification key: set ${settings.key_env} or deid.key in the config"
        )


def resolve_deid_keys(settings: DeidSettings) -> DeidKeys:
    """Secret from the environment variable, else the config, else the demo key (warned)."""
    check_deid_key(settings)
    secret = _configured_secret(settings)
    if not secret:
        logger.warning(
            "De-identifying with the built-in DEMO key: pseudonyms are reproducible by anyone. "
            "Set $%s for real patient data.",
            settings.key_env,
        )
        secret = DEMO_DEID_KEY
    return DeidKeys(secret=secret, max_date_shift_days=settings.max_date_shift_days)
