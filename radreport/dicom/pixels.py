"""Stored pixel values and Hounsfield units of the files that passed the header pass.

The header pass kept each dataset without its pixels and the file offset of the pixel data
element. Uncompressed little-endian data (most CT) is then read straight into numpy from
that offset; everything else goes through pydicom's decoders, fed only the Image Pixel
group and the pixel data element, so no file is parsed twice. JPEG 2000 / JPEG / JPEG-LS
decode through python-gdcm (Apache-2.0), installed on purpose instead of the pylibjpeg
plugins, which are partly GPLv3.
"""

from __future__ import annotations

import struct

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from radreport.dicom.header import FileHeader, declared_pixel_bytes
from radreport.dicom.quiet import decoder_message
from radreport.dicom.windows import HU_MAX, HU_MIN

IMAGE_PIXEL_GROUP = 0x0028
PIXEL_DATA_TAG = (0x7FE0, 0x0010)
UNDEFINED_LENGTH = 0xFFFFFFFF


class PixelDecodeError(RuntimeError):
    """The pixel data of the file at `path` could not be decoded; `truncated` tells why."""

    def __init__(self, path: str, message: str, truncated: bool):
        super().__init__(message)
        self.path = path
        self.truncated = truncated


def _native_value_span(header: FileHeader) -> tuple[int, int] | None:
    """(offset, length) of an uncompressed little-endian Pixel Data value, or None when the
    element is encoded any other way."""
    syntax = header.facts.transfer_syntax
    if syntax not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        return None
    if header.facts.integer("BitsAllocated") not in (8, 16, 32):
        return None
    if header.facts.pixel_value is not None:  # the quick header reader saw the element
        return header.facts.pixel_value
    with open(header.path, "rb") as fp:
        fp.seek(header.facts.pixel_offset)
        element = fp.read(12)
    if len(element) < 8 or struct.unpack("<HH", element[:4]) != PIXEL_DATA_TAG:
        return None
    if syntax == ImplicitVRLittleEndian:
        (length,) = struct.unpack("<I", element[4:8])
        start = 8
    else:  # OB / OW: tag, VR, 2 reserved bytes, 4-byte length
        (length,) = struct.unpack("<I", element[8:12])
        start = 12
    if length == UNDEFINED_LENGTH:
        return None
    return header.facts.pixel_offset + start, length


def _native_frames(header: FileHeader, offset: int, length: int) -> np.ndarray:
    facts = header.facts
    bits_allocated, bits_stored = facts.integer("BitsAllocated"), facts.integer("BitsStored")
    signed = facts.integer("PixelRepresentation") == 1
    if length < declared_pixel_bytes(facts):
        message = f"{length} pixel bytes, {declared_pixel_bytes(facts)} declared"
        raise PixelDecodeError(header.path, message, truncated=True)
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits_allocated // 8}")
    shape = (facts.integer("NumberOfFrames", 1), facts.integer("Rows"), facts.integer("Columns"))
    stored = np.fromfile(header.path, dtype=dtype, count=int(np.prod(shape)), offset=offset)
    unused = bits_allocated - bits_stored
    if unused:
        # Bits above BitsStored may hold anything (old overlays): shift them out, and let
        # the arithmetic right shift of a signed type restore the sign.
        stored = (stored << unused) >> unused if signed else stored & ((1 << bits_stored) - 1)
    return stored.reshape(shape)


def _dataset_with_pixels(header: FileHeader) -> Dataset:
    """The Image Pixel group of the kept header plus the file's pixel data element."""
    syntax = header.facts.transfer_syntax
    if syntax.is_deflated:
        # Offsets of a deflated dataset point into the inflated stream: read the file again.
        return dcmread(header.path)
    dataset = header.dataset.group_dataset(IMAGE_PIXEL_GROUP)  # all a decoder reads
    dataset.file_meta = header.dataset.file_meta
    with open(header.path, "rb") as fp:
        fp.seek(header.facts.pixel_offset)
        dataset.update(read_dataset(fp, syntax.is_implicit_VR, syntax.is_little_endian))
    return dataset


def stored_frames(header: FileHeader) -> np.ndarray:
    """(frames, rows, columns) stored values of one file."""
    try:
        span = _native_value_span(header)
        if span:
            return _native_frames(header, *span)
        frames = _dataset_with_pixels(header).pixel_array
    except PixelDecodeError:
        raise
    except ValueError as error:
        # pydicom says "number of bytes of pixel data is less than expected" for short data
        truncated = "less than expected" in str(error)
        message = decoder_message(str(error), header.path)
        raise PixelDecodeError(header.path, message, truncated) from error
    except Exception as error:  # corrupt codestream, failing plugin, odd element layout
        message = decoder_message(f"{type(error).__name__}: {error}", header.path)
        raise PixelDecodeError(header.path, message, truncated=False) from error
    return frames.reshape(-1, *frames.shape[-2:])


def clip_stored_to_ct_range(
    stored: np.ndarray, slope: np.ndarray, intercept: np.ndarray
) -> np.ndarray:
    """Clip float (slices, rows, columns) stored values in place so that their HU lie in the
    CT range: the same as clipping the HU, without computing HU at full resolution."""
    slope = np.asarray(slope, dtype=np.float64).reshape(-1, 1, 1)
    intercept = np.asarray(intercept, dtype=np.float64).reshape(-1, 1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ends = ((HU_MIN - intercept) / slope, (HU_MAX - intercept) / slope)
    lower, upper = np.minimum(*ends), np.maximum(*ends)
    flat = slope == 0  # every HU is the intercept: nothing to clip in stored units
    lower, upper = np.where(flat, -np.inf, lower), np.where(flat, np.inf, upper)
    return np.clip(stored, lower.astype(np.float32), upper.astype(np.float32), out=stored)


def to_hounsfield(stored: np.ndarray, slope: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """HU = stored * slope + intercept per slice, in float32, clipped to the CT range."""
    slope = np.asarray(slope, dtype=np.float32).reshape(-1, 1, 1)
    intercept = np.asarray(intercept, dtype=np.float32).reshape(-1, 1, 1)
    hounsfield = stored.astype(np.float32) * slope + intercept
    return np.clip(hounsfield, HU_MIN, HU_MAX, out=hounsfield)
