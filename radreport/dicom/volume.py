"""Build the model's input volume from an ordered, checked series.

HU (per-slice rescale) -> tilt correction when configured -> resize to depth x height x
width in HU (one channel, cheaper than three, and windowing after interpolation is what a
viewer does) -> lung / mediastinal / bone windows -> compact storage.
"""

from __future__ import annotations

import numpy as np

from radreport.data.settings import DicomSettings
from radreport.dicom.geometry import StackGeometry
from radreport.dicom.header import FileHeader
from radreport.dicom.pixels import stored_frames, to_hounsfield
from radreport.dicom.resample import resize_volume, shift_slices
from radreport.dicom.windows import to_storage


def series_hounsfield(geometry: StackGeometry, headers: dict[str, FileHeader]) -> np.ndarray:
    """(slices, rows, columns) float32 HU in spatial order; each file is decoded once.
    Raises PixelDecodeError naming the first file that fails."""
    paths = dict.fromkeys(s.path for s in geometry.slices)
    decoded = {path: stored_frames(headers[path]) for path in paths}
    stored = np.stack([decoded[s.path][s.frame] for s in geometry.slices])
    slopes = [s.rescale_slope for s in geometry.slices]
    intercepts = [s.rescale_intercept for s in geometry.slices]
    return to_hounsfield(stored, slopes, intercepts)


def build_volume(
    geometry: StackGeometry, headers: dict[str, FileHeader], settings: DicomSettings
) -> np.ndarray:
    """(3, depth, height, width) windows in the configured storage dtype."""
    hounsfield = series_hounsfield(geometry, headers)
    if geometry.tilt_degrees > settings.max_tilt_degrees:
        hounsfield = shift_slices(hounsfield, geometry.in_plane_shift_px)
    shape = (settings.depth, settings.height, settings.width)
    resized = resize_volume(hounsfield, geometry.positions_mm, shape)
    return to_storage(resized, settings.storage_dtype)
