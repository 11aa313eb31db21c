"""The quick header reader against pydicom: same values, same verdicts, and a fallback to
pydicom for everything it does not handle."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread, dcmwrite
from pydicom.data import get_testdata_files
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ImplicitVRLittleEndian

from radreport.data.quarantine import QuarantineEntry
from radreport.data.settings import DicomSettings
from radreport.dicom import header as header_module
from radreport.dicom.header import VALUE_ATTRIBUTES, FileHeader, read_file_header
from radreport.dicom.pixels import stored_frames
from radreport.dicom.quick_header import read_quick_header


def _through_pydicom(path: Path, settings: DicomSettings, monkeypatch) -> object:
    with monkeypatch.context() as patch:
        patch.setattr(header_module, "read_quick_header", lambda *args: None)
        return read_file_header(path, settings)


def _same_verdict(quick: object, slow: object) -> bool:
    if isinstance(slow, QuarantineEntry):
        return isinstance(quick, QuarantineEntry) and (quick.reason, quick.message) == (
            slow.reason,
            slow.message,
        )
    # Only the quick reader notes where the pixel value lies; everything else must agree.
    return (
        isinstance(quick, FileHeader)
        and replace(quick.facts, pixel_value=None) == slow.facts
        and quick.slices == slow.slices
    )


def test_every_pydicom_test_file_gets_the_same_verdict_either_way(monkeypatch):
    settings = DicomSettings(skip_derived=False)
    files = [Path(f) for f in get_testdata_files("**/*") if Path(f).is_file()]
    quickly_read, differing = [], []
    for path in files:
        verdict = read_file_header(path, settings)
        if not _same_verdict(verdict, _through_pydicom(path, settings, monkeypatch)):
            differing.append(path.name)
        if read_quick_header(path, VALUE_ATTRIBUTES) is not None:
            quickly_read.append(path)
    assert differing == []
    names = {path.name for path in quickly_read}
    # Explicit VR (CT_small), implicit VR (the dicomdirtests CT series), an UN sequence of
    # undefined length, and compressed pixel data (J2K) all take the quick path.
    assert {"CT_small.dcm", "UN_sequence.dcm", "693_J2KI.dcm"} <= names
    assert sum("dicomdirtests" in str(path) for path in quickly_read) >= 20
    # Nothing but classic CT does: MR, Enhanced CT, broken and foreign files go to pydicom.
    for path in quickly_read:
        assert read_quick_header(path, VALUE_ATTRIBUTES).values["SOPClassUID"] == (
            "1.2.840.10008.5.1.4.1.1.2"
        )


def test_values_match_pydicom_on_the_files_it_reads(testdata, monkeypatch):
    settings = DicomSettings()
    path = testdata("CT_small.dcm")
    quick = read_file_header(path, settings)
    slow = _through_pydicom(path, settings, monkeypatch)
    assert quick.loaded_dataset is None and slow.loaded_dataset is not None
    assert quick.facts.values["ImageType"] == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert quick.facts.values["Rows"] == 128 and quick.facts.values["PixelSpacing"] == [
        0.661468,
        0.661468,
    ]
    assert replace(quick.facts, pixel_value=None) == slow.facts
    # The dataset is read on first use, and the pixels come out the same.
    assert quick.dataset.PatientName == slow.dataset.PatientName
    assert np.array_equal(stored_frames(quick), stored_frames(slow))


def _undefined_length_items(dataset: Dataset) -> Dataset:
    dataset.is_undefined_length_sequence_item = True
    return dataset


def _ct_with_nested_undefined_sequences(path: Path, testdata) -> Path:
    ds = dcmread(testdata("CT_small.dcm"))
    inner = Dataset()
    inner.CodeValue, inner.CodeMeaning = "T-D3000", "Chest"
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3.4"
    item.AnatomicRegionSequence = Sequence([_undefined_length_items(inner)])
    item.AnatomicRegionSequence.is_undefined_length = True
    ds.ReferencedImageSequence = Sequence([_undefined_length_items(item), Dataset()])
    ds["ReferencedImageSequence"].is_undefined_length = True
    ds.add_new(0x00091010, "LO", "vendor private")
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    dcmwrite(path, ds, enforce_file_format=True)
    return path


def test_nested_sequences_of_undefined_length_are_stepped_over(tmp_path, testdata, monkeypatch):
    path = _ct_with_nested_undefined_sequences(tmp_path / "nested.dcm", testdata)
    quick = read_quick_header(path, VALUE_ATTRIBUTES)
    assert quick is not None
    slow = _through_pydicom(path, DicomSettings(), monkeypatch)
    assert quick.values == slow.facts.values and quick.pixel_offset == slow.facts.pixel_offset
    assert np.array_equal(
        stored_frames(read_file_header(path, DicomSettings())), stored_frames(slow)
    )


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda ds: setattr(ds, "PatientID", "Müller"), id="non-ASCII text"),
        pytest.param(lambda ds: setattr(ds, "PatientID", "\x1b$BF|K\\"), id="ISO 2022 escape"),
        pytest.param(
            lambda ds: ds.__setitem__(
                0x00281053, RawDataElement(0x00281053, "DS", 4, b"1.0x", 0, False, True)
            ),
            id="unreadable number",
        ),
        pytest.param(
            lambda ds: setattr(ds, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.4"), id="MR class"
        ),
    ],
)
def test_what_it_does_not_handle_goes_to_pydicom(change, tmp_path, testdata, monkeypatch):
    ds = dcmread(testdata("CT_small.dcm"))
    change(ds)
    path = tmp_path / "changed.dcm"
    dcmwrite(path, ds, enforce_file_format=True)
    assert read_quick_header(path, VALUE_ATTRIBUTES) is None
    settings = DicomSettings()
    assert _same_verdict(
        read_file_header(path, settings), _through_pydicom(path, settings, monkeypatch)
    )


def test_a_header_cut_short_goes_to_pydicom(tmp_path, testdata):
    data = testdata("CT_small.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:700])  # inside the header
    assert read_quick_header(cut, VALUE_ATTRIBUTES) is None
    assert isinstance(read_file_header(cut, DicomSettings()), QuarantineEntry)


def test_a_header_longer_than_the_first_read_is_read_to_its_end(tmp_path, testdata, monkeypatch):
    ds = dcmread(testdata("CT_small.dcm"))
    ds.add_new(0x00091010, "LO", "vendor")
    ds.add_new(0x00091011, "OB", bytes(200_000))  # a large private blob before the pixels
    path = tmp_path / "long_header.dcm"
    dcmwrite(path, ds, enforce_file_format=True)
    quick = read_quick_header(path, VALUE_ATTRIBUTES)
    assert quick is not None and quick.pixel_offset > 200_000
    slow = _through_pydicom(path, DicomSettings(), monkeypatch)
    assert quick.values == slow.facts.values and quick.pixel_offset == slow.facts.pixel_offset
    header = read_file_header(path, DicomSettings())
    assert np.array_equal(stored_frames(header), stored_frames(slow))


def _with_huge_private_element(source: Path, path: Path, size: int) -> None:
    """`source` with a private OB element of `size` zero bytes before the pixels, written as
    a sparse file so that the test costs no disk."""
    ds = dcmread(source)
    ds.add_new(0x00091010, "LO", "vendor")
    ds.add_new(0x00091011, "OB", b"\xab\xcd\xef\x01")
    dcmwrite(path, ds, enforce_file_format=True)
    data = path.read_bytes()
    element = data.index(b"\x09\x00\x11\x10OB\x00\x00\x04\x00\x00\x00\xab\xcd\xef\x01")
    value = element + 12
    with path.open("wb") as file:
        file.write(data[: element + 8] + size.to_bytes(4, "little"))
        file.seek(value + size)  # a hole of `size` zero bytes
        file.write(data[value + 4 :])


PEAK_MEMORY = """
import resource, sys
from pathlib import Path
from radreport.data.settings import DicomSettings
from radreport.dicom.deidentify import identifying_values
from radreport.dicom.header import VALUE_ATTRIBUTES, read_file_header
from radreport.dicom.quick_header import read_quick_header
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
header = read_quick_header(Path(sys.argv[1]), VALUE_ATTRIBUTES)
# The study's identifiers come from its whole header, loaded when first asked for.
names = identifying_values(read_file_header(Path(sys.argv[1]), DicomSettings()).dataset)
grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(header is not None, header.pixel_offset if header else 0, "1CT1" in names, grown_kib)
"""


def test_a_huge_private_element_is_stepped_over_not_read(tmp_path, testdata):
    size = 1 << 30
    path = tmp_path / "huge_private.dcm"
    _with_huge_private_element(testdata("CT_small.dcm"), path, size)
    result = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY, str(path)], capture_output=True, text=True, check=True
    )
    found, pixel_offset, has_patient_id, grown_kib = result.stdout.split()
    assert found == has_patient_id == "True" and int(pixel_offset) > size
    assert int(grown_kib) < 64 * 1024  # 3 GiB before: read whole, twice, then pydicom
