"""The header pass: read each file without its pixels and decide whether it can be used.

Checks run from the most basic to the most specific, so a broken file is reported as broken
(truncated, unparsable, missing its transfer syntax) whatever modality it claims, and a
well-formed file that we do not ingest (MR, a localizer, a burned-in screen capture) is
reported with the policy that excluded it.

The checks read a handful of values converted straight from the raw elements: pydicom's
attribute access builds a full DataElement per read, which made this pass cost more than
reading the whole file in a plain loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import get_decoder
from pydicom.uid import (
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    EnhancedCTImageStorage,
    JPEGExtended12Bit,
    LegacyConvertedEnhancedCTImageStorage,
)
from pydicom.values import convert_value

from radreport.data.quarantine import QuarantineEntry, Reason
from radreport.data.settings import DicomSettings
from radreport.dicom.quick_header import allowed_vrs, decimal_numbers, read_quick_header
from radreport.dicom.quiet import pydicom_silenced
from radreport.dicom.slices import (
    MissingFunctionalGroup,
    SliceHeader,
    classic_slice,
    enhanced_slices,
    unusable_value,
)
from radreport.dicom.sniff import SNIFF_BYTES, classify_non_dicom, starts_with_file_meta

CT_SOP_CLASSES = (CTImageStorage, EnhancedCTImageStorage, LegacyConvertedEnhancedCTImageStorage)
INTEGER_ATTRIBUTES = (
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "SamplesPerPixel",
    "PixelRepresentation",
    "NumberOfFrames",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
)
REQUIRED_ATTRIBUTES = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "SamplesPerPixel",
    "PhotometricInterpretation",
)
REQUIRED_CLASSIC_CT_ATTRIBUTES = (
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "RescaleSlope",
    "RescaleIntercept",
)
REQUIRED_ENHANCED_CT_ATTRIBUTES = ("NumberOfFrames", "PerFrameFunctionalGroupsSequence")
VALUE_ATTRIBUTES = tuple(
    dict.fromkeys(
        (
            *REQUIRED_ATTRIBUTES,
            *INTEGER_ATTRIBUTES,
            *REQUIRED_CLASSIC_CT_ATTRIBUTES,
            "PatientID",
            "ImageType",
            "BurnedInAnnotation",
            "GantryDetectorTilt",
            "PixelPaddingValue",
            "PixelPaddingRangeLimit",
            "AcquisitionNumber",
        )
    )
)
SEQUENCE_ATTRIBUTES = REQUIRED_ENHANCED_CT_ATTRIBUTES[1:]
NUMBER_STRINGS = {"DS": float, "IS": int}
# Tag and length in front of the pixel data value: 8 bytes at least (implicit VR).
PIXEL_ELEMENT_HEADER_BYTES = 8


class _Unreadable:
    """Stands for a value that could not be converted (e.g. '1A' in an IS element)."""


UNREADABLE = _Unreadable()


@dataclass(frozen=True)
class HeaderFacts:
    """What the checks look at: a few converted values, the file size and where the pixel
    data starts."""

    values: dict[str, object]
    transfer_syntax: UID | None
    size: int
    pixel_offset: int
    pixel_value: tuple[int, int] | None = None  # (offset, length), when the reader knew it

    def get(self, keyword: str) -> object:
        return self.values.get(keyword)

    def present(self, keyword: str) -> bool:
        return keyword in self.values

    def integer(self, keyword: str, default: int = 0) -> int:
        return int(self.values[keyword]) if keyword in self.values else default

    @property
    def has_pixel_data(self) -> bool:
        return self.size > self.pixel_offset


@dataclass
class FileHeader:
    """A usable CT file: checked values, slices, pixel offset, and its header dataset (no
    pixels) — read on first use when the quick reader made this header, which happens for
    one file per study (de-identification) and for compressed pixel data."""

    path: str
    facts: HeaderFacts
    slices: list[SliceHeader]
    loaded_dataset: Dataset | None = None

    @property
    def dataset(self) -> Dataset:
        if self.loaded_dataset is None:
            with pydicom_silenced():
                # Deferred: values are read by keyword only, and a private element may
                # be of any size.
                self.loaded_dataset = dcmread(self.path, stop_before_pixels=True, defer_size="1 MB")
        return self.loaded_dataset

    @property
    def study_uid(self) -> str:
        return str(self.facts.get("StudyInstanceUID"))

    @property
    def series_uid(self) -> str:
        return str(self.facts.get("SeriesInstanceUID"))

    @property
    def acquisition(self) -> str:
        """AcquisitionNumber as written ("" where absent): a series may hold two."""
        value = self.facts.get("AcquisitionNumber")
        return "" if value is None else str(value).strip()

    @property
    def sop_uid(self) -> str:
        return str(self.facts.get("SOPInstanceUID"))

    @property
    def patient_id(self) -> str:
        return str(self.facts.get("PatientID") or "")


def _converted(dataset: Dataset, keyword: str) -> object:
    """The value of `keyword`, None when absent or empty, UNREADABLE when unconvertible."""
    tag = tag_for_keyword(keyword)
    element = dataset.get_item(tag)
    if element is None:
        return None
    try:
        if isinstance(element, RawDataElement):
            # Implicit VR files carry no VR, and some writers mark known tags UN.
            vr = element.VR if element.VR not in (None, "UN") else dictionary_VR(tag)
            vr = allowed_vrs(vr)[0]  # US or SS: read as US, signed by padding_range
            number = NUMBER_STRINGS.get(vr)
            value = decimal_numbers(element.value, number) if number else convert_value(vr, element)
        else:
            value = element.value
    except Exception:  # any conversion failure means the same thing: an unusable value
        return UNREADABLE
    return None if value in (None, "", b"") else value


def _header_values(dataset: Dataset) -> dict[str, object]:
    values = {keyword: _converted(dataset, keyword) for keyword in VALUE_ATTRIBUTES}
    for keyword in SEQUENCE_ATTRIBUTES:
        if keyword in dataset:
            values[keyword] = dataset[keyword].value
    meta = getattr(dataset, "file_meta", None)
    if values["SOPClassUID"] is None and meta is not None:
        # A DICOMDIR or a stripped dataset names its class only in the file meta.
        values["SOPClassUID"] = meta.get("MediaStorageSOPClassUID") or None
    return {keyword: value for keyword, value in values.items() if value is not None}


def padding_range(facts: HeaderFacts) -> tuple[int, int] | None:
    """The stored values that mark padding outside the field of view (PixelPaddingValue, up
    to PixelPaddingRangeLimit when given), or None. Both have VR US or SS: a reader without
    the VR gets the unsigned 16 bits, signed here when PixelRepresentation says so."""
    if not facts.present("PixelPaddingValue"):
        return None
    signed = facts.integer("PixelRepresentation") == 1

    def value(keyword: str) -> int:
        number = int(facts.get(keyword))
        return number - 65536 if signed and number >= 32768 else number

    first = value("PixelPaddingValue")
    last = value("PixelPaddingRangeLimit") if facts.present("PixelPaddingRangeLimit") else first
    return min(first, last), max(first, last)


def _transfer_syntax(dataset: Dataset) -> UID | None:
    meta = getattr(dataset, "file_meta", None)
    value = meta.get("TransferSyntaxUID") if meta is not None else None
    return UID(value) if value else None


def _check_transfer_syntax(facts: HeaderFacts, settings: DicomSettings):
    if facts.transfer_syntax is None:
        return Reason.MISSING_TRANSFER_SYNTAX, "file meta has no (0002,0010) Transfer Syntax UID"
    return None


def _check_integer_values(facts: HeaderFacts, settings: DicomSettings):
    for keyword in INTEGER_ATTRIBUTES:
        if facts.present(keyword):
            try:
                int(facts.get(keyword))
            except (TypeError, ValueError):
                return Reason.INVALID_ATTRIBUTE_VALUE, f"{keyword} is not an integer"
    return None


def _has_pixel_module(facts: HeaderFacts) -> bool:
    return all(facts.present(k) for k in ("Rows", "Columns", "BitsAllocated", "SamplesPerPixel"))


def declared_pixel_bytes(facts: HeaderFacts) -> int:
    bits = (
        facts.integer("Rows")
        * facts.integer("Columns")
        * facts.integer("NumberOfFrames", 1)
        * facts.integer("SamplesPerPixel")
        * facts.integer("BitsAllocated")
    )
    return (bits + 7) // 8


def _check_size_limits(facts: HeaderFacts, settings: DicomSettings):
    if not _has_pixel_module(facts):
        return None
    frames = facts.integer("NumberOfFrames", 1)
    if max(facts.integer("Rows"), facts.integer("Columns")) > settings.max_rows_columns:
        return Reason.SIZE_LIMIT_EXCEEDED, f"rows/columns above {settings.max_rows_columns}"
    if frames > settings.max_frames:
        return Reason.SIZE_LIMIT_EXCEEDED, f"{frames} frames, above {settings.max_frames}"
    if declared_pixel_bytes(facts) > settings.max_pixel_bytes:
        return Reason.SIZE_LIMIT_EXCEEDED, f"declared pixel bytes above {settings.max_pixel_bytes}"
    return None


def _check_truncation(facts: HeaderFacts, settings: DicomSettings):
    """Native pixel data must fit in the bytes left after the header; compressed data is
    checked when it is decoded."""
    syntax = facts.transfer_syntax
    if not (facts.has_pixel_data and _has_pixel_module(facts)) or syntax.is_compressed:
        return None
    if syntax == DeflatedExplicitVRLittleEndian:
        return None  # offsets are inside the inflated stream, not the file
    available = facts.size - facts.pixel_offset - PIXEL_ELEMENT_HEADER_BYTES
    declared = declared_pixel_bytes(facts)
    if str(facts.get("PhotometricInterpretation")).strip() == "YBR_FULL_422":
        declared = declared * 2 // 3  # chroma stored at half horizontal resolution
    if available < declared:
        return Reason.PIXEL_DATA_TRUNCATED, f"{available} pixel bytes in file, {declared} declared"
    return None


def _missing(facts: HeaderFacts, keywords: tuple[str, ...]) -> list[str]:
    return [keyword for keyword in keywords if not facts.present(keyword)]


def _check_sop_class(facts: HeaderFacts, settings: DicomSettings):
    if not facts.present("SOPClassUID"):
        missing = ", ".join(_missing(facts, REQUIRED_ATTRIBUTES))
        return Reason.MISSING_REQUIRED_ATTRIBUTE, f"missing {missing}"
    sop_class = UID(str(facts.get("SOPClassUID")))
    if sop_class not in CT_SOP_CLASSES:
        return Reason.UNSUPPORTED_SOP_CLASS, f"{uid_name(sop_class)} is not CT"
    return None


def uid_name(uid: UID) -> str:
    """A standard UID's name; any other value is not quoted (it could hold anything)."""
    return uid.name if uid.name != str(uid) else "an unlisted UID"


