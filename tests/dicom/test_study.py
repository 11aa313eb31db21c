"""One study folder through ingestion: bad files are quarantined, good slices all used."""

from __future__ import annotations

import logging
import os
import shutil
import warnings

import numpy as np
import pydicom

from radreport.data.pseudonyms import DeidKeys
from radreport.data.quarantine import Reason
from radreport.data.settings import DicomSettings
from radreport.dicom.deidentify import identifying_values
from radreport.dicom.study import StudyTask, ingest_study
from radreport.dicom.write_series import SeriesLayout, write_ct_series

KEYS = DeidKeys("test-secret")
CT5N_PATIENT = "98890234"  # PatientID in pydicom's dicomdirtests CT5N headers


def _reasons(result) -> dict[str, Reason]:
    return {entry.path.split("/")[-1]: entry.reason for entry in result.quarantine}


def test_bad_files_beside_a_good_series_are_quarantined_and_the_series_built(
    tmp_path, testdata, series_files, copy_into, broken_files, permissive
):
    folder = tmp_path / "study"
    good = copy_into(folder, *series_files("98892001/CT5N"))
    malformed = ["MR_truncated.dcm", "badVR.dcm", "meta_missing_tsyntax.dcm", "nested_priv_SQ.dcm"]
    copy_into(folder, *(testdata(name) for name in malformed))
    for path in broken_files.values():
        shutil.copy(path, folder / path.name)
    patient = str(pydicom.dcmread(good[0]).PatientID)
    assert patient == CT5N_PATIENT

    result = ingest_study(StudyTask("study-1", patient, str(folder)), permissive, KEYS)

    assert result.volume is not None and result.volume.shape == (3, 8, 32, 32)
    assert result.header["source_slices"] == len(good)  # nothing valid was dropped
    assert result.files_seen == len(good) + len(malformed) + len(broken_files)
    reasons = _reasons(result)
    assert len(reasons) == len(malformed) + len(broken_files)
    assert len(set(reasons.values())) == len(reasons)  # one distinct code per kind
    assert all(entry.study_id == "study-1" for entry in result.quarantine)


def test_localizers_are_skipped_and_the_study_has_no_usable_series(
    tmp_path, series_files, copy_into, permissive
):
    folder = tmp_path / "scouts"
    copy_into(folder, *series_files("98892001/CT2N"))
    task = StudyTask("s", CT5N_PATIENT, str(folder))
    result = ingest_study(task, permissive.model_copy(update={"check_patient_id": False}), KEYS)
    assert result.volume is None
    assert sorted(_reasons(result).values()) == [
        Reason.LOCALIZER,
        Reason.LOCALIZER,
        Reason.NO_USABLE_SERIES,
    ]


def test_images_of_another_patient_are_not_paired_with_the_report(
    tmp_path, series_files, copy_into, permissive
):
    folder = tmp_path / "other"
    copy_into(folder, *series_files("98892001/CT5N"))
    result = ingest_study(StudyTask("s", "someone-else", str(folder)), permissive, KEYS)
    assert result.volume is None
    assert Reason.PATIENT_ID_MISMATCH in _reasons(result).values()


def test_duplicate_instances_are_rejected_and_the_series_still_built(
    tmp_path, series_files, copy_into, permissive
):
    folder = tmp_path / "dupes"
    paths = copy_into(folder, *series_files("98892001/CT5N"))
    shutil.copy(paths[0], folder / "zz_copy_of_first.dcm")
    result = ingest_study(StudyTask("s", CT5N_PATIENT, str(folder)), permissive, KEYS)
    assert result.volume is not None
    assert _reasons(result) == {"zz_copy_of_first.dcm": Reason.DUPLICATE_SOP_INSTANCE}


def test_a_gap_quarantines_the_series_unless_resampling_is_asked(
    tmp_path, series_files, copy_into, permissive
):
    folder = tmp_path / "gap"
    copy_into(folder, *series_files("77654033/CT2"))
    patient = str(pydicom.dcmread(next(folder.iterdir())).PatientID)
    task = StudyTask("s", patient, str(folder))
    strict = ingest_study(task, permissive, KEYS)
    assert strict.volume is None
    assert list(_reasons(strict).values()).count(Reason.IRREGULAR_SPACING) == 4
    lenient = permissive.model_copy(update={"irregular_spacing": "resample", "min_slices": 4})
    resampled = ingest_study(task, lenient, KEYS)
    assert resampled.volume is not None and resampled.quarantine == []


