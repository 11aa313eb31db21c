"""The bring-your-own-data manifest: bad rows are rejected with reasons, bad files fail."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from radreport.data.errors import ManifestError
from radreport.data.manifest import load_manifest
from radreport.data.quarantine import Reason

IU_XRAY = Path(__file__).resolve().parents[3] / "shared" / "data" / "iu_xray" / "train.csv"


def _row(study_id: str, **overrides: str) -> dict[str, str]:
    row = {
        "study_id": study_id,
        "patient_id": f"patient-{study_id}",
        "impression": "No acute abnormality.",
        "report": "The lungs are clear. No pleural effusion.",
        "dicom_dir": "",
    }
    return row | overrides


def _write(tmp_path: Path, rows: list[dict], name: str = "manifest.csv") -> Path:
    path = tmp_path / name
    table = pd.DataFrame(rows)
    if name.endswith(".jsonl"):
        table.to_json(path, orient="records", lines=True)
    else:
        table.to_csv(path, index=False)
    return path


def test_each_bad_row_is_rejected_with_its_reason(tmp_path):
    (tmp_path / "images" / "a").mkdir(parents=True)
    rows = [
        _row("good", dicom_dir="images/a", labels=json.dumps({"nodule": True})),
        _row("text-only"),
        _row(""),
        _row("twice"),
        _row("twice", report="A different report."),
        _row("no-impression", impression="  "),
        _row("no-report", report=""),
        _row("missing-folder", dicom_dir="images/nowhere"),
        _row("bad-labels", labels="{not json"),
    ]
    manifest = load_manifest(_write(tmp_path, rows))
    assert list(manifest.studies["study_id"]) == ["good", "text-only"]
    assert manifest.studies["dicom_dir"][0] == str(tmp_path / "images" / "a")
    reasons = {(e.study_id, e.reason) for e in manifest.rejected}
    assert reasons == {
        ("", Reason.MANIFEST_MISSING_ID),
        ("twice", Reason.MANIFEST_DUPLICATE_STUDY_ID),
        ("no-impression", Reason.MANIFEST_EMPTY_IMPRESSION),
        ("no-report", Reason.MANIFEST_EMPTY_REPORT),
        ("missing-folder", Reason.MANIFEST_DICOM_DIR_NOT_FOUND),
        ("bad-labels", Reason.MANIFEST_INVALID_LABELS),
    }
    assert len(manifest.rejected) == 7  # both rows of the duplicate
    assert manifest.rows_in == len(rows)
    assert list(manifest.quarantine.columns) == [
        "path", "study_id", "series_uid", "reason_code", "message"
    ]  # fmt: skip


def test_jsonl_loads_like_csv_and_absolute_dirs_stay(tmp_path):
    folder = tmp_path / "absolute"
    folder.mkdir()
    path = _write(tmp_path, [_row("a", dicom_dir=str(folder)), _row("b")], "m.jsonl")
    studies = load_manifest(path).studies
    assert list(studies["study_id"]) == ["a", "b"] and studies["dicom_dir"][0] == str(folder)


def test_a_missing_column_fails_the_file_naming_it(tmp_path):
    rows = [{k: v for k, v in _row("a").items() if k != "report"}]
    with pytest.raises(ManifestError, match="no column 'report'"):
        load_manifest(_write(tmp_path, rows))


def test_nothing_valid_is_one_clear_line(tmp_path):
    with pytest.raises(ManifestError) as raised:
        load_manifest(_write(tmp_path, [_row("x", report=""), _row("y", impression="")]))
    message = str(raised.value)
    assert "\n" not in message and "none of its 2 rows" in message
    assert "manifest_empty_report 1" in message


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(ManifestError, match="use .csv or .jsonl"):
        load_manifest(_write(tmp_path, [_row("a")], "manifest.xlsx"))
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest(tmp_path / "nowhere.csv")


@pytest.mark.skipif(not IU_XRAY.is_file(), reason="IU X-Ray reports live in ../shared")
def test_iu_xray_loads_through_a_column_mapping():
    manifest = load_manifest(IU_XRAY, {"report": "findings", "patient_id": "study_id"})
    assert manifest.rows_in == 2069
    assert len(manifest.studies) == 2063  # six rows have an empty impression
    assert {e.reason for e in manifest.rejected} == {Reason.MANIFEST_EMPTY_IMPRESSION}
    assert (manifest.studies["patient_id"] == manifest.studies["study_id"]).all()
    assert (manifest.studies["dicom_dir"] == "").all()
