"""Stored values and Hounsfield units: our native read against pydicom's decoders, and the
rescale taken from where each file keeps it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from radreport.data.settings import DicomSettings
from radreport.dicom.header import read_file_header
from radreport.dicom.pixels import clip_stored_to_ct_range, stored_frames, to_hounsfield
from radreport.dicom.windows import HU_MAX, HU_MIN
from radreport.dicom.write_series import SeriesLayout, write_ct_series, write_enhanced_ct


def _hounsfield(header):
    slopes = [s.rescale_slope for s in header.slices]
    intercepts = [s.rescale_intercept for s in header.slices]
    return to_hounsfield(stored_frames(header), slopes, intercepts)


def test_ct_small_hounsfield_is_slope_times_stored_plus_intercept(testdata):
    path = testdata("CT_small.dcm")
    hounsfield = _hounsfield(read_file_header(path, DicomSettings()))[0]
    reference = pydicom.dcmread(path)
    expected = reference.pixel_array * float(reference.RescaleSlope) + float(
        reference.RescaleIntercept
    )
    np.testing.assert_array_equal(hounsfield, expected.astype(np.float32))
    assert HU_MIN <= hounsfield.min() < hounsfield.max() <= HU_MAX
    assert hounsfield.min() == -896 and hounsfield.max() == 1167  # CT_small's known range


def test_hounsfield_is_clipped_to_the_ct_range():
    stored = np.array([[[-3000, 0, 5000]]], dtype=np.int16)
    np.testing.assert_array_equal(to_hounsfield(stored, [1.0], [0.0])[0, 0], [-1024, 0, 3071])


@pytest.mark.parametrize("signed", [True, False])
def test_native_read_masks_unused_high_bits_like_pydicom(testdata, tmp_path, signed):
    """12 stored bits in 16 allocated, with junk in the top 4 bits (old overlays)."""
    dataset = pydicom.dcmread(testdata("CT_small.dcm"))
    rng = np.random.default_rng(0)
    values = rng.integers(-2048 if signed else 0, 2048 if signed else 4096, (128, 128))
    junk = rng.integers(0, 16, (128, 128)) << 12
    raw = (values & 0x0FFF) | junk
    dataset.BitsStored, dataset.HighBit = 12, 11
    dataset.PixelRepresentation = int(signed)
    dataset.PixelData = raw.astype(np.uint16).tobytes()
    path = tmp_path / "twelve_bits.dcm"
    dataset.save_as(path)
    ours = stored_frames(read_file_header(path, DicomSettings()))[0]
    np.testing.assert_array_equal(ours, pydicom.dcmread(path).pixel_array)
    np.testing.assert_array_equal(ours, values)


def _study() -> pydicom.Dataset:
    study = pydicom.Dataset()
    study.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    study.PatientID = "test-patient"
    return study


def _phantom(slices: int = 6) -> np.ndarray:
    ramp = np.linspace(-1000, 1500, 16 * 16, dtype=np.float32).reshape(16, 16)
    return np.stack([ramp + 10 * k for k in range(slices)])


@pytest.mark.parametrize("encoding", ["signed", "unsigned", "scaled"])
@pytest.mark.parametrize("rle", [False, True])
def test_written_series_decode_back_to_their_hounsfield_units(tmp_path: Path, encoding, rle):
    hounsfield = _phantom()
    layout = SeriesLayout(1.0, 2.0, (0.0, 0.0, 0.0), encoding=encoding, rle=rle)
    paths = write_ct_series(hounsfield, tmp_path, _study(), layout, seed="t")
    settings = DicomSettings()
    decoded = [_hounsfield(read_file_header(path, settings))[0] for path in paths]
    step = 0.5 if encoding == "scaled" else 1.0  # the stored value's resolution in HU
    np.testing.assert_allclose(np.stack(decoded), hounsfield, atol=step / 2 + 1e-3)


def test_enhanced_ct_rescale_comes_from_the_functional_groups(tmp_path: Path):
    hounsfield = _phantom()
    layout = SeriesLayout(1.0, 2.0, (0.0, 0.0, 0.0), encoding="unsigned")
    path = write_enhanced_ct(hounsfield, tmp_path / "enhanced.dcm", _study(), layout, "t")
    dataset = pydicom.dcmread(path, stop_before_pixels=True)
    assert "RescaleIntercept" not in dataset  # top-level readers would miss the -1024
    header = read_file_header(path, DicomSettings())
    assert [s.rescale_intercept for s in header.slices] == [-1024.0] * len(hounsfield)
    assert [s.position[2] for s in header.slices] == [2.0 * k for k in range(len(hounsfield))]
    np.testing.assert_allclose(_hounsfield(header), hounsfield, atol=0.5 + 1e-3)


def test_clipping_in_stored_units_is_clipping_the_hounsfield_units():
    rng = np.random.default_rng(1)
    stored = rng.integers(-4000, 6000, size=(5, 8, 8)).astype(np.float32)
    slopes = np.array([1.0, 0.5, 2.0, 0.0, -1.0])  # zero and negative slopes included
    intercepts = np.array([-1024.0, -3000.0, 10.0, 40.0, 500.0])
    expected = to_hounsfield(stored, slopes, intercepts)
    assert expected.min() == -1024 and expected.max() == 3071  # the clip does something
    clipped = clip_stored_to_ct_range(stored.copy(), slopes, intercepts)
    np.testing.assert_allclose(to_hounsfield(clipped, slopes, intercepts), expected, atol=1e-3)