def test_the_returned_header_facts_are_de_identified(tmp_path, series_files, copy_into, permissive):
    folder = tmp_path / "facts"
    paths = copy_into(folder, *series_files("98892001/CT5N"))
    original = pydicom.dcmread(paths[0])
    result = ingest_study(StudyTask("s", CT5N_PATIENT, str(folder)), permissive, KEYS)
    assert result.header["study_uid"] != original.StudyInstanceUID
    assert result.header["series_uid"] == str(KEYS.uid(original.SeriesInstanceUID))
    assert result.header["study_date"] != original.StudyDate
    assert CT5N_PATIENT in result.identifiers  # kept in memory to scrub the report
    assert result.pseudonyms[CT5N_PATIENT] == KEYS.patient(CT5N_PATIENT)
    assert np.issubdtype(result.volume.dtype, np.uint8)


def test_an_error_past_the_headers_costs_the_images_but_keeps_what_scrubs_the_report(
    tmp_path, series_files, copy_into, permissive, monkeypatch
):
    folder = tmp_path / "study"
    paths = copy_into(folder, *series_files("98892001/CT5N"))
    original = pydicom.dcmread(paths[0])

    def fails(*_):
        raise OverflowError  # what a date shift past the year 1 raised, once

    # No input is known to fail here now; the error stands for the next one no check foresaw.
    monkeypatch.setattr("radreport.dicom.study._deidentified_facts", fails)
    result = ingest_study(StudyTask("s", CT5N_PATIENT, str(folder)), permissive, KEYS)

    assert result.volume is None and result.header == {}
    assert [(e.path, e.reason, e.message) for e in result.quarantine] == [
        (str(folder), Reason.INGESTION_ERROR, "OverflowError")
    ]
    # The headers' names and ids still reach the report's scrub.
    assert identifying_values(original) <= result.identifiers
    assert CT5N_PATIENT in result.identifiers
    assert result.pseudonyms[CT5N_PATIENT] == KEYS.patient(CT5N_PATIENT)


def test_linked_folders_are_followed_and_entries_that_are_not_files_recorded(
    tmp_path, series_files, copy_into, permissive
):
    elsewhere = tmp_path / "elsewhere" / "series"
    good = copy_into(elsewhere, *series_files("98892001/CT5N"))
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "series").symlink_to(elsewhere)  # exports often link series in
    (folder / "again").symlink_to(folder)  # a loop: entered once
    (folder / "gone.dcm").symlink_to(tmp_path / "missing.dcm")
    (folder / "self.dcm").symlink_to(folder / "self.dcm")
    os.mkfifo(folder / "pipe.dcm")

    result = ingest_study(StudyTask("s", CT5N_PATIENT, str(folder)), permissive, KEYS)

    assert result.volume is not None and result.header["source_slices"] == len(good)
    assert _reasons(result) == dict.fromkeys(
        ["gone.dcm", "self.dcm", "pipe.dcm"], Reason.NOT_A_REGULAR_FILE
    )


def test_an_unforeseen_error_costs_its_file_or_series_not_the_study(
    tmp_path, series_files, copy_into, permissive
):
    folder = tmp_path / "study"
    good = copy_into(folder / "good", *series_files("98892001/CT5N"))
    # A second series of the same study, with more slices (so tried first), where one
    # classic slice says NumberOfFrames 0: no check looks for that, and building its
    # volume fails.
    heights = sorted(float(pydicom.dcmread(path).ImagePositionPatient[2]) for path in good)
    spacing = heights[1] - heights[0]
    for index in range(len(good) + 2):
        dataset = pydicom.dcmread(good[0])
        dataset.SeriesInstanceUID = f"{dataset.SeriesInstanceUID}.9"
        dataset.SOPInstanceUID = f"{dataset.SOPInstanceUID}.9{index}"
        dataset.ImagePositionPatient[2] = heights[0] + index * spacing
        if index == 3:
            dataset.NumberOfFrames = 0
        dataset.save_as(folder / f"frames_{index}.dcm")
    # A file whose sequences nest deeper than the header reader recurses.
    nested = b"".join(
        b"\x09\x00\x10\x10SQ\x00\x00\xff\xff\xff\xff\xfe\xff\x00\xe0\xff\xff\xff\xff"
        for _ in range(2000)
    )
    meta = b"\x02\x00\x10\x00UI\x14\x001.2.840.10008.1.2.1\x00"
    group_length = b"\x02\x00\x00\x00UL\x04\x00" + len(meta).to_bytes(4, "little")
    (folder / "nested.dcm").write_bytes(b"\0" * 128 + b"DICM" + group_length + meta + nested)

    result = ingest_study(StudyTask("s", CT5N_PATIENT, str(folder)), permissive, KEYS)

    assert result.volume is not None and result.header["source_slices"] == len(good)
    reasons = _reasons(result)
    nested_entry = next(e for e in result.quarantine if e.path.endswith("nested.dcm"))
    assert nested_entry.message == "reading the header failed (RecursionError)"
    assert reasons.pop("nested.dcm") == Reason.UNREADABLE_HEADER
    assert set(reasons.values()) == {Reason.INGESTION_ERROR}
    assert len(reasons) == len(good) + 2  # every file of the failed series, named


