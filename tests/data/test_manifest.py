"""The bring-your-own-data manifest: bad lines and rows are rejected with reasons, files that
cannot be read fail with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from radreport.data.build import build_dataset
from radreport.data.errors import ManifestError, NoUsableStudiesError
from radreport.data.manifest import load_manifest
from radreport.data.quarantine import Reason
from radreport.data.run_inputs import fingerprint_inputs
from tests.another_user import locked_folder, raised_as_another_user

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
    assert list(manifest.studies["manifest_line"]) == [2, 3]
    reasons = {(e.study_id, e.reason, e.manifest_line) for e in manifest.rejected}
    assert reasons == {
        ("", Reason.MANIFEST_MISSING_ID, 4),
        ("twice", Reason.MANIFEST_DUPLICATE_STUDY_ID, 5),
        ("twice", Reason.MANIFEST_DUPLICATE_STUDY_ID, 6),
        ("no-impression", Reason.MANIFEST_EMPTY_IMPRESSION, 7),
        ("no-report", Reason.MANIFEST_EMPTY_REPORT, 8),
        ("missing-folder", Reason.MANIFEST_DICOM_DIR_NOT_FOUND, 9),
        ("bad-labels", Reason.MANIFEST_INVALID_LABELS, 10),
    }
    assert len(manifest.rejected) == 7  # both rows of the duplicate
    assert manifest.rows_in == len(rows)
    assert list(manifest.quarantine.columns) == [
        "manifest_line", "path", "study_id", "series_uid", "reason_code", "message"
    ]  # fmt: skip


def test_rows_naming_one_folder_are_rejected_all_since_its_images_have_no_one_owner(tmp_path):
    folder = tmp_path / "images" / "a"
    folder.mkdir(parents=True)
    (tmp_path / "linked").symlink_to(folder, target_is_directory=True)
    rows = [
        _row("a", dicom_dir="images/a"),
        _row("b", dicom_dir="images/b-is-elsewhere"),
        _row("c", dicom_dir=str(folder)),
        _row("d", dicom_dir="linked"),
    ]
    (tmp_path / "images" / "b-is-elsewhere").mkdir()
    manifest = load_manifest(_write(tmp_path, rows))
    assert list(manifest.studies["study_id"]) == ["b"]
    assert [(e.study_id, e.reason, e.message) for e in manifest.rejected] == [
        ("a", Reason.MANIFEST_SHARED_DICOM_DIR, "line 2: the same dicom_dir as lines 4, 5"),
        ("c", Reason.MANIFEST_SHARED_DICOM_DIR, "line 4: the same dicom_dir as lines 2, 5"),
        ("d", Reason.MANIFEST_SHARED_DICOM_DIR, "line 5: the same dicom_dir as lines 2, 4"),
    ]


def test_jsonl_loads_like_csv_and_absolute_dirs_stay(tmp_path):
    folder = tmp_path / "absolute"
    folder.mkdir()
    path = _write(tmp_path, [_row("a", dicom_dir=str(folder)), _row("b")], "m.jsonl")
    studies = load_manifest(path).studies
    assert list(studies["study_id"]) == ["a", "b"] and studies["dicom_dir"][0] == str(folder)


def test_json_values_that_are_not_strings_are_read_as_json_text(tmp_path):
    rows = [
        _row("a", labels={"effusion": True, "nodule": False}),  # labels as a JSON object
        _row("b", labels='{"effusion": false}'),  # as a string of JSON, like a CSV cell
        {**_row("c"), "study_id": 7, "labels": None},  # a number; null is empty
    ]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    manifest = load_manifest(path)
    assert manifest.rejected == []
    assert manifest.studies["study_id"].tolist() == ["a", "b", "7"]
    assert [json.loads(text) if text else None for text in manifest.studies["labels"]] == [
        {"effusion": True, "nodule": False},
        {"effusion": False},
        None,
    ]


def test_a_missing_column_fails_the_file_naming_it(tmp_path):
    rows = [{k: v for k, v in _row("a").items() if k != "report"}]
    with pytest.raises(ManifestError, match="no column 'report'"):
        load_manifest(_write(tmp_path, rows))


def test_nothing_valid_is_one_clear_line(tmp_path):
    with pytest.raises(NoUsableStudiesError) as raised:
        load_manifest(_write(tmp_path, [_row("x", report=""), _row("y", impression="")]))
    message = str(raised.value)
    assert "\n" not in message and "none of its 2 rows" in message
    assert "manifest_empty_report 1" in message


JSON_ROW_1 = json.dumps(_row("a"))
JSON_ROW_4 = json.dumps(_row("b"))


def _rejections(manifest) -> list[tuple[str, str, str]]:
    return [(entry.reason.value, entry.study_id, entry.message) for entry in manifest.rejected]


def test_a_malformed_json_line_is_quarantined_and_the_other_rows_load(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(f'{JSON_ROW_1}\n{{"study_id": "S9", broken\n\n{JSON_ROW_4}\n')
    manifest = load_manifest(path)
    assert list(manifest.studies["study_id"]) == ["a", "b"]
    assert manifest.rows_in == 3  # the blank line 3 is no row
    problem = "not valid JSON (Expecting property name enclosed in double quotes at column 20)"
    assert _rejections(manifest) == [("manifest_bad_line", "", f"line 2: {problem}")]
    assert manifest.rejected[0].path == str(path)


def test_json_lines_that_are_not_objects_are_quarantined_one_by_one(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(f'{JSON_ROW_1}\n[1,2,3]\n"str"\n{JSON_ROW_4}\n')
    manifest = load_manifest(path)
    assert list(manifest.studies["study_id"]) == ["a", "b"] and manifest.rows_in == 4
    assert _rejections(manifest) == [
        ("manifest_bad_line", "", "line 2: not a JSON object"),
        ("manifest_bad_line", "", "line 3: not a JSON object"),
    ]


def test_a_csv_row_with_too_many_fields_is_quarantined_and_row_lines_stay_true(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(
        "study_id,patient_id,impression,report,dicom_dir\n"
        'a,p1,Normal.,"Two-line\nreport.",\n'  # lines 2-3: a quoted field spans a line
        "x,y,z,w,v,extra,more\n"
        "b,p2,Normal.,Clear.\n"  # one field short: dicom_dir is empty, as pandas reads it
        "c,p3,,Clear.,\n"
    )
    manifest = load_manifest(path)
    assert list(manifest.studies["study_id"]) == ["a", "b"]
    assert manifest.studies["report"][0] == "Two-line\nreport." and manifest.rows_in == 4
    assert manifest.studies["dicom_dir"][1] == ""
    assert _rejections(manifest) == [
        ("manifest_bad_line", "", "line 4: 7 fields, the header has 5"),
        ("manifest_empty_impression", "c", "line 6: empty impression"),
    ]


def test_a_quote_never_closed_is_named_on_its_line_not_as_a_missing_id(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(
        "study_id,patient_id,impression,report\n"
        'a,p1,Normal.,"Two-line\nreport."\n'  # a quote that closes on the next line
        'b,p2,"Effusion.,Small effusion.\n'  # line 4: the quote never closes
        "c,p3,Normal.,Clear.\n"
    )
    manifest = load_manifest(path)
    assert list(manifest.studies["study_id"]) == ["a"]
    assert _rejections(manifest) == [
        (
            "manifest_bad_line",
            "",
            "line 4: a quote opened in this row is never closed, so the rest of the file is "
            "one field",
        )
    ]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        (
            "m.csv",
            "study_id,patient_id,impression,report\ns1,p1,Épanchement.,Clear.\n".encode("latin-1"),
            ": line 2: not UTF-8 text (byte 0xc9 at position 44); save it as UTF-8",
        ),
        ("m.csv", b"", ": empty file"),
        ("m.jsonl", b"\n  \n", ": empty file"),
        ("m.csv", b"study_id,patient_id,impression,report\n", ": no rows, only a header"),
        (
            "m.csv",
            b"study_id,patient_id,report,impression,report\ns,p,i,r,r\n",
            ": column 'report' appears twice in the header ('report' and 'report')",
        ),
        (
            "m.csv",
            b"study_id,patient_id,impression,Report,report \ns,p,i,r,r\n",
            ": column 'report' appears twice in the header ('Report' and 'report ')",
        ),
    ],
)
def test_a_file_that_cannot_be_read_fails_in_one_line(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ManifestError) as raised:
        load_manifest(path)
    assert str(raised.value) == f"manifest {path}{problem}"


def test_headers_match_without_regard_to_case_or_surrounding_spaces(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(" Study_ID ,Patient_ID,IMPRESSION,Findings\ns1,p1,Normal.,Clear.\n")
    studies = load_manifest(path, {"report": "findings"}).studies
    assert studies[["study_id", "patient_id", "impression", "report"]].values.tolist() == [
        ["s1", "p1", "Normal.", "Clear."]
    ]


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b"\xef\xbb\xbfstudy_id,patient_id,impression,report\ns1,p1,Normal.,Clear.\n")
    assert list(load_manifest(path).studies["study_id"]) == ["s1"]


def test_a_directory_is_not_a_manifest(tmp_path):
    with pytest.raises(ManifestError) as raised:
        load_manifest(tmp_path)
    assert str(raised.value) == f"manifest {tmp_path} is a directory, not a manifest file"


def test_only_bad_lines_is_nothing_usable_counted_by_reason(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text("[1]\nnot json\n")
    with pytest.raises(NoUsableStudiesError) as raised:
        load_manifest(path)
    assert str(raised.value) == (
        f"manifest {path}: none of its 2 rows is usable (manifest_bad_line 2)"
    )


def test_a_bad_line_reaches_the_quarantine_artifact_and_the_fingerprint_reads_past_it(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(f"{JSON_ROW_1}\n[1,2,3]\n{JSON_ROW_4}\n")
    fingerprint = fingerprint_inputs(path, {})
    build = build_dataset(path, out_dir=tmp_path / "out")
    bad = build.quarantine[build.quarantine["reason_code"] == "manifest_bad_line"]
    assert bad.to_dict("records") == [
        {
            "manifest_line": 2,
            "path": str(path),
            "study_id": "",
            "series_uid": "",
            "reason_code": "manifest_bad_line",
            "message": "line 2: not a JSON object",
        }
    ]
    assert build.summary["studies_in"] == 3 and build.summary["studies_accepted"] == 2
    assert build.summary["quarantined_by_reason"] == {"manifest_bad_line": 1}
    written = pd.read_csv(tmp_path / "out" / "quarantine.csv", keep_default_na=False)
    assert written["message"].tolist() == ["line 2: not a JSON object"]
    path.write_text(f"{JSON_ROW_1}\n[1,2]\n{JSON_ROW_4}\n")
    assert fingerprint_inputs(path, {}) != fingerprint  # the rejected line's bytes count too


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


def test_excels_separator_line_is_passed_over_and_lines_keep_their_numbers(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(
        b"\xef\xbb\xbfsep=,\r\nstudy_id,patient_id,impression,report\r\n"
        b"a,p1,Normal.,Clear.\r\nb,p2,,Clear.\r\n"
    )
    manifest = load_manifest(path)
    assert list(manifest.studies["study_id"]) == ["a"]
    assert list(manifest.studies["manifest_line"]) == [3]
    assert _rejections(manifest) == [("manifest_empty_impression", "b", "line 4: empty impression")]


def test_a_missing_value_marker_alone_is_an_empty_impression_or_report(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(
        "study_id,patient_id,impression,report\n"
        "a,p1,NA,Clear.\nb,p2,\\N,Clear.\nc,p3,Normal.,NULL\nd,p4,No NA.,Clear.\n"
        # Nothing visible: a zero-width space and a soft hyphen pasted from a web page.
        "e,p5,Normal.,\u200b\u00ad \n"
    )
    manifest = load_manifest(path)
    assert list(manifest.studies["study_id"]) == ["d"]
    assert [reason for reason, _, _ in _rejections(manifest)] == [
        "manifest_empty_impression",
        "manifest_empty_impression",
        "manifest_empty_report",
        "manifest_empty_report",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b'study_id,patient_id,impression,report\na,p1,"He said \\"no\\" today.",Clear.\n',
            'line 2: a quote escaped with a backslash \\(\\\\"\\), as database dumps write it',
        ),
        (b"study_id,patient_id,impression,report\na,p1,No\x00ne.,Clear.\n", "line 2: a NUL"),
        (
            b'study_id,patient_id,impression,report\na,p1,"No "quoted" effusion.",Clear.\n',
            'line 2: a quoted cell goes on after its closing quote .*doubled \\(""\\)',
        ),
        (
            b"sep=;\nstudy_id;patient_id;impression;report\na;p1;Normal.;Clear.\n",
            "line 1: the file says its fields are separated by semicolons",
        ),
        (
            b"study_id\tpatient_id\timpression\treport\na\tp1\tNormal.\tClear.\n",
            "has no column 'study_id' \\(field study_id\\); the header is one column separated "
            "by tabs",
        ),
        (
            b"study_id,patient_id,impresion,report\na,p1,Normal.,Clear.\n",
            "has no column 'impression' \\(field impression\\); the header has 'study_id', "
            "'patient_id', 'impresion', 'report'",
        ),
    ],
)
def test_text_read_wrong_without_a_word_is_refused_with_its_line(tmp_path, content, message):
    path = tmp_path / "m.csv"
    path.write_bytes(content)
    with pytest.raises(ManifestError, match=message):
        load_manifest(path)


def test_invisible_characters_in_a_header_do_not_hide_its_column(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("study_id,patient_id,\u200bimpression,report\na,p1,Normal.,Clear.\n")
    assert list(load_manifest(path).studies["impression"]) == ["Normal."]


def test_a_row_split_by_a_line_break_in_an_unquoted_cell_is_one_bad_row(tmp_path):
    path = tmp_path / "m.csv"
    # A lone carriage return (old Mac line ends) and a line feed inside unquoted reports.
    path.write_bytes(
        b"study_id,patient_id,impression,report,dicom_dir\n"
        b"a,p1,No effusion,Heart normal\rlungs clear,\n"  # lines 2-3
        b"b,p2,Normal,Clear\n"  # a row whose empty dicom_dir was left out: still a row
        b"c,p3,Effusion,Small\nright\neffusion,\n"  # lines 5-7
        b"d,p4,Normal,Clear,\n"
    )
    manifest = load_manifest(path)
    assert list(manifest.studies["study_id"]) == ["b", "d"]
    assert manifest.rows_in == 2 + 2  # the two split rows count once each
    split = "are one row split by a line break in an unquoted cell (quote the cell)"
    assert _rejections(manifest) == [
        ("manifest_bad_line", "", f"line 2: lines 2-3 {split}"),
        ("manifest_bad_line", "", f"line 5: lines 5-7 {split}"),
    ]


def test_a_json_line_with_a_nul_or_an_unpaired_surrogate_is_quarantined_alone(tmp_path):
    path = tmp_path / "m.jsonl"
    surrogate = JSON_ROW_1.replace('"a"', '"x\\ud800"', 1)
    nul = JSON_ROW_1.replace('"a"', '"y\\u0000"', 1)
    path.write_text(f"{surrogate}\n{nul}\n{JSON_ROW_4}\n")
    manifest = load_manifest(path)
    assert list(manifest.studies["study_id"]) == ["b"]
    assert _rejections(manifest) == [
        (
            "manifest_bad_line",
            "",
            "line 1: an unpaired surrogate escape (\\ud800 to \\udfff) in a value",
        ),
        ("manifest_bad_line", "", "line 2: a NUL character (\\u0000) in a value"),
    ]


def test_a_manifest_in_a_folder_the_user_cannot_enter_is_one_line(tmp_path):
    path = locked_folder(tmp_path) / "x.csv"
    said = raised_as_another_user(lambda: load_manifest(path))
    assert said == f"ManifestError: manifest {path}: permission denied"