def _check_required_ct_attributes(facts: HeaderFacts, settings: DicomSettings):
    classic = facts.get("SOPClassUID") == CTImageStorage
    extra = REQUIRED_CLASSIC_CT_ATTRIBUTES if classic else REQUIRED_ENHANCED_CT_ATTRIBUTES
    missing = _missing(facts, (*REQUIRED_ATTRIBUTES, *extra))
    if missing:
        return Reason.MISSING_REQUIRED_ATTRIBUTE, f"missing {', '.join(missing)}"
    if not facts.has_pixel_data:
        return Reason.NO_PIXEL_DATA, "no Pixel Data element"
    return None


# PS3.3 C.7.6.3.1.2's defined terms, current and retired.
PHOTOMETRIC_TERMS = frozenset(
    {
        "MONOCHROME1",
        "MONOCHROME2",
        "PALETTE COLOR",
        "RGB",
        "HSV",
        "ARGB",
        "CMYK",
        "YBR_FULL",
        "YBR_FULL_422",
        "YBR_PARTIAL_422",
        "YBR_PARTIAL_420",
        "YBR_ICT",
        "YBR_RCT",
    }
)


def _check_pixel_format(facts: HeaderFacts, settings: DicomSettings):
    photometric = str(facts.get("PhotometricInterpretation")).strip()
    samples = facts.integer("SamplesPerPixel")
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        # Only a defined term is quoted: the element could hold any text.
        named = photometric if photometric in PHOTOMETRIC_TERMS else "an undefined term"
        return (
            Reason.UNSUPPORTED_PIXEL_FORMAT,
            f"PhotometricInterpretation {named} with {samples} samples",
        )
    allocated = facts.integer("BitsAllocated")
    if not 1 <= facts.integer("BitsStored", allocated) <= allocated:
        return Reason.INVALID_ATTRIBUTE_VALUE, "BitsStored is not between 1 and BitsAllocated"
    if facts.integer("PixelRepresentation", 0) not in (0, 1):
        return Reason.INVALID_ATTRIBUTE_VALUE, "PixelRepresentation is neither 0 nor 1"
    return None