def test_a_deflated_series_gives_the_volume_of_the_same_series_uncompressed(
    tmp_path, series_files, copy_into, permissive
):
    plain = tmp_path / "plain"
    sources = copy_into(plain, *series_files("98892001/CT5N"))
    deflated = tmp_path / "deflated"
    deflated.mkdir()
    for source in sources:
        dataset = pydicom.dcmread(source)
        dataset.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
        dataset.save_as(deflated / source.name, enforce_file_format=True)

    results = [
        ingest_study(StudyTask("s", CT5N_PATIENT, str(folder)), permissive, KEYS)
        for folder in (plain, deflated)
    ]

    assert not results[1].quarantine
    assert np.array_equal(results[0].volume, results[1].volume)


def test_pixel_padding_is_air_whatever_hu_its_value_would_map_to(
    tmp_path, series_files, copy_into, permissive
):
    sources = copy_into(tmp_path / "sources", *series_files("98892001/CT5N"))

    def write(folder, padding: bool) -> None:
        folder.mkdir()
        for source in sources:
            dataset = pydicom.dcmread(source)
            hounsfield = dataset.pixel_array * float(dataset.RescaleSlope) + float(
                dataset.RescaleIntercept
            )
            stored = np.clip(hounsfield + 1024, 0, 4095).astype("<u2")  # unsigned, -1024 HU = 0
            half = stored.shape[0] // 2
            # The lower half lies outside the field of view: marked as padding with a value
            # that would be 62512 HU, or written as air.
            stored[half:] = 63536 if padding else 0
            dataset.PixelRepresentation, dataset.BitsStored, dataset.HighBit = 0, 16, 15
            dataset.RescaleSlope, dataset.RescaleIntercept = 1, -1024
            dataset.PixelData = stored.tobytes()
            if "PixelPaddingValue" in dataset:
                del dataset.PixelPaddingValue
            if padding:
                dataset.add_new(0x00280120, "US", 63536)  # PixelPaddingValue
            dataset.save_as(folder / source.name)

    write(tmp_path / "padded", padding=True)
    write(tmp_path / "air", padding=False)
    padded, air = (
        ingest_study(StudyTask("s", CT5N_PATIENT, str(tmp_path / name)), permissive, KEYS)
        for name in ("padded", "air")
    )
    assert not padded.quarantine and padded.volume is not None
    assert np.array_equal(padded.volume, air.volume)


def test_pydicom_says_nothing_of_a_broken_file_that_would_quote_its_path(
    tmp_path, series_files, copy_into, permissive, caplog, capfd
):
    """pydicom warns about a cut RLE stream naming the file, and export folders are named
    after patients: ingestion records the reason and lets no such message out."""
    folder = tmp_path / "DOE_JOHN_0012345"
    sources = copy_into(folder, *series_files("98892001/CT5N"))
    for source in sources:
        dataset = pydicom.dcmread(source)
        dataset.compress(pydicom.uid.RLELossless)
        dataset.save_as(source, enforce_file_format=True)
    cut = sources[1].read_bytes()
    sources[1].write_bytes(cut[: len(cut) - 200])

    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        result = ingest_study(StudyTask("s", CT5N_PATIENT, str(folder)), permissive, KEYS)

    reasons = {entry.reason for entry in result.quarantine}
    assert Reason.PIXEL_DATA_TRUNCATED in reasons or Reason.PIXEL_DECODE_FAILED in reasons
    said = (
        caplog.text + "".join(map(str, (w.message for w in warned))) + "".join(capfd.readouterr())
    )
    assert "DOE_JOHN" not in said
    messages = " ".join(entry.message for entry in result.quarantine)
    assert "DOE_JOHN" not in messages and str(tmp_path) not in messages


