"""Per-slice geometry and rescale of a CT file, classic (one slice) or Enhanced (many frames).

Enhanced CT keeps position, orientation, spacing and rescale in functional group sequences,
per frame or shared; readers that look only at the top-level tags (pydicom's
apply_modality_lut, MONAI) silently return raw stored values for such files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset

ENHANCED_MACROS = {
    "position": ("PlanePositionSequence", "ImagePositionPatient"),
    "orientation": ("PlaneOrientationSequence", "ImageOrientationPatient"),
    "spacing": ("PixelMeasuresSequence", "PixelSpacing"),
    "slope": ("PixelValueTransformationSequence", "RescaleSlope"),
    "intercept": ("PixelValueTransformationSequence", "RescaleIntercept"),
    "tilt": ("CTAcquisitionDetailsSequence", "GantryDetectorTilt"),
}


@dataclass(frozen=True)
class SliceHeader:
    """One 2-D slice: a whole classic CT file, or one frame of an Enhanced CT file."""

    path: str
    frame: int
    series_uid: str
    sop_uid: str
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]
    pixel_spacing: tuple[float, float]
    rows: int
    columns: int
    rescale_slope: float
    rescale_intercept: float
    gantry_tilt: float


# Direction cosines are written with a few decimals; a tenth of a degree is far inside this.
UNIT_TOLERANCE = 0.01


def unusable_value(slice_: SliceHeader) -> str | None:
    """Why a slice's geometry or rescale cannot place or scale its pixels, or None. Such
    a value (NaN, a zero spacing, an orientation that is not two perpendicular unit
    vectors) passes every type check and would give a blank or misplaced volume."""
    numbers = {
        "ImagePositionPatient": slice_.position,
        "ImageOrientationPatient": slice_.orientation,
        "PixelSpacing": slice_.pixel_spacing,
        "RescaleSlope": (slice_.rescale_slope,),
        "RescaleIntercept": (slice_.rescale_intercept,),
        "GantryDetectorTilt": (slice_.gantry_tilt,),
    }
    for name, values in numbers.items():
        if not all(math.isfinite(value) for value in values):
            return f"{name} is not a finite number"
    if slice_.rows < 1 or slice_.columns < 1:
        return "Rows or Columns is 0"
    if min(slice_.pixel_spacing) <= 0:
        return "PixelSpacing is not positive"
    if slice_.rescale_slope == 0:
        return "RescaleSlope is 0"
    row, column = slice_.orientation[:3], slice_.orientation[3:]
    lengths = (math.hypot(*row), math.hypot(*column))
    cosine = sum(r * c for r, c in zip(row, column, strict=True))
    if max(abs(length - 1) for length in lengths) > UNIT_TOLERANCE or abs(cosine) > UNIT_TOLERANCE:
        return "ImageOrientationPatient is not two perpendicular unit vectors"
    return None


def _floats(value: object, count: int, name: str) -> tuple[float, ...]:
    items = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    values = tuple(float(v) for v in items)
    if len(values) != count:
        raise ValueError(f"{name} has {len(values)} values, expected {count}")
    return values


def _enhanced_value(ds: Dataset, frame: int, field: str) -> object:
    """A functional group value: the frame's own group first, then the shared group."""
    sequence, keyword = ENHANCED_MACROS[field]
    groups = [ds.PerFrameFunctionalGroupsSequence[frame]]
    if "SharedFunctionalGroupsSequence" in ds:
        groups.append(ds.SharedFunctionalGroupsSequence[0])
    for group in groups:
        if sequence in group and keyword in group[sequence][0]:
            return group[sequence][0][keyword].value
    return None


def classic_slice(values: Mapping[str, object], path: str) -> SliceHeader:
    """The slice of a CT Image Storage file, from its converted header values."""
    return SliceHeader(
        path=path,
        frame=0,
        series_uid=str(values["SeriesInstanceUID"]),
        sop_uid=str(values["SOPInstanceUID"]),
        position=_floats(values["ImagePositionPatient"], 3, "ImagePositionPatient"),
        orientation=_floats(values["ImageOrientationPatient"], 6, "ImageOrientationPatient"),
        pixel_spacing=_floats(values["PixelSpacing"], 2, "PixelSpacing"),
        rows=int(values["Rows"]),
        columns=int(values["Columns"]),
        rescale_slope=float(values["RescaleSlope"]),
        rescale_intercept=float(values["RescaleIntercept"]),
        gantry_tilt=float(values.get("GantryDetectorTilt") or 0.0),
    )


class MissingFunctionalGroup(ValueError):
    """An Enhanced CT frame without a value its functional groups must carry."""


def _enhanced_slice(ds: Dataset, path: str, frame: int) -> SliceHeader:
    def value(field: str, default: object = None) -> object:
        found = _enhanced_value(ds, frame, field)
        if found is None and default is None:
            sequence, keyword = ENHANCED_MACROS[field]
            raise MissingFunctionalGroup(
                f"frame {frame + 1} has no {keyword} in a {sequence} of its functional groups"
            )
        return default if found is None else found

    return SliceHeader(
        path=path,
        frame=frame,
        series_uid=str(ds.SeriesInstanceUID),
        sop_uid=f"{ds.SOPInstanceUID}#{frame}",
        position=_floats(value("position"), 3, "ImagePositionPatient"),
        orientation=_floats(value("orientation"), 6, "ImageOrientationPatient"),
        pixel_spacing=_floats(value("spacing"), 2, "PixelSpacing"),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        # The CT Pixel Value Transformation macro is mandatory in Enhanced CT: without it,
        # a reader that assumed slope 1 and intercept 0 would store raw values as HU.
        rescale_slope=float(value("slope")),
        rescale_intercept=float(value("intercept")),
        gantry_tilt=float(value("tilt", 0.0)),
    )


def enhanced_slices(ds: Dataset, path: str) -> list[SliceHeader]:
    """One slice per frame of an Enhanced CT file. Raises ValueError, TypeError,
    AttributeError or IndexError when a geometry or rescale value is unusable."""
    return [_enhanced_slice(ds, path, frame) for frame in range(int(ds.NumberOfFrames))]
