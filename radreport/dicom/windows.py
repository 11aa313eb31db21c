"""Fixed CT display windows as image channels, and their compact storage.

A window (level L, width W) maps [L - W/2, L + W/2] HU linearly onto [0, 1] and clips the
rest; lung, mediastinal and bone windows together keep air, soft-tissue and bone contrast
that a single 0-1 rescale of the full HU range would flatten.
"""

from __future__ import annotations

import numpy as np

CT_WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinal": (40.0, 400.0),
    "bone": (400.0, 1800.0),
}
CHANNELS = tuple(CT_WINDOWS)


def window_channels(hounsfield: np.ndarray) -> np.ndarray:
    """(...) HU -> (3, ...) float32 in [0, 1], channels in CHANNELS order."""
    levels = np.array([level for level, _ in CT_WINDOWS.values()], dtype=np.float32)
    widths = np.array([width for _, width in CT_WINDOWS.values()], dtype=np.float32)
    expand = (slice(None),) + (None,) * hounsfield.ndim
    lower = (levels - widths / 2)[expand]
    scaled = (hounsfield[None].astype(np.float32) - lower) / widths[expand]
    return np.clip(scaled, 0.0, 1.0, out=scaled)


def to_storage(channels: np.ndarray, dtype: str) -> np.ndarray:
    """[0, 1] floats as uint8 (0-255, 4x smaller than float32) or float16."""
    if dtype == "uint8":
        return np.rint(channels * 255.0).astype(np.uint8)
    return channels.astype(np.float16)


def from_storage(stored: np.ndarray) -> np.ndarray:
    """Back to float32 in [0, 1] for a model."""
    if stored.dtype == np.uint8:
        return stored.astype(np.float32) / 255.0
    return stored.astype(np.float32)