def test_names_in_files_the_header_checks_reject_still_scrub_the_report(
    tmp_path, testdata, series_files, copy_into, permissive
):
    # An MR-only folder and a CT series of derived images only: no header passes the checks,
    # but each file's names and ids are still the study's.
    mr_folder = tmp_path / "mr"
    for index in range(2):
        mr = pydicom.dcmread(testdata("MR_small.dcm"))
        mr.PatientName, mr.PatientID = "Roe^Rita", "MRN-4417"
        mr.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["mr", str(index)])
        mr_folder.mkdir(exist_ok=True)
        mr.save_as(mr_folder / f"mr{index}.dcm")
    derived_folder = tmp_path / "derived"
    for path in copy_into(derived_folder, *series_files("98892001/CT5N")):
        ct = pydicom.dcmread(path)
        ct.ImageType = ["DERIVED", "SECONDARY", "MPR"]
        ct.OtherPatientNames = "Roe^Richard"
        ct.save_as(path)
    mr = ingest_study(StudyTask("mr", "MRN-4417", str(mr_folder)), permissive, KEYS)
    derived = ingest_study(StudyTask("d", CT5N_PATIENT, str(derived_folder)), permissive, KEYS)

    assert mr.volume is None and derived.volume is None
    assert set(_reasons(mr).values()) == {Reason.UNSUPPORTED_SOP_CLASS, Reason.NO_USABLE_SERIES}
    assert {"Roe^Rita", "MRN-4417"} <= mr.identifiers
    assert mr.pseudonyms["MRN-4417"] == KEYS.patient("MRN-4417")
    assert {"Roe^Richard", CT5N_PATIENT} <= derived.identifiers


def _ramp_series(folder, seed: str = "ramp") -> list:
    """Six 16 x 12 slices whose every voxel differs, 1 mm pixels, 2 mm apart from z = 0."""
    depth, rows, columns = np.meshgrid(np.arange(6), np.arange(16), np.arange(12), indexing="ij")
    hounsfield = (-900 + 50 * depth + 20 * rows + 7 * columns).astype(np.float32)
    study = pydicom.Dataset()
    study.StudyInstanceUID, study.PatientID = "1.2.826.0.1.3680043.8.498.7", "ramp-patient"
    layout = SeriesLayout(1.0, 2.0, (0.0, 0.0, 0.0))
    return write_ct_series(hounsfield, folder, study, layout, seed=seed)


def _rewritten(paths, folder, orientation, image_of, first_pixel_of):
    """The same anatomy stored another way: each slice's image turned by `image_of`, its
    orientation `orientation`, its first pixel at `first_pixel_of(x, y, z)`."""
    folder.mkdir()
    for path in paths:
        ds = pydicom.dcmread(path)
        image = np.ascontiguousarray(image_of(ds.pixel_array))
        ds.Rows, ds.Columns = image.shape
        ds.PixelData = image.tobytes()
        ds.ImageOrientationPatient = orientation
        ds.ImagePositionPatient = list(first_pixel_of(*map(float, ds.ImagePositionPatient)))
        ds.save_as(folder / path.name)


