"""Slice order and stack checks on pydicom's real series and on constructed stacks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pydicom

from radreport.data.quarantine import Reason
from radreport.dicom.geometry import GeometryProblem, StackGeometry, stack_geometry
from radreport.dicom.header import read_file_header
from radreport.dicom.resample import shift_slices


def _slices(paths, settings):
    return [s for path in paths for s in read_file_header(path, settings).slices]


def test_ct5n_is_ordered_by_position_not_instance_number(series_files, permissive):
    paths = series_files("98892001/CT5N")
    geometry = stack_geometry(_slices(paths, permissive), permissive)
    assert isinstance(geometry, StackGeometry)
    assert np.all(np.diff(geometry.positions_mm) > 0)
    numbers = [int(pydicom.dcmread(s.path).InstanceNumber) for s in geometry.slices]
    # InstanceNumber falls while the position rises: sorting by it would reverse the stack.
    assert numbers == sorted(numbers, reverse=True)
    assert geometry.median_spacing_mm == 2.5


def test_ct2_gap_is_detected(series_files, permissive):
    geometry = stack_geometry(_slices(series_files("77654033/CT2"), permissive), permissive)
    assert isinstance(geometry, GeometryProblem)
    assert geometry.reason == Reason.IRREGULAR_SPACING
    assert "slices 1 and 2 (in position order) are 202.50 mm apart" in geometry.message
    assert "the median step is 1.25 mm" in geometry.message


def test_ct2_gap_is_accepted_for_resampling_when_configured(series_files, permissive):
    settings = permissive.model_copy(update={"irregular_spacing": "resample"})
    geometry = stack_geometry(_slices(series_files("77654033/CT2"), settings), settings)
    assert isinstance(geometry, StackGeometry)
    assert geometry.irregular
    assert np.ptp(geometry.positions_mm) > 200


def test_too_few_slices_and_duplicate_positions(series_files, permissive):
    slices = _slices(series_files("98892001/CT5N"), permissive)
    strict = permissive.model_copy(update={"min_slices": 10})
    assert stack_geometry(slices, strict).reason == Reason.TOO_FEW_SLICES
    doubled = [*slices, replace(slices[0], sop_uid="another")]
    assert stack_geometry(doubled, permissive).reason == Reason.DUPLICATE_SLICE_POSITION


def _tilted_stack(slices, shift_mm_per_slice: float):
    ordered = sorted(slices, key=lambda s: s.position[2])
    return [
        replace(s, position=(s.position[0], s.position[1] + k * shift_mm_per_slice, s.position[2]))
        for k, s in enumerate(ordered)
    ]


def test_gantry_tilt_is_quarantined_or_sheared_back(series_files, permissive):
    slices = _tilted_stack(_slices(series_files("98892001/CT5N"), permissive), 1.0)
    problem = stack_geometry(slices, permissive)
    assert problem.reason == Reason.GANTRY_TILT  # atan(1 / 2.5) is about 22 degrees
    settings = permissive.model_copy(update={"gantry_tilt": "resample"})
    geometry = stack_geometry(slices, settings)
    assert 21 < geometry.tilt_degrees < 23
    rows_per_slice = 1.0 / geometry.pixel_spacing_mm[0]
    np.testing.assert_allclose(geometry.in_plane_shift_px[:, 0], rows_per_slice * np.arange(5))
    # Each tilted slice starts further along the rows, so a rod along the normal sits on an
    # earlier row in every slice; shearing back must put it on the same row everywhere.
    volume = np.zeros((5, 64, 8), dtype=np.float32)
    for k, shift in enumerate(geometry.in_plane_shift_px[:, 0]):
        volume[k, 40 - int(round(shift)), 4] = 1.0
    shift = np.round(geometry.in_plane_shift_px)
    corrected = shift_slices(volume, shift)
    assert [int(np.argmax(corrected[k, :, 4])) for k in range(5)] == [40] * 5
    assert [int(np.argmax(volume[k, :, 4])) for k in range(5)] != [40] * 5


def test_a_stated_gantry_tilt_counts_even_with_straight_positions(series_files, permissive):
    slices = [
        replace(s, gantry_tilt=-22.0) for s in _slices(series_files("98892001/CT5N"), permissive)
    ]
    assert stack_geometry(slices, permissive).reason == Reason.GANTRY_TILT
