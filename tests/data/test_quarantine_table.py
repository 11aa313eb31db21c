"""The quarantine table stores whatever the file system and the decoders hand it."""

from __future__ import annotations

import os

from radreport.data.build import build_dataset
from radreport.data.quarantine import QuarantineEntry, Reason
from radreport.data.quarantine_table import quarantine_table


def test_a_decoders_report_over_several_lines_becomes_one_line():
    entry = QuarantineEntry(
        "/data/s1/a.dcm",
        Reason.PIXEL_DECODE_FAILED,
        "Unable to decode:\n  gdcm: no codec\n  pillow: cannot identify",
    )
    [row] = quarantine_table([entry]).to_dict("records")
    assert row["message"] == "Unable to decode: gdcm: no codec pillow: cannot identify"


def test_a_file_name_that_is_not_utf8_is_quarantined_with_escapes(tmp_path):
    folder = tmp_path / "s1"
    folder.mkdir()
    with open(os.fsencode(folder) + b"/\xff.dcm", "wb"):
        pass  # an empty file whose name is the byte 0xFF
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        f"study_id,patient_id,impression,report,dicom_dir\ns1,p1,Clear.,Lungs clear.,{folder}\n"
    )
    build = build_dataset(manifest, out_dir=tmp_path / "out")
    assert len(build.studies) == 1  # kept for the text path
    assert "empty_file" in set(build.quarantine["reason_code"])
    # The owner's table of raw paths writes the name with an escape.
    sources = (tmp_path / "out" / "quarantine_sources.csv").read_text()
    assert sources.count(f"{folder}/\\xff.dcm") == 1
