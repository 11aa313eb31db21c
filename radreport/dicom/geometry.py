"""Slice order and stack geometry of one series, judged from positions alone.

Slices are ordered by the projection of ImagePositionPatient on the slice normal (the cross
product of the two ImageOrientationPatient directions). InstanceNumber is never used: in
pydicom's dicomdirtests/98892001/CT5N it rises while the position falls.

Only axial series are read (the slice normal nearer the head-foot axis than the other two),
and every volume is built in one orientation, whatever the scanner wrote: depth from feet to
head, rows from front to back, columns from the patient's right to left (DICOM's patient
axes +z, +y, +x). A prone scan's images (rows and columns reversed) or a stack whose normal
points to the feet would otherwise reach the model mirrored.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

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
    # What turns the stored images into the one orientation (module docstring): swap rows
    # and columns (their directions run along y and x), then reverse each axis named.
    transposed: bool = False
    reverse_rows: bool = False
    reverse_columns: bool = False
    reverse_depth: bool = False


@dataclass(frozen=True)
class GeometryProblem:
    """Why a series cannot be read: `message` for each of its files, and `at` the message
    of each file at fault where some are (by path), so the user can find them."""

    reason: Reason
    message: str
    at: dict[str, str] = field(default_factory=dict)


def _directions(orientation: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    row = np.asarray(orientation[:3], dtype=np.float64)
    column = np.asarray(orientation[3:], dtype=np.float64)
    normal = np.cross(row, column)
    return row, column, normal / np.linalg.norm(normal)


_PLANES = ("sagittal", "coronal", "axial")  # by the patient axis the normal is nearest


def _not_axial(normal: np.ndarray) -> str | None:
    plane = _PLANES[int(np.argmax(np.abs(normal)))]
    if plane == "axial":
        return None
    degrees = float(np.degrees(np.arccos(min(1.0, abs(float(normal[2]))))))
    return (
        f"a {plane} series (its slice normal is {degrees:.0f} degrees from the head-foot "
        "axis): only axial series are read"
    )


def _to_one_orientation(row: np.ndarray, column: np.ndarray, normal: np.ndarray) -> dict:
    """How an axial series' stored images become rows along +y and columns along +x, and
    its stack (ordered along the normal) runs along +z."""
    transposed = abs(row[0]) < abs(row[1])  # moving along a row goes front-back, not sideways
    across, down = (column, row) if transposed else (row, column)
    return {
        "transposed": bool(transposed),
        "reverse_columns": bool(across[0] < 0),
        "reverse_rows": bool(down[1] < 0),
        "reverse_depth": bool(normal[2] < 0),
    }


def _odd_ones_out(slices: list[SliceHeader], keyword: str, key, shown) -> GeometryProblem:
    """The slices whose `key` differs from the most common one's are at fault."""
    common, count = Counter(key(s) for s in slices).most_common(1)[0]
    odd = [s for s in slices if key(s) != common]
    general = (
        f"slices differ in {keyword}: {len(odd)} of {len(slices)} differ from the others' "
        f"{shown(common)}"
    )
    at = {
        s.path: f"this file's {keyword} is {shown(key(s))}, where {count} other slices of "
        f"its series have {shown(common)}"
        for s in odd
    }
    return GeometryProblem(Reason.INCONSISTENT_GEOMETRY, general, at)


def _inconsistency(slices: list[SliceHeader]) -> GeometryProblem | None:
    orientations = np.array([s.orientation for s in slices])
    if np.abs(orientations - orientations[0]).max() > ORIENTATION_ATOL:
        return _odd_ones_out(
            slices,
            "ImageOrientationPatient",
            lambda s: tuple(round(v, 4) for v in s.orientation),
            lambda value: "\\".join(f"{v:g}" for v in value),
        )
    if len({(s.rows, s.columns) for s in slices}) > 1:
        return _odd_ones_out(
            slices, "Rows/Columns", lambda s: (s.rows, s.columns), lambda v: f"{v[0]}x{v[1]}"
        )
    spacings = np.array([s.pixel_spacing for s in slices])
    if np.abs(spacings / spacings[0] - 1.0).max() > 1e-4:
        return _odd_ones_out(
            slices,
            "PixelSpacing",
            lambda s: tuple(round(v, 4) for v in s.pixel_spacing),
            lambda v: f"{v[0]:g}\\{v[1]:g} mm",
        )
    return None


def _shared_positions(
    slices: list[SliceHeader], along_normal: np.ndarray, steps: np.ndarray
) -> GeometryProblem:
    """Every slice whose position another slice of the series shares is at fault."""
    close = np.flatnonzero(steps < SAME_POSITION_MM)
    shared = sorted({int(i) for i in close} | {int(i) + 1 for i in close})
    at = {
        slices[i].path: f"this file's slice shares its position ({along_normal[i]:.2f} mm along "
        "the slice normal) with another file of its series (a second acquisition, or a copy?)"
        for i in shared
    }
    message = f"{len(shared)} of {len(slices)} slices share their position with another"
    return GeometryProblem(Reason.DUPLICATE_SLICE_POSITION, message, at)


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
        return inconsistency
    row, column, normal = _directions(slices[0].orientation)
    not_axial = _not_axial(normal)
    if not_axial:
        return GeometryProblem(Reason.NOT_AXIAL, not_axial)
    positions = np.array([s.position for s in slices], dtype=np.float64)
    order = np.argsort(positions @ normal, kind="stable")
    positions = positions[order]
    along_normal = positions @ normal
    steps = np.diff(along_normal)
    if np.any(steps < SAME_POSITION_MM):
        return _shared_positions([slices[i] for i in order], along_normal, steps)
    median = float(np.median(steps))
    deviations = np.abs(steps - median)
    worst = int(np.argmax(deviations))
    irregular = float(deviations[worst]) > settings.spacing_rtol * median
    if irregular and settings.irregular_spacing == "quarantine":
        message = (
            f"slices {worst + 1} and {worst + 2} (in position order) are {steps[worst]:.2f} mm "
            f"apart, where the median step is {median:.2f} mm"
        )
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
        **_to_one_orientation(row, column, normal),
    )
