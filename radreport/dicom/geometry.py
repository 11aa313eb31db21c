"""Slice order and stack geometry of one series, judged from positions alone.

Slices are ordered by the projection of ImagePositionPatient on the slice normal (the cross
product of the two ImageOrientationPatient directions). InstanceNumber is never used: in
pydicom's dicomdirtests/98892001/CT5N it rises while the position falls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radreport.data.quarantine import Reason
from radreport.data.settings import DicomSettings
from radreport.dicom.slices import SliceHeader

ORIENTATION_ATOL = 1e-4
SAME_POSITION_MM = 1e-3


@dataclass(frozen=True)
class StackGeometry:
    """A series' slices in spatial order, with what resampling needs to know."""

    slices: list[SliceHeader]
    positions_mm: np.ndarray  # along the normal, increasing
    in_plane_shift_px: np.ndarray  # (n, 2): row and column offset of each slice's origin
    pixel_spacing_mm: tuple[float, float]
    median_spacing_mm: float
    irregular: bool
    tilt_degrees: float


@dataclass(frozen=True)
class GeometryProblem:
    reason: Reason
    message: str


def _directions(orientation: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    row = np.asarray(orientation[:3], dtype=np.float64)
    column = np.asarray(orientation[3:], dtype=np.float64)
    normal = np.cross(row, column)
    return row, column, normal / np.linalg.norm(normal)


def _inconsistency(slices: list[SliceHeader]) -> str | None:
    orientations = np.array([s.orientation for s in slices])
    if np.abs(orientations - orientations[0]).max() > ORIENTATION_ATOL:
        return "slices differ in ImageOrientationPatient"
    if len({(s.rows, s.columns) for s in slices}) > 1:
        return "slices differ in Rows/Columns"
    spacings = np.array([s.pixel_spacing for s in slices])
    if np.abs(spacings / spacings[0] - 1.0).max() > 1e-4:
        return "slices differ in PixelSpacing"
    return None


def _tilt_degrees(normal: np.ndarray, positions: np.ndarray, header_tilt: float) -> float:
    """Angle between the slice normal and the direction the slices are stacked along; a
    GantryDetectorTilt stated in the header counts even when positions hide it."""
    stacking = positions[-1] - positions[0]
    cosine = abs(float(stacking @ normal)) / float(np.linalg.norm(stacking))
    geometric = float(np.degrees(np.arccos(min(1.0, cosine))))
    return max(geometric, abs(header_tilt))


def stack_geometry(
    slices: list[SliceHeader], settings: DicomSettings
) -> StackGeometry | GeometryProblem:
    """Order the slices and check them; a problem names the quarantine reason."""
    minimum = max(2, settings.min_slices)
    if len(slices) < minimum:
        return GeometryProblem(Reason.TOO_FEW_SLICES, f"{len(slices)} slices, need {minimum}")
    inconsistency = _inconsistency(slices)
    if inconsistency:
        return GeometryProblem(Reason.INCONSISTENT_GEOMETRY, inconsistency)
    row, column, normal = _directions(slices[0].orientation)
    positions = np.array([s.position for s in slices], dtype=np.float64)
    order = np.argsort(positions @ normal, kind="stable")
    positions = positions[order]
    along_normal = positions @ normal
    steps = np.diff(along_normal)
    if np.any(steps < SAME_POSITION_MM):
        return GeometryProblem(Reason.DUPLICATE_SLICE_POSITION, "two slices share a position")
    median = float(np.median(steps))
    worst = float(np.max(np.abs(steps - median)))
    irregular = worst > settings.spacing_rtol * median
    if irregular and settings.irregular_spacing == "quarantine":
        message = f"spacing deviates {worst:.2f} mm from the median {median:.2f} mm"
        return GeometryProblem(Reason.IRREGULAR_SPACING, message)
    tilt = _tilt_degrees(normal, positions, max(abs(s.gantry_tilt) for s in slices))
    if tilt > settings.max_tilt_degrees and settings.gantry_tilt == "quarantine":
        return GeometryProblem(Reason.GANTRY_TILT, f"stack tilted by {tilt:.1f} degrees")
    offsets = positions - positions[0]
    spacing = slices[0].pixel_spacing  # (between rows, between columns) in mm
    shift = np.stack([offsets @ column / spacing[0], offsets @ row / spacing[1]], axis=1)
    return StackGeometry(
        slices=[slices[i] for i in order],
        positions_mm=along_normal,
        in_plane_shift_px=shift,
        pixel_spacing_mm=spacing,
        median_spacing_mm=median,
        irregular=bool(irregular),
        tilt_degrees=tilt,
    )