def _image_type(facts: HeaderFacts) -> list[str]:
    value = facts.get("ImageType") or []
    values = list(value) if isinstance(value, MultiValue | list) else [value]
    return [str(v).strip().upper() for v in values]


def _check_image_type(facts: HeaderFacts, settings: DicomSettings):
    image_type = _image_type(facts)
    if "LOCALIZER" in image_type:
        return Reason.LOCALIZER, "ImageType marks a localizer (scout)"
    if "PROJECTION IMAGE" in image_type:
        return Reason.PROJECTION_IMAGE, "ImageType marks a projection image"
    if settings.skip_derived and ("DERIVED" in image_type[:1] or "SECONDARY" in image_type[1:2]):
        return Reason.DERIVED_IMAGE, "ImageType marks a derived or secondary image"
    if str(facts.get("BurnedInAnnotation") or "").strip().upper() == "YES":
        return Reason.BURNED_IN_ANNOTATION, "BurnedInAnnotation is YES"
    return None


# pydicom's plugins that refuse samples of more than 8 bits in these transfer syntaxes
# (JPEG Extended's 12-bit process, common in lossy CT archives): pylibjpeg-libjpeg decodes
# them, but is GPLv3 and not among our dependencies, so a user may install it.
_EIGHT_BIT_ONLY_PLUGINS = {JPEGExtended12Bit: frozenset({"gdcm", "pillow"})}


