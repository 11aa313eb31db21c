"""Resize by position-aware linear filters; CT windows as channels."""

from __future__ import annotations

import numpy as np

from radreport.dicom.resample import (
    _along_columns,
    _along_rows,
    _pixel_axis_matrix,
    cell_centres,
    resampling_matrix,
    resize_in_plane,
    resize_volume,
)
from radreport.dicom.windows import CHANNELS, from_storage, to_storage, window_channels


def test_same_grid_is_the_identity_and_rows_sum_to_one():
    matrix = resampling_matrix(np.arange(6.0), np.arange(6.0))
    np.testing.assert_allclose(matrix, np.eye(6))
    shrink = resampling_matrix(np.arange(300.0), cell_centres(-0.5, 299.5, 32))
    np.testing.assert_allclose(shrink.sum(axis=1), 1.0, rtol=1e-6)


def test_shrinking_averages_so_a_one_slice_spot_survives():
    volume = np.zeros((300, 4, 4), dtype=np.float32)
    volume[150] = 1000.0  # one bright slice among 300
    resized = resize_volume(volume, np.arange(300) * 1.0, (32, 4, 4))
    assert resized.max() > 50  # picking every ~9th slice could miss it entirely
    np.testing.assert_allclose(resized.sum() * 300 / 32, volume.sum(), rtol=0.05)


def test_slices_are_placed_by_position_across_a_gap():
    positions = np.array([0.0, 1.0, 2.0, 10.0])
    volume = (positions * 100).astype(np.float32)[:, None, None] * np.ones((1, 2, 2), np.float32)
    resized = resize_volume(volume, positions, (10, 2, 2))[:, 0, 0]
    assert np.all(np.diff(resized) >= 0)  # values follow the position, not the index
    assert resized[5] > 300  # half-way up the extent lies inside the gap, near 5 mm


def test_windows_map_their_level_to_the_middle_and_clip_outside():
    hounsfield = np.array([-600.0, 40.0, 400.0, -1024.0, 3071.0], dtype=np.float32)
    channels = window_channels(hounsfield)
    assert channels.shape == (len(CHANNELS), 5) and CHANNELS == ("lung", "mediastinal", "bone")
    assert channels[0, 0] == 0.5 and channels[1, 1] == 0.5 and channels[2, 2] == 0.5
    assert channels.min() == 0.0 and channels.max() == 1.0
    assert channels[1, 3] == 0.0 and channels[1, 4] == 1.0
    stored = to_storage(hounsfield, "uint8")
    assert stored.dtype == np.uint8 and stored[0, 0] == 128
    np.testing.assert_allclose(from_storage(stored), channels, atol=0.5 / 255 + 1e-6)
    half = to_storage(hounsfield, "float16")
    assert half.dtype == np.float16
    np.testing.assert_allclose(from_storage(half), channels, atol=1e-3)


def test_banded_products_equal_the_dense_ones():
    rng = np.random.default_rng(0)
    for size, new_size in ((512, 128), (333, 128), (130, 128), (64, 128), (5, 3)):
        volume = rng.normal(size=(3, size, size + 1)).astype(np.float32)
        rows = _pixel_axis_matrix(size, new_size)
        columns = _pixel_axis_matrix(size + 1, new_size)
        np.testing.assert_allclose(_along_rows(rows, volume), rows @ volume, atol=1e-5)
        np.testing.assert_allclose(_along_columns(columns, volume), volume @ columns.T, atol=1e-5)


def test_in_plane_resize_commutes_with_a_per_slice_rescale():
    rng = np.random.default_rng(2)
    volume = rng.normal(size=(3, 40, 36)).astype(np.float32) * 500
    slopes = np.array([1.0, 2.0, 0.5], dtype=np.float32).reshape(-1, 1, 1)
    intercepts = np.array([-1024.0, 0.0, 30.0], dtype=np.float32).reshape(-1, 1, 1)
    rescaled_first = resize_in_plane(volume * slopes + intercepts, 16, 12)
    rescaled_after = resize_in_plane(volume, 16, 12) * slopes + intercepts
    np.testing.assert_allclose(rescaled_first, rescaled_after, atol=1e-2)
