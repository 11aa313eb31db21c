"""Config sections reject what they do not know; the demo key announces itself."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from radreport.data.pseudonyms import DEMO_DEID_KEY, resolve_deid_keys
from radreport.data.settings import (
    DataSettings,
    DeidSettings,
    DicomSettings,
    ManifestSettings,
    SyntheticSettings,
)


def test_unknown_keys_and_fields_are_errors():
    with pytest.raises(ValidationError):
        DicomSettings(workrs=2)
    with pytest.raises(ValidationError, match="unknown manifest fields"):
        ManifestSettings(columns={"findings": "report"})
    with pytest.raises(ValidationError):
        SyntheticSettings(min_slices=40, max_slices=32)
    assert DataSettings.model_validate({"dicom": {"depth": 16}}).dicom.depth == 16
    # Shifts beyond a century would move DICOM dates before the year 1.
    with pytest.raises(ValidationError, match="less than or equal to 36500"):
        DeidSettings(max_date_shift_days=5_000_000)


def test_key_comes_from_env_then_config_then_demo(monkeypatch, caplog):
    monkeypatch.delenv("RADREPORT_DEID_KEY", raising=False)
    with caplog.at_level(logging.WARNING):
        assert resolve_deid_keys(DeidSettings()).secret == DEMO_DEID_KEY
    assert "DEMO key" in caplog.text
    assert resolve_deid_keys(DeidSettings(key="from-config")).secret == "from-config"
    monkeypatch.setenv("RADREPORT_DEID_KEY", "from-env")
    assert resolve_deid_keys(DeidSettings(key="from-config")).secret == "from-env"


def test_a_manifest_path_under_home_is_expanded():
    settings = ManifestSettings.model_validate({"path": "~/data/manifest.csv"})
    assert settings.path == Path.home() / "data" / "manifest.csv"
