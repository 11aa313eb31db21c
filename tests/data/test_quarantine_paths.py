"""A quarantined file's path names no patient: each name in it is a keyed pseudonym, and
the raw path is only in the owner's quarantine_sources.csv."""

from __future__ import annotations

import shutil

import pandas as pd
from pydicom import dcmread
from pydicom.data import get_testdata_file

from radreport.data.build import build_dataset
from radreport.data.pseudonyms import DeidKeys
from radreport.data.quarantine_paths import path_in_study

KEYS = DeidKeys("test-key")


def test_every_name_becomes_a_pseudonym_and_the_same_name_the_same_one():
    located = path_in_study("/exports/s1/DOE_JOHN/jdoe 2019-07-23.dcm", "/exports/s1", KEYS)
    folder, name = located.split("/")
    assert folder == KEYS.pseudonym("F", "DOE_JOHN") and name.startswith("F")
    assert "doe" not in located.lower() and "2019" not in located
    again = path_in_study("/exports/s2/DOE_JOHN/other.dcm", "/exports/s2", KEYS)
    assert again.split("/")[0] == folder  # files of one folder name still group
    assert path_in_study("/d/s1", "/d/s1", KEYS) == "."


def test_the_quarantine_artifact_holds_no_name_and_the_owner_finds_each_file(tmp_path):
    """CT_small's patient is CompressedSamples^CT1: an export named its folder after them and
    the file after its SOP Instance UID. One slice is too few, so the file is quarantined;
    so is a text file named after the patient."""
    source = get_testdata_file("CT_small.dcm", download=False)
    header = dcmread(source)
    study = tmp_path / "CompressedSamples^CT1 study"
    series = study / "compressedsamples_ct1"
    series.mkdir(parents=True)
    slice_file = series / f"{header.SOPInstanceUID}.dcm"
    shutil.copy(source, slice_file)
    notes = series / "CT1 notes.txt"
    notes.write_text("not an image")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "study_id,patient_id,impression,report,dicom_dir\n"
        "text,p0,Clear.,Lungs clear.,\n"
        f"s1,1CT1,Clear.,Lungs clear.,{study}\n"
    )
    out = tmp_path / "out"
    build = build_dataset(manifest, out_dir=out)
    assert set(build.quarantine["manifest_line"]) == {3}
    written = (out / "quarantine.csv").read_text()
    for identifier in ("compressedsamples", "ct1", str(tmp_path).lower(), header.SOPInstanceUID):
        assert identifier not in written.lower()
    sources = pd.read_csv(out / "quarantine_sources.csv", dtype={"manifest_line": int})
    found = dict(zip(sources["source_path"], sources["path"], strict=True))
    assert set(found) == {str(slice_file), str(notes), str(study)}  # and its study folder
    assert set(found.values()) == set(build.quarantine["path"])
