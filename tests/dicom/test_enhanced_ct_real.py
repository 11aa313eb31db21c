"""pydicom-data's eCT_Supplemental.dcm: a real Enhanced CT (2 frames of 512², perfusion map)
whose geometry and rescale live only in the functional groups, written by another vendor's
software than our own writer."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom

from radreport.data.pseudonyms import DeidKeys
from radreport.data.quarantine import QuarantineEntry, Reason
from radreport.data.settings import DicomSettings
from radreport.dicom.header import FileHeader, read_file_header
from radreport.dicom.pixels import stored_frames, to_hounsfield
from radreport.dicom.study import StudyTask, ingest_study
from radreport.dicom.windows import HU_MAX, HU_MIN

NAME = "eCT_Supplemental.dcm"
# eCT_Supplemental is a DERIVED perfusion map: accepted only when derived images are wanted.
ACCEPT_DERIVED = DicomSettings(skip_derived=False, min_slices=2)


def test_derived_enhanced_ct_is_quarantined_by_default(testdata):
    result = read_file_header(testdata(NAME), DicomSettings())
    assert isinstance(result, QuarantineEntry)
    assert result.reason == Reason.DERIVED_IMAGE


def test_enhanced_ct_frames_take_geometry_and_rescale_from_functional_groups(testdata):
    path = testdata(NAME)
    header = read_file_header(path, ACCEPT_DERIVED)
    assert isinstance(header, FileHeader)
    reference = pydicom.dcmread(path)
    assert "RescaleIntercept" not in reference  # only in the shared functional groups
    shared = reference.SharedFunctionalGroupsSequence[0]
    rescale = shared.PixelValueTransformationSequence[0]
    per_frame = reference.PerFrameFunctionalGroupsSequence

    assert len(header.slices) == reference.NumberOfFrames == 2
    assert [s.frame for s in header.slices] == [0, 1]
    assert [list(s.position) for s in header.slices] == [
        [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        for frame in per_frame
    ]
    assert {s.rescale_intercept for s in header.slices} == {float(rescale.RescaleIntercept)}
    assert {s.rescale_slope for s in header.slices} == {float(rescale.RescaleSlope)}

    slopes = [s.rescale_slope for s in header.slices]
    intercepts = [s.rescale_intercept for s in header.slices]
    hounsfield = to_hounsfield(stored_frames(header), slopes, intercepts)
    expected = reference.pixel_array * float(rescale.RescaleSlope) + float(rescale.RescaleIntercept)
    np.testing.assert_array_equal(hounsfield, np.clip(expected, HU_MIN, HU_MAX).astype(np.float32))


def test_enhanced_ct_without_its_rescale_group_is_refused_not_read_as_raw_hu(testdata, tmp_path):
    dataset = pydicom.dcmread(testdata(NAME))
    del dataset.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence
    dataset.RescaleSlope, dataset.RescaleIntercept = 1, -1024  # where Enhanced CT has none
    path = tmp_path / "no_rescale_group.dcm"
    dataset.save_as(path)
    entry = read_file_header(path, ACCEPT_DERIVED)
    assert isinstance(entry, QuarantineEntry)
    assert (entry.reason, entry.message) == (
        Reason.MISSING_REQUIRED_ATTRIBUTE,
        "frame 1 has no RescaleSlope in a PixelValueTransformationSequence of its functional "
        "groups",
    )


def test_enhanced_ct_study_becomes_a_volume(testdata, tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    shutil.copy(testdata(NAME), folder / NAME)
    settings = ACCEPT_DERIVED.model_copy(update={"depth": 4, "height": 32, "width": 32})
    patient_id = str(pydicom.dcmread(folder / NAME, stop_before_pixels=True).PatientID)
    task = StudyTask("s1", patient_id, str(folder))
    result = ingest_study(task, settings, DeidKeys("test"))

    assert result.quarantine == []
    assert result.volume is not None and result.volume.shape == (3, 4, 32, 32)
    assert result.header["source_slices"] == 2
    assert result.header["slice_spacing_mm"] == 10.0
    assert result.header["pixel_spacing_mm"] == [0.3887, 0.3887]