def decoder_available(syntax: UID, bits_stored: int = 8) -> bool:
    decoder = get_decoder(syntax)
    if bits_stored > 8 and syntax in _EIGHT_BIT_ONLY_PLUGINS:
        return bool(set(decoder.available_plugins) - _EIGHT_BIT_ONLY_PLUGINS[syntax])
    return decoder.is_available


def _check_decoder(facts: HeaderFacts, settings: DicomSettings):
    syntax = facts.transfer_syntax
    bits = facts.integer("BitsStored", 8)
    try:
        available = decoder_available(syntax, bits)
    except NotImplementedError:
        return Reason.UNSUPPORTED_TRANSFER_SYNTAX, f"no pixel decoder exists for {uid_name(syntax)}"
    if not available and bits > 8 and syntax in _EIGHT_BIT_ONLY_PLUGINS:
        message = (
            f"no installed decoder plugin for {uid_name(syntax)} with {bits}-bit samples "
            "(GDCM and Pillow decode 8-bit only; pylibjpeg-libjpeg, GPLv3, decodes them)"
        )
        return Reason.NO_DECODER, message
    if not available:
        return Reason.NO_DECODER, f"no installed decoder plugin for {uid_name(syntax)}"
    return None


Check = Callable[[HeaderFacts, DicomSettings], "tuple[Reason, str] | None"]
CHECKS: tuple[Check, ...] = (
    _check_transfer_syntax,
    _check_integer_values,
    _check_size_limits,
    _check_truncation,
    _check_sop_class,
    _check_required_ct_attributes,
    _check_pixel_format,
    _check_image_type,
    _check_decoder,
)


