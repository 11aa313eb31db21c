"""Build the model's input volume from an ordered, checked series.

Stored values, clipped to the CT range in stored units -> tilt correction when configured
-> in-plane resize -> HU (per-slice rescale, on the small images) -> resample along the
slices by position (one channel, cheaper than three, and windowing after interpolation is
what a viewer does) -> lung / mediastinal / bone windows -> compact storage.
"""

from __future__ import annotations

import numpy as np

from radreport.data.settings import DicomSettings
from radreport.dicom.geometry import StackGeometry
from radreport.dicom.header import FileHeader, padding_range
from radreport.dicom.pixels import clip_stored_to_ct_range, stored_frames, to_hounsfield
from radreport.dicom.resample import resample_slices, resize_in_plane, shift_slices
from radreport.dicom.windows import HU_MIN, to_storage


def series_stored(geometry: StackGeometry, headers: dict[str, FileHeader]) -> np.ndarray:
    """(slices, rows, columns) float32 stored values in spatial order, each slice clipped
    to the CT range in its own stored units; each file is decoded once. Raises
    PixelDecodeError naming the first file that fails."""
    paths = dict.fromkeys(s.path for s in geometry.slices)
    decoded = {path: stored_frames(headers[path]) for path in paths}
    paddings = {path: padding_range(headers[path].facts) for path in paths}
    first = decoded[geometry.slices[0].path]
    stored = np.empty((len(geometry.slices), *first.shape[1:]), dtype=np.float32)
    for index, slice_ in enumerate(geometry.slices):  # converts while copying: one pass
        stored[index] = decoded[slice_.path][slice_.frame]
        padding = paddings[slice_.path]
        if padding is not None:
            # Outside the field of view is air, whatever HU the padding value would map to
            # (an unsigned 63536 with intercept -1024 would be bone-white).
            frame = stored[index]
            air = (HU_MIN - slice_.rescale_intercept) / slice_.rescale_slope
            frame[(frame >= padding[0]) & (frame <= padding[1])] = air
    return clip_stored_to_ct_range(stored, *_rescale(geometry))


def _rescale(geometry: StackGeometry) -> tuple[list[float], list[float]]:
    return (
        [s.rescale_slope for s in geometry.slices],
        [s.rescale_intercept for s in geometry.slices],
    )


def build_volume(
    geometry: StackGeometry, headers: dict[str, FileHeader], settings: DicomSettings
) -> np.ndarray:
    """(3, depth, height, width) windows in the configured storage dtype.

    The rescale to HU is per slice and every in-plane step (tilt shift, resize) takes
    weighted means within a slice, so HU are computed after the in-plane resize, on the
    small images: at 512² that saves three passes over the full-resolution stack. The clip
    to the CT range happens first, in stored units, so padding outside the field of view
    cannot bleed into its neighbours."""
    stored = series_stored(geometry, headers)
    if geometry.tilt_degrees > settings.max_tilt_degrees:
        stored = shift_slices(stored, geometry.in_plane_shift_px)
    in_plane = _in_one_orientation(stored, geometry, settings)
    hounsfield = to_hounsfield(in_plane, *_rescale(geometry))
    resized = resample_slices(hounsfield, geometry.positions_mm, settings.depth)
    if geometry.reverse_depth:
        resized = resized[::-1]
    return to_storage(resized, settings.storage_dtype)


def _in_one_orientation(
    stored: np.ndarray, geometry: StackGeometry, settings: DicomSettings
) -> np.ndarray:
    """The in-plane resize, with rows and columns turned into the one orientation
    (geometry.py). Turned after the resize, on the small images: reversing an axis commutes
    with the resize (its cell centres are symmetric), and a transposed series is resized to
    the transposed shape."""
    if geometry.transposed:
        small = resize_in_plane(stored, settings.width, settings.height).transpose(0, 2, 1)
    else:
        small = resize_in_plane(stored, settings.height, settings.width)
    if geometry.reverse_rows:
        small = small[:, ::-1]
    if geometry.reverse_columns:
        small = small[:, :, ::-1]
    return np.ascontiguousarray(small)
