"""Bring-your-own-data end to end: demo studies in, pseudonymous dataset out, no PHI left."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file

from radreport.data.build import STUDY_COLUMNS, build_dataset
from radreport.data.errors import NoUsableStudiesError
from radreport.data.pseudonyms import DEMO_DEID_KEY, DeidKeys
from radreport.data.quarantine import Reason
from radreport.data.settings import DataSettings, DeidSettings, DicomSettings
from radreport.data.study_volumes import StudyVolumes
from radreport.data.synthetic import generate_demo_studies
from radreport.dicom.deidentify import identifying_values

SMALL = DicomSettings(depth=8, height=32, width=32, min_slices=5, workers=2)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    return generate_demo_studies(out, n_studies=6, slices=(10, 12), size=64, seed=5, workers=1)


def _header_phi(manifest: Path) -> set[str]:
    """Every identifying value the demo headers hold, name parts and instance UIDs included."""
    values = set()
    for path in (manifest.parent / "dicom").rglob("*.dcm"):
        header = pydicom.dcmread(path, stop_before_pixels=True)
        values |= identifying_values(header)
        values |= {part for value in identifying_values(header) for part in value.split("^")}
        values |= {header.StudyInstanceUID, header.SeriesInstanceUID, header.SOPInstanceUID}
        values |= {header.StudyID, header.FrameOfReferenceUID}
        values |= {str(element.value) for element in header if element.tag.is_private}
    return {value for value in values if len(value) >= 3}


def test_no_header_phi_reaches_any_artifact_or_log(demo, tmp_path, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.DEBUG):
        result = build_dataset(demo, DataSettings(dicom=SMALL), out)
    assert result.summary["studies_accepted"] == result.summary["studies_with_images"] == 6
    written = [(out / name).read_text() for name in ("quarantine.csv", "summary.json")]
    table = pd.read_parquet(out / "studies.parquet")
    written.append(table.astype(str).to_csv())
    written.append(" ".join(StudyVolumes.load(out / "volumes.npz").study_ids))
    written.append(caplog.text)
    everything = "\n".join(written)
    leaked = sorted(value for value in _header_phi(demo) if value in everything)
    assert leaked == []
    manifest = pd.read_csv(demo, keep_default_na=False)
    raw_ids = set(manifest["study_id"]) | set(manifest["patient_id"])
    assert [value for value in raw_ids if value in everything] == []  # paths included


def test_one_dicom_study_in_two_rows_folders_is_rejected_in_both(demo, tmp_path):
    """A study exported twice, under two ids: which row owns it cannot be told, and the two
    copies could land in two splits."""
    manifest = pd.read_csv(demo, keep_default_na=False)
    first = manifest.iloc[0]
    copy = tmp_path / "export_again"
    shutil.copytree(demo.parent / first["dicom_dir"], copy)
    again = {**first.to_dict(), "study_id": "again", "dicom_dir": copy}
    rows = pd.concat([manifest, pd.DataFrame([again])], ignore_index=True)
    rows["dicom_dir"] = [demo.parent / d if d and d != copy else d for d in rows["dicom_dir"]]
    result = build_dataset(_manifest(tmp_path, rows.to_dict("records")), DataSettings(dicom=SMALL))
    assert result.summary["studies_accepted"] == len(manifest) - 1
    rejected = result.quarantine[result.quarantine["reason_code"] == "study_in_two_rows"]
    first_line, last_line = sorted(rejected["manifest_line"])
    assert list(rejected["message"]) == [
        f"line {first_line}: its images are the same DICOM study as those of line {last_line}",
        f"line {last_line}: its images are the same DICOM study as those of line {first_line}",
    ]


def test_dataset_tables_and_volumes_line_up(demo, tmp_path):
    result = build_dataset(demo, DataSettings(dicom=SMALL.model_copy(update={"workers": 1})))
    studies = result.studies
    assert tuple(studies.columns) == STUDY_COLUMNS
    assert set(studies["split"]) <= {"train", "val", "test"}
    assert (studies.groupby("patient_id")["split"].nunique() == 1).all()
    assert result.volumes.array.shape == (6, 3, 8, 32, 32)
    assert list(result.volumes.study_ids) == list(studies["study_id"])
    assert set(result.quarantine["reason_code"]) <= {Reason.LOCALIZER.value}
    labels = [json.loads(text) for text in studies["labels"]]
    assert all(set(label) == {"nodule", "pleural_effusion", "consolidation",
                              "pneumothorax", "cardiomegaly"} for label in labels)  # fmt: skip


def _broken_study(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "empty.dcm").write_bytes(b"")
    (folder / "picture.dcm").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (folder / "notes.dcm").write_text("not an image")
    shutil.copy(get_testdata_file("MR_truncated.dcm", download=False), folder / "mr.dcm")
    return folder


def _manifest(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


ROW = {"patient_id": "p1", "impression": "Normal.", "report": "No effusion."}


def test_a_folder_of_broken_files_is_quarantined_and_the_run_goes_on(tmp_path):
    _broken_study(tmp_path / "broken")
    rows = [{"study_id": "s1", **ROW, "dicom_dir": "broken"}, {"study_id": "s2", **ROW}]
    out = tmp_path / "out"
    result = build_dataset(_manifest(tmp_path, rows), DataSettings(dicom=SMALL), out)
    assert result.summary["studies_accepted"] == 2
    assert result.summary["studies_with_images"] == 0
    assert result.summary["quarantined_by_reason"] == {
        "empty_file": 1,
        "no_usable_series": 1,
        "not_dicom_image_file": 1,
        "not_dicom_text_file": 1,
        "pixel_data_truncated": 1,
    }
    quarantine = pd.read_csv(out / "quarantine.csv", keep_default_na=False)
    assert list(quarantine.columns) == [
        "manifest_line",
        "path",
        "study_id",
        "series_uid",
        "reason_code",
        "message",
    ]
    # The owner finds each file again from its manifest line and pseudonymous path.
    sources = pd.read_csv(out / "quarantine_sources.csv", keep_default_na=False)
    raw = dict(zip(sources["path"], sources["source_path"], strict=True))
    pairs = zip(quarantine["reason_code"], quarantine["path"], strict=True)
    located = {code: raw[path] for code, path in pairs}
    broken = tmp_path / "broken"
    assert located == {
        "empty_file": str(broken / "empty.dcm"),
        "not_dicom_image_file": str(broken / "picture.dcm"),
        "not_dicom_text_file": str(broken / "notes.dcm"),
        "pixel_data_truncated": str(broken / "mr.dcm"),
        "no_usable_series": str(broken),
    }
    assert set(quarantine["manifest_line"]) == set(sources["manifest_line"]) == {2}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["studies_in"] == 2 and summary["quarantined"] == 5


def test_no_usable_study_at_all_is_one_clear_error(tmp_path):
    _broken_study(tmp_path / "broken")
    rows = [{"study_id": "s1", **ROW, "dicom_dir": "broken"}]
    dicom = SMALL.model_copy(update={"when_no_usable_series": "reject_study"})
    with pytest.raises(NoUsableStudiesError) as raised:
        build_dataset(_manifest(tmp_path, rows), DataSettings(dicom=dicom))
    assert "\n" not in str(raised.value) and "no usable study" in str(raised.value)


def test_the_demo_key_is_refused_when_a_real_key_is_required(tmp_path, monkeypatch):
    monkeypatch.delenv("RADREPORT_DEID_KEY", raising=False)
    rows = [{"study_id": "s1", **ROW}]
    settings = DataSettings(deid=DeidSettings(require_key=True))
    with pytest.raises(RuntimeError, match="RADREPORT_DEID_KEY"):
        build_dataset(_manifest(tmp_path, rows), settings)
    monkeypatch.setenv("RADREPORT_DEID_KEY", "a-real-secret")
    keyed = build_dataset(_manifest(tmp_path, rows), settings)
    assert keyed.studies["study_id"][0].startswith("S")


def test_one_patient_id_written_two_ways_is_one_patient(tmp_path):
    # Excel drops an all-digit id's leading zeros, and ids get typed in another case: the
    # studies stay one patient's (one pseudonym, one split), and the header's 98890234
    # meets the manifest's 0098890234.
    series = Path(get_testdata_file("dicomdirtests/98892001/CT5N/2062", download=False)).parent
    shutil.copytree(series, tmp_path / "ct5n")
    rows = [
        {**ROW, "study_id": "s1", "patient_id": "0098890234", "dicom_dir": "ct5n"},
        {**ROW, "study_id": "s2", "patient_id": "98890234"},
        {**ROW, "study_id": "s3", "patient_id": "mrn107"},
        {**ROW, "study_id": "s4", "patient_id": " MRN107"},
        {**ROW, "study_id": "s5", "patient_id": "MRN0107"},  # not all digits: another id
        # A zero-width space pasted in, and an accent composed or decomposed.
        {**ROW, "study_id": "s6", "patient_id": "P\u200b100"},
        {**ROW, "study_id": "s7", "patient_id": "P100"},
        {**ROW, "study_id": "s8", "patient_id": "M\u00fcller-1961"},
        {**ROW, "study_id": "s9", "patient_id": "Mu\u0308ller-1961"},
    ]
    result = build_dataset(_manifest(tmp_path, rows), DataSettings(dicom=SMALL), tmp_path / "o")
    assert result.summary["studies_with_images"] == 1
    assert "patient_id_mismatch" not in result.summary["quarantined_by_reason"]
    keys = DeidKeys(DEMO_DEID_KEY)
    studies = result.studies.set_index("study_id").loc[[keys.study(f"s{i}") for i in range(1, 10)]]
    patients, splits = studies["patient_id"].tolist(), studies["split"].tolist()
    assert patients[0] == patients[1] and patients[2] == patients[3] != patients[4]
    assert patients[5] == patients[6] and patients[7] == patients[8]
    for first, second in ((0, 1), (2, 3), (5, 6), (7, 8)):
        assert splits[first] == splits[second]
