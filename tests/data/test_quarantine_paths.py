"""A quarantined file's path names no patient: it is its de-identified place in the study's
folder, found again through the manifest line."""

from __future__ import annotations

import shutil

import pandas as pd
from pydicom import dcmread
from pydicom.data import get_testdata_file

from radreport.data.build import build_dataset
from radreport.data.pseudonyms import DeidKeys
from radreport.data.quarantine_paths import path_in_study

KEYS = DeidKeys("test-key")
UID = "1.2.840.113619.2.55.3.604688119.968.1317046012.161"


def test_uids_become_their_pseudonyms_and_the_extension_stays():
    path = f"/data/study/{UID}/CT.{UID}.1.dcm"
    assert path_in_study(path, "/data/study", KEYS) == (
        f"{KEYS.uid(UID)}/CT.{KEYS.uid(UID + '.1')}.dcm"
    )


def test_names_of_the_patient_and_raw_ids_are_scrubbed_from_folder_and_file_names():
    located = path_in_study(
        "/exports/s1/DOE_JOHN_0012345/Doe John 2023-04-15.dcm",
        "/exports/s1",
        KEYS,
        identifiers={"DOE^JOHN"},
        pseudonyms={"0012345": "P1234"},
    )
    assert located == "[NAME]_P1234/[NAME] [DATE].dcm"


def test_ordinary_names_numbers_and_the_study_folder_itself_stay_as_they_are():
    names = ["IM-0001-0003.dcm", "series_3.0mm", "1.25", "SE2/IM12"]
    for name in names:
        assert path_in_study(f"/d/s1/{name}", "/d/s1", KEYS, {"DOE^JOHN"}) == name
    assert path_in_study("/d/s1", "/d/s1", KEYS) == "."


def test_the_quarantine_artifact_holds_no_path_that_names_the_patient(tmp_path):
    """CT_small's patient is CompressedSamples^CT1: an export named its folder after them and
    the file after its SOP Instance UID. One slice is too few, so the file is quarantined."""
    source = get_testdata_file("CT_small.dcm", download=False)
    header = dcmread(source)
    study = tmp_path / "CompressedSamples^CT1 study"
    series = study / "CompressedSamples_CT1"
    series.mkdir(parents=True)
    shutil.copy(source, series / f"{header.SOPInstanceUID}.dcm")
    (series / "CompressedSamples CT1 notes.txt").write_text("not an image")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "study_id,patient_id,impression,report,dicom_dir\n"
        "text,p0,Clear.,Lungs clear.,\n"
        f"s1,1CT1,Clear.,Lungs clear.,{study}\n"
    )
    build = build_dataset(manifest, out_dir=tmp_path / "out")
    quarantine = build.quarantine.set_index("reason_code")
    assert quarantine.loc["not_dicom_text_file", "path"] == "[NAME]/[NAME] notes.txt"
    too_few = quarantine.loc["too_few_slices", "path"]
    assert too_few.startswith("[NAME]/") and too_few.endswith(".dcm")
    assert header.SOPInstanceUID not in too_few
    assert set(quarantine["manifest_line"]) == {3}
    written = pd.read_csv(tmp_path / "out" / "quarantine.csv", dtype=str).to_csv()
    for identifier in ("CompressedSamples", "CT1", str(tmp_path), header.SOPInstanceUID):
        assert identifier not in written