def _read_dataset(path: Path) -> tuple[Dataset, int] | QuarantineEntry:
    """(dataset without pixels, pixel data offset) or why it is not DICOM."""
    try:
        with path.open("rb") as fp:
            try:
                dataset = dcmread(fp, stop_before_pixels=True)
            except InvalidDicomError:
                fp.seek(0)
                head = fp.read(SNIFF_BYTES)
                if not starts_with_file_meta(head):
                    return QuarantineEntry(str(path), *classify_non_dicom(head))
                # Its file meta says how to read it; force only skips the missing preamble.
                fp.seek(0)
                dataset = dcmread(fp, stop_before_pixels=True, force=True)
            if dataset.file_meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
                return dataset, _deflated_pixel_offset(path)
            # stop_before_pixels leaves the file positioned at the pixel data tag.
            return dataset, fp.tell()
    except OSError as error:
        return QuarantineEntry(str(path), Reason.UNREADABLE_FILE, type(error).__name__)
    except Exception as error:  # any parser failure is a property of the file, not a bug
        return QuarantineEntry(str(path), Reason.UNREADABLE_HEADER, type(error).__name__)


def _deflated_pixel_offset(path: Path) -> int:
    """A deflated file is read through an inflating stream, so the file's position says
    nothing about its pixel data: 0 when the inflated dataset holds pixel data, else the
    file's size (none). Pixels are read from the inflated stream too (pixels.py)."""
    with path.open("rb") as fp:
        whole = dcmread(fp, defer_size="1 KB")
    return 0 if "PixelData" in whole else path.stat().st_size


def read_file_header(path: Path, settings: DicomSettings) -> FileHeader | QuarantineEntry:
    """The file's header and slices, or the first reason it cannot be ingested."""
    # pydicom warns and keeps going on invalid values; the checks below judge them instead.
    with pydicom_silenced():
        return _checked_header(path, settings)


def _checked_header(path: Path, settings: DicomSettings) -> FileHeader | QuarantineEntry:
    try:
        size = path.stat().st_size
    except OSError as error:
        return QuarantineEntry(str(path), Reason.UNREADABLE_FILE, type(error).__name__)
    if size == 0:
        return QuarantineEntry(str(path), Reason.EMPTY_FILE, "zero-byte file")
    quick = read_quick_header(path, VALUE_ATTRIBUTES)
    if quick is not None:  # the common classic CT file: no pydicom dataset needed yet
        facts = HeaderFacts(
            quick.values, quick.transfer_syntax, size, quick.pixel_offset, quick.pixel_value
        )
        return _judged(path, facts, None, settings)
    read = _read_dataset(path)
    if isinstance(read, QuarantineEntry):
        return read
    dataset, pixel_offset = read
    try:
        values = _header_values(dataset)
    except Exception as error:  # a value no check foresaw: the file is unusable, not the run
        message = f"unusable attribute value ({type(error).__name__})"
        return QuarantineEntry(str(path), Reason.INVALID_ATTRIBUTE_VALUE, message)
    facts = HeaderFacts(values, _transfer_syntax(dataset), size, pixel_offset)
    return _judged(path, facts, dataset, settings)


def _judged(
    path: Path, facts: HeaderFacts, dataset: Dataset | None, settings: DicomSettings
) -> FileHeader | QuarantineEntry:
    """The file's slices when every check passes, else the first failure."""
    series_uid = str(facts.get("SeriesInstanceUID") or "")
    try:
        for check in CHECKS:
            failure = check(facts, settings)
            if failure:
                return QuarantineEntry(str(path), *failure, series_uid=series_uid)
        if facts.get("SOPClassUID") == CTImageStorage:
            slices = [classic_slice(facts.values, str(path))]
        else:  # Enhanced CT: never read quickly, so its dataset is here
            slices = enhanced_slices(dataset, str(path))
    except MissingFunctionalGroup as error:
        return QuarantineEntry(
            str(path), Reason.MISSING_REQUIRED_ATTRIBUTE, str(error), series_uid=series_uid
        )
    except Exception as error:  # a value no check foresaw: the file is unusable, not the run
        message = f"unusable attribute value ({type(error).__name__})"
        return QuarantineEntry(
            str(path), Reason.INVALID_ATTRIBUTE_VALUE, message, series_uid=series_uid
        )
    for slice_ in slices:
        problem = unusable_value(slice_)
        if problem:
            where = f"frame {slice_.frame + 1}: " if len(slices) > 1 else ""
            return QuarantineEntry(
                str(path), Reason.INVALID_ATTRIBUTE_VALUE, where + problem, series_uid=series_uid
            )
    return FileHeader(str(path), facts, slices, dataset)