def test_every_axial_series_is_built_in_one_orientation_and_others_are_refused(tmp_path):
    settings = DicomSettings(min_slices=3, workers=1, depth=4, height=10, width=8)
    written = _ramp_series(tmp_path / "supine")

    def volume_of(folder):
        task = StudyTask(folder.name, "ramp-patient", str(folder))
        return ingest_study(task, settings, KEYS)

    expected = volume_of(tmp_path / "supine").volume
    assert expected is not None
    stored_ways = {
        # prone: rows run back to front and columns left to right; the first pixel is the
        # opposite corner
        "prone": ([-1, 0, 0, 0, -1, 0], lambda a: a[::-1, ::-1], lambda x, y, z: (11, 15, z)),
        # rows run back to front, so the normal points to the feet
        "feet": ([1, 0, 0, 0, -1, 0], lambda a: a[::-1], lambda x, y, z: (x, 15, z)),
        # moving along a row goes front to back: rows and columns swapped
        "transposed": ([0, 1, 0, 1, 0, 0], lambda a: a.T, lambda x, y, z: (x, y, z)),
    }
    for name, (orientation, image_of, first_pixel_of) in stored_ways.items():
        _rewritten(written, tmp_path / name, orientation, image_of, first_pixel_of)
        result = volume_of(tmp_path / name)
        assert result.volume is not None, name
        np.testing.assert_array_equal(result.volume, expected, err_msg=name)
    # A sagittal series: slices side by side along x.
    _rewritten(written, tmp_path / "sagittal", [0, 1, 0, 0, 0, -1], lambda a: a, _sideways)
    sagittal = volume_of(tmp_path / "sagittal")
    assert sagittal.volume is None
    entry = next(e for e in sagittal.quarantine if e.reason == Reason.NOT_AXIAL)
    assert "a sagittal series (its slice normal is 90 degrees from the head-foot" in entry.message


def _sideways(x, y, z):
    return (z, 0.0, 0.0)  # the axial z steps become steps along x


def _without_file_meta(source, target) -> None:
    ds = pydicom.dcmread(source)
    ds.preamble, ds.file_meta = None, pydicom.dataset.FileMetaDataset()
    ds.save_as(target, implicit_vr=True, little_endian=True)


def test_files_without_preamble_and_archives_still_give_their_names_to_the_scrub(tmp_path):
    paths = _ramp_series(tmp_path / "source")
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.PatientName, ds.ReferringPhysicianName = "Kowalczyk^Bartholomew", "Thornbury^Eve"
        ds.save_as(path)
    settings = DicomSettings(min_slices=3, workers=1, depth=6, height=16, width=12)
    ramp = ingest_study(StudyTask("s", "ramp-patient", str(tmp_path / "source")), settings, KEYS)
    assert ramp.volume is not None

    def study_of(name, rewrite) -> object:
        folder = tmp_path / name
        folder.mkdir()
        for path in paths:
            rewrite(path, folder / path.name)
        return ingest_study(StudyTask(name, "ramp-patient", str(folder)), settings, KEYS)

    # The file meta first, the 128-byte preamble and 'DICM' left out: read as DICOM.
    meta_first = study_of("meta", lambda src, dst: dst.write_bytes(src.read_bytes()[132:]))
    assert meta_first.quarantine == []
    np.testing.assert_array_equal(meta_first.volume, ramp.volume)
    # 'DICM' first, or no file meta, or zipped: not read as images, named for what they are,
    # and their names and ids still scrub the report.
    dicm_first = study_of("dicm", lambda src, dst: dst.write_bytes(src.read_bytes()[128:]))
    no_meta = study_of("raw", _without_file_meta)
    zipped_folder = tmp_path / "zipped"
    zipped_folder.mkdir()
    shutil.make_archive(str(zipped_folder / "study"), "zip", tmp_path / "source")
    zipped = ingest_study(StudyTask("z", "ramp-patient", str(zipped_folder)), settings, KEYS)
    expected = [
        (dicm_first, Reason.MISSING_PREAMBLE),
        (no_meta, Reason.MISSING_FILE_META),
        (zipped, Reason.NOT_DICOM_ARCHIVE),
    ]
    for study, reason in expected:
        assert study.volume is None
        assert {entry.reason for entry in study.quarantine} == {reason, Reason.NO_USABLE_SERIES}
        assert {"Kowalczyk^Bartholomew", "Thornbury^Eve"} <= study.identifiers
        assert study.pseudonyms == ramp.pseudonyms
    assert "starts with 'DICM'" in dicm_first.quarantine[0].message


