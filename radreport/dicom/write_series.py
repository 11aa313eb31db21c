"""Write a Hounsfield volume as a real CT series: classic CT Image Storage (one file per
slice) or one Enhanced CT multi-frame file, with consistent patient-space geometry.

Used by the demo generator; the stored-value encodings vary on purpose (signed, unsigned
with intercept -1024, a slope of 0.5) so ingestion must apply each file's own rescale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)

Encoding = Literal["signed", "unsigned", "scaled"]
# stored = (HU - intercept) / slope, with the pixel representation that holds the range
ENCODINGS: dict[str, tuple[float, float, int]] = {
    "signed": (1.0, 0.0, 1),
    "unsigned": (1.0, -1024.0, 0),
    "scaled": (0.5, -1024.0, 0),
}


@dataclass(frozen=True)
class SeriesLayout:
    """Where the slices sit and how their values are stored."""

    pixel_spacing_mm: float
    slice_spacing_mm: float
    origin_mm: tuple[float, float, float]  # position of the first (lowest) slice's first pixel
    encoding: Encoding = "signed"
    rle: bool = False
    descending_instance_numbers: bool = False

    def position(self, index: int) -> list[float]:
        x, y, z = self.origin_mm
        return [round(x, 4), round(y, 4), round(z + index * self.slice_spacing_mm, 4)]


def encode(hounsfield: np.ndarray, encoding: Encoding) -> tuple[np.ndarray, float, float]:
    slope, intercept, signed = ENCODINGS[encoding]
    stored = np.rint((hounsfield - intercept) / slope)
    info = np.iinfo(np.int16 if signed else np.uint16)
    stored = np.clip(stored, info.min, info.max).astype(np.int16 if signed else np.uint16)
    return stored, slope, intercept


def _uid(seed: str, *parts: object) -> str:
    return str(generate_uid(entropy_srcs=[seed, *map(str, parts)]))


def _image_pixel_module(ds: Dataset, rows: int, columns: int, encoding: Encoding) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = ENCODINGS[encoding][2]


def _file_meta(sop_class: str, sop_instance: str, syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _series_dataset(study: Dataset, seed: str, sop_class: str) -> Dataset:
    ds = Dataset()
    ds.update(study)
    ds.SOPClassUID = sop_class
    ds.Modality = "CT"
    ds.SeriesInstanceUID = _uid(seed, "series")
    ds.FrameOfReferenceUID = _uid(seed, "frame-of-reference")
    ds.SeriesNumber = 2
    ds.PatientPosition = "HFS"
    ds.BodyPartExamined = "CHEST"
    return ds


def write_ct_series(
    hounsfield: np.ndarray, folder: Path, study: Dataset, layout: SeriesLayout, seed: str
) -> list[Path]:
    """One CT Image Storage file per slice; `study` holds patient and study attributes."""
    folder.mkdir(parents=True, exist_ok=True)
    stored, slope, intercept = encode(hounsfield, layout.encoding)
    ds = _series_dataset(study, seed, CTImageStorage)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [layout.pixel_spacing_mm] * 2
    ds.SliceThickness = layout.slice_spacing_mm
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "HU"
    _image_pixel_module(ds, *stored.shape[1:], layout.encoding)
    syntax = RLELossless if layout.rle else ExplicitVRLittleEndian
    count = len(stored)
    paths = []
    for index in range(count):
        number = count - index if layout.descending_instance_numbers else index + 1
        ds.SOPInstanceUID = _uid(seed, "slice", index)
        ds.InstanceNumber = number
        ds.ImagePositionPatient = layout.position(index)
        ds.SliceLocation = layout.position(index)[2]
        ds.file_meta = _file_meta(CTImageStorage, ds.SOPInstanceUID, ExplicitVRLittleEndian)
        ds.PixelData = stored[index].tobytes()
        if layout.rle:
            ds.compress(syntax, generate_instance_uid=False)
        path = folder / f"IM{number:04d}.dcm"
        dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths


def _frame_group(layout: SeriesLayout, index: int) -> Dataset:
    position = Dataset()
    position.ImagePositionPatient = layout.position(index)
    content = Dataset()
    content.InStackPositionNumber = index + 1
    group = Dataset()
    group.PlanePositionSequence = Sequence([position])
    group.FrameContentSequence = Sequence([content])
    return group


def _shared_group(layout: SeriesLayout, slope: float, intercept: float) -> Dataset:
    measures = Dataset()
    measures.PixelSpacing = [layout.pixel_spacing_mm] * 2
    measures.SliceThickness = layout.slice_spacing_mm
    orientation = Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    rescale = Dataset()
    rescale.RescaleSlope, rescale.RescaleIntercept, rescale.RescaleType = slope, intercept, "HU"
    group = Dataset()
    group.PixelMeasuresSequence = Sequence([measures])
    group.PlaneOrientationSequence = Sequence([orientation])
    group.PixelValueTransformationSequence = Sequence([rescale])
    return group


def write_enhanced_ct(
    hounsfield: np.ndarray, path: Path, study: Dataset, layout: SeriesLayout, seed: str
) -> Path:
    """One Enhanced CT file; rescale lives only in the shared functional group, as in
    scanners' multi-frame exports."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stored, slope, intercept = encode(hounsfield, layout.encoding)
    ds = _series_dataset(study, seed, EnhancedCTImageStorage)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.SOPInstanceUID = _uid(seed, "enhanced")
    ds.InstanceNumber = 1
    ds.NumberOfFrames = len(stored)
    ds.SharedFunctionalGroupsSequence = Sequence([_shared_group(layout, slope, intercept)])
    ds.PerFrameFunctionalGroupsSequence = Sequence(
        [_frame_group(layout, index) for index in range(len(stored))]
    )
    _image_pixel_module(ds, *stored.shape[1:], layout.encoding)
    ds.file_meta = _file_meta(EnhancedCTImageStorage, ds.SOPInstanceUID, ExplicitVRLittleEndian)
    ds.PixelData = stored.tobytes()
    dcmwrite(path, ds, enforce_file_format=True)
    return path


def write_localizer(
    hounsfield: np.ndarray, folder: Path, study: Dataset, layout: SeriesLayout, seed: str
) -> Path:
    """A coronal scout (the volume averaged front to back) in its own series, as scanners
    store it beside the axial series; ingestion must skip it."""
    folder.mkdir(parents=True, exist_ok=True)
    projection = hounsfield.mean(axis=1)[::-1]  # rows run from head to feet
    stored, slope, intercept = encode(projection, "signed")
    ds = _series_dataset(study, f"{seed}/localizer", CTImageStorage)
    ds.SeriesNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.SOPInstanceUID = _uid(seed, "localizer")
    ds.InstanceNumber = 1
    top = layout.position(len(hounsfield) - 1)
    ds.ImagePositionPatient = [top[0], 0.0, top[2]]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.PixelSpacing = [layout.slice_spacing_mm, layout.pixel_spacing_mm]
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    _image_pixel_module(ds, *stored.shape, "signed")
    ds.file_meta = _file_meta(CTImageStorage, ds.SOPInstanceUID, ExplicitVRLittleEndian)
    ds.PixelData = stored.tobytes()
    path = folder / "SCOUT0001.dcm"
    dcmwrite(path, ds, enforce_file_format=True)
    return path
