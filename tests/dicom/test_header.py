"""The header pass on pydicom's real files: each kind of broken file gets its own reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import get_decoder
from pydicom.uid import UID, JPEGExtended12Bit

from radreport.data.quarantine import QuarantineEntry, Reason
from radreport.data.settings import DicomSettings
from radreport.dicom import header as header_module
from radreport.dicom.header import FileHeader, padding_range, read_file_header
from radreport.dicom.pixels import stored_frames

MALFORMED = {
    "MR_truncated.dcm": Reason.PIXEL_DATA_TRUNCATED,
    "badVR.dcm": Reason.INVALID_ATTRIBUTE_VALUE,
    "meta_missing_tsyntax.dcm": Reason.MISSING_TRANSFER_SYNTAX,
    "nested_priv_SQ.dcm": Reason.MISSING_REQUIRED_ATTRIBUTE,
}
BROKEN = {
    "empty": Reason.EMPTY_FILE,
    "png": Reason.NOT_DICOM_IMAGE_FILE,
    "text": Reason.NOT_DICOM_TEXT_FILE,
}


def test_each_malformed_or_foreign_file_has_its_own_reason(testdata, broken_files):
    settings = DicomSettings()
    reasons = {name: read_file_header(testdata(name), settings) for name in MALFORMED}
    reasons |= {kind: read_file_header(path, settings) for kind, path in broken_files.items()}
    assert all(isinstance(entry, QuarantineEntry) for entry in reasons.values())
    assert {name: entry.reason for name, entry in reasons.items()} == MALFORMED | BROKEN
    assert len({entry.reason for entry in reasons.values()}) == 7


def test_a_file_without_file_meta_is_named_as_such(testdata):
    entry = read_file_header(testdata("no_meta.dcm"), DicomSettings())
    assert entry.reason == Reason.MISSING_FILE_META


def test_non_ct_and_headers_without_pixels_are_skipped_with_a_reason(testdata):
    settings = DicomSettings()
    assert read_file_header(testdata("MR_small.dcm"), settings).reason == (
        Reason.UNSUPPORTED_SOP_CLASS
    )
    assert read_file_header(testdata("reportsi.dcm"), settings).reason == (
        Reason.UNSUPPORTED_SOP_CLASS
    )
    tiny = testdata("dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000000")
    assert read_file_header(tiny, settings).reason == Reason.MISSING_REQUIRED_ATTRIBUTE


def test_ct_small_passes_with_its_geometry_and_rescale(testdata):
    result = read_file_header(testdata("CT_small.dcm"), DicomSettings())
    assert isinstance(result, FileHeader)
    (slice_,) = result.slices
    reference = pydicom.dcmread(testdata("CT_small.dcm"))
    assert slice_.rescale_slope == float(reference.RescaleSlope)
    assert slice_.rescale_intercept == float(reference.RescaleIntercept)
    assert slice_.position == tuple(float(v) for v in reference.ImagePositionPatient)


def test_derived_images_are_skipped_by_default(testdata):
    # 693_J2KI.dcm is marked DERIVED\PRIMARY\AXIAL
    entry = read_file_header(testdata("693_J2KI.dcm"), DicomSettings())
    assert entry.reason == Reason.DERIVED_IMAGE


def test_jpeg2000_is_decoded_when_a_decoder_is_installed_else_quarantined(testdata):
    path = testdata("693_J2KI.dcm")
    settings = DicomSettings(skip_derived=False)
    syntax = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    result = read_file_header(path, settings)
    if header_module.decoder_available(UID(syntax)):
        frames = stored_frames(result)
        np.testing.assert_array_equal(frames[0], pydicom.dcmread(path).pixel_array)
        assert frames.shape == (1, 512, 512)
    else:
        assert result.reason == Reason.NO_DECODER


def test_a_missing_decoder_is_a_quarantine_reason_not_a_crash(testdata, monkeypatch):
    monkeypatch.setattr(header_module, "decoder_available", lambda syntax, bits=8: False)
    entry = read_file_header(testdata("693_J2KI.dcm"), DicomSettings(skip_derived=False))
    assert entry.reason == Reason.NO_DECODER
    assert "JPEG 2000" in entry.message


@pytest.mark.parametrize(("limit", "value"), [("max_rows_columns", 100), ("max_pixel_bytes", 1000)])
def test_size_guards_apply_before_decoding(testdata, limit, value):
    entry = read_file_header(testdata("CT_small.dcm"), DicomSettings(**{limit: value}))
    assert entry.reason == Reason.SIZE_LIMIT_EXCEEDED


def _edited_ct_small(testdata, tmp_path, edit) -> Path:
    dataset = pydicom.dcmread(testdata("CT_small.dcm"))
    edit(dataset)
    path = tmp_path / "edited.dcm"
    dataset.save_as(path)
    return path


def _set(**values):
    def edit(dataset):
        for keyword, value in values.items():
            setattr(dataset, keyword, value)

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            _set(ImagePositionPatient=["0", "0", "nan"]),
            "ImagePositionPatient is not a finite number",
        ),
        (_set(RescaleSlope="inf"), "RescaleSlope is not a finite number"),
        (_set(RescaleIntercept="nan"), "RescaleIntercept is not a finite number"),
        (_set(GantryDetectorTilt="nan"), "GantryDetectorTilt is not a finite number"),
        (_set(PixelSpacing=[0, 0]), "PixelSpacing is not positive"),
        (_set(RescaleSlope=0), "RescaleSlope is 0"),
        (
            _set(ImageOrientationPatient=[1, 0, 0, 1, 0, 0]),
            "ImageOrientationPatient is not two perpendicular unit vectors",
        ),
        (_set(Rows=0), "Rows or Columns is 0"),
        (_set(BitsStored=20), "BitsStored is not between 1 and BitsAllocated"),
        (_set(PixelRepresentation=2), "PixelRepresentation is neither 0 nor 1"),
    ],
)
def test_values_that_would_give_a_blank_or_misplaced_volume_are_refused(
    testdata, tmp_path, edit, message
):
    entry = read_file_header(_edited_ct_small(testdata, tmp_path, edit), DicomSettings())
    assert isinstance(entry, QuarantineEntry)
    assert (entry.reason, entry.message) == (Reason.INVALID_ATTRIBUTE_VALUE, message)


@pytest.mark.parametrize(
    ("edit", "reason", "message"),
    [
        (
            _set(ImageType=["DERIVED", "DOE JOHN 19450704"]),
            Reason.DERIVED_IMAGE,
            "ImageType marks a derived or secondary image",
        ),
        (
            _set(PhotometricInterpretation="DOE JOHN"),
            Reason.UNSUPPORTED_PIXEL_FORMAT,
            "PhotometricInterpretation an undefined term with 1 samples",
        ),
        (
            _set(SOPClassUID="1.2.3.19450704"),
            Reason.UNSUPPORTED_SOP_CLASS,
            "an unlisted UID is not CT",
        ),
    ],
)
def test_messages_quote_only_defined_terms_never_free_text(
    testdata, tmp_path, edit, reason, message
):
    entry = read_file_header(_edited_ct_small(testdata, tmp_path, edit), DicomSettings())
    assert (entry.reason, entry.message) == (reason, message)


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
def test_a_signed_padding_value_reads_the_same_with_or_without_its_vr(testdata, tmp_path, syntax):
    # PixelPaddingValue is US or SS by PixelRepresentation; an implicit VR file names neither.
    def edit(dataset):
        dataset.add_new(0x00280120, "SS", -2000)  # PixelPaddingValue
        dataset.add_new(0x00280121, "SS", -1500)  # PixelPaddingRangeLimit
        dataset.file_meta.TransferSyntaxUID = syntax

    header = read_file_header(_edited_ct_small(testdata, tmp_path, edit), DicomSettings())
    assert isinstance(header, FileHeader)
    assert padding_range(header.facts) == (-2000, -1500)


def test_twelve_bit_jpeg_extended_is_named_as_lacking_a_decoder_unless_one_decodes_it(
    testdata, tmp_path
):
    # CT_small's header around a real 12-bit JPEG Extended codestream (pydicom's
    # JPGExtended.dcm): GDCM's and Pillow's plugins refuse 12-bit samples at decode time.
    jpeg = pydicom.dcmread(testdata("JPGExtended.dcm"))

    def with_jpeg_pixels(dataset):
        dataset.file_meta.TransferSyntaxUID = JPEGExtended12Bit
        for keyword in ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit"):
            setattr(dataset, keyword, jpeg[keyword].value)
        dataset.PixelRepresentation = 0
        dataset.PixelData = jpeg.PixelData
        dataset["PixelData"].VR = "OB"

    path = _edited_ct_small(testdata, tmp_path, with_jpeg_pixels)
    result = read_file_header(path, DicomSettings())
    if "pylibjpeg" in get_decoder(JPEGExtended12Bit).available_plugins:
        np.testing.assert_array_equal(stored_frames(result)[0], jpeg.pixel_array)
    else:
        assert result.reason == Reason.NO_DECODER
        assert result.message == (
            "no installed decoder plugin for JPEG Extended (Process 2 and 4) with 12-bit "
            "samples (GDCM and Pillow decode 8-bit only; pylibjpeg-libjpeg, GPLv3, decodes them)"
        )