def test_a_series_refused_for_its_geometry_names_the_files_at_fault(tmp_path):
    settings = DicomSettings(min_slices=3, workers=1, depth=6, height=16, width=12)
    odd_spacing = _ramp_series(tmp_path / "spacing")
    ds = pydicom.dcmread(odd_spacing[2])
    ds.PixelSpacing = [0.5, 0.5]
    ds.save_as(odd_spacing[2])
    doubled = _ramp_series(tmp_path / "doubled")
    ds = pydicom.dcmread(doubled[4])
    ds.ImagePositionPatient = pydicom.dcmread(doubled[1]).ImagePositionPatient
    ds.save_as(doubled[4])

    def messages(folder) -> dict[str, str]:
        study = ingest_study(StudyTask("s", "ramp-patient", str(folder)), settings, KEYS)
        return {entry.path.split("/")[-1]: entry.message for entry in study.quarantine}

    spacing = messages(tmp_path / "spacing")
    assert spacing.pop(odd_spacing[2].name) == (
        "this file's PixelSpacing is 0.5\\0.5 mm, where 5 other slices of its series have 1\\1 mm"
    )
    assert set(spacing.values()) == {
        "slices differ in PixelSpacing: 1 of 6 differ from the others' 1\\1 mm",
        "no series passed every check",
    }
    shared = messages(tmp_path / "doubled")
    at_fault = {shared.pop(path.name) for path in (doubled[1], doubled[4])}
    assert at_fault == {
        "this file's slice shares its position (2.00 mm along the slice normal) with another "
        "file of its series (a second acquisition, or a copy?)"
    }
    assert set(shared.values()) == {
        "2 of 6 slices share their position with another",
        "no series passed every check",
    }


def test_the_headers_inside_tar_and_gzip_archives_are_read_for_the_scrub(tmp_path):
    import gzip
    import tarfile

    from radreport.dicom.unused_file_headers import unused_file_headers

    paths = _ramp_series(tmp_path / "source")
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.PatientName = "Kowalczyk^Bartholomew"
        ds.save_as(path)
    with tarfile.open(tmp_path / "study.tar.gz", "w:gz") as archive:
        for path in paths:
            archive.add(path, arcname=path.name)
    (tmp_path / "one.dcm.gz").write_bytes(gzip.compress(paths[0].read_bytes()))
    in_tar = list(unused_file_headers(tmp_path / "study.tar.gz", Reason.NOT_DICOM_ARCHIVE))
    in_gzip = list(unused_file_headers(tmp_path / "one.dcm.gz", Reason.NOT_DICOM_ARCHIVE))
    assert len(in_tar) == len(paths) and len(in_gzip) == 1
    assert {str(ds.PatientName) for ds in in_tar + in_gzip} == {"Kowalczyk^Bartholomew"}


def test_a_series_holding_two_acquisitions_at_the_same_positions_keeps_one(tmp_path):
    settings = DicomSettings(min_slices=3, workers=1, depth=6, height=16, width=12)
    first = _ramp_series(tmp_path / "study" / "a", seed="first")
    repeat = _ramp_series(tmp_path / "study" / "b", seed="repeat")
    series_uid = pydicom.dcmread(first[0]).SeriesInstanceUID
    for number, paths in ((1, first), (2, repeat)):
        for path in paths:
            ds = pydicom.dcmread(path)
            ds.SeriesInstanceUID, ds.AcquisitionNumber = series_uid, number
            if number == 2:  # the repeat scan: other values, the same positions
                ds.PixelData = (ds.pixel_array + 100).astype(ds.pixel_array.dtype).tobytes()
            ds.save_as(path)
    alone = ingest_study(
        StudyTask("s", "ramp-patient", str(tmp_path / "study" / "a")), settings, KEYS
    )
    both = ingest_study(StudyTask("s", "ramp-patient", str(tmp_path / "study")), settings, KEYS)
    np.testing.assert_array_equal(both.volume, alone.volume)
    assert {entry.path.split("/")[-2] for entry in both.quarantine} == {"b"}
    assert {entry.message for entry in both.quarantine} == {
        "another acquisition of this series was chosen (more slices, then thinner spacing, "
        "then UID)"
    }
    # One acquisition number for both: which slice belongs to which scan cannot be told.
    for path in repeat:
        ds = pydicom.dcmread(path)
        ds.AcquisitionNumber = 1
        ds.save_as(path)
    mixed = ingest_study(StudyTask("s", "ramp-patient", str(tmp_path / "study")), settings, KEYS)
    assert mixed.volume is None
    assert Reason.DUPLICATE_SLICE_POSITION in {entry.reason for entry in mixed.quarantine}
