"""Quarantine entries: every manifest row, file, series or study that was not used, and why.

Each failure kind has its own reason code, so the counts per code tell a user what to fix.
Messages never carry header or report values (they may be PHI), only tag names and numbers.
Kept free of pandas: ingestion workers import it, and each import costs their start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Reason(str, Enum):
    # Manifest lines and rows
    MANIFEST_BAD_LINE = "manifest_bad_line"  # not a row at all: bad JSON, too many fields
    MANIFEST_MISSING_ID = "manifest_missing_id"
    MANIFEST_DUPLICATE_STUDY_ID = "manifest_duplicate_study_id"
    MANIFEST_EMPTY_IMPRESSION = "manifest_empty_impression"
    MANIFEST_EMPTY_REPORT = "manifest_empty_report"
    MANIFEST_DICOM_DIR_NOT_FOUND = "manifest_dicom_dir_not_found"
    MANIFEST_SHARED_DICOM_DIR = "manifest_shared_dicom_dir"
    MANIFEST_INVALID_LABELS = "manifest_invalid_labels"
    # Files that are not readable DICOM
    UNREADABLE_FILE = "unreadable_file"
    NOT_A_REGULAR_FILE = "not_a_regular_file"
    EMPTY_FILE = "empty_file"
    NOT_DICOM_IMAGE_FILE = "not_dicom_image_file"
    NOT_DICOM_TEXT_FILE = "not_dicom_text_file"
    NOT_DICOM_ARCHIVE = "not_dicom_archive"
    NOT_DICOM = "not_dicom"
    MISSING_FILE_META = "missing_file_meta"
    MISSING_PREAMBLE = "missing_preamble"  # starts with 'DICM', the 128 bytes before it gone
    UNREADABLE_HEADER = "unreadable_header"
    # DICOM files that are malformed, unsupported or excluded by policy
    MISSING_TRANSFER_SYNTAX = "missing_transfer_syntax"
    INVALID_ATTRIBUTE_VALUE = "invalid_attribute_value"
    PIXEL_DATA_TRUNCATED = "pixel_data_truncated"
    MISSING_REQUIRED_ATTRIBUTE = "missing_required_attribute"
    UNSUPPORTED_SOP_CLASS = "unsupported_sop_class"
    NO_PIXEL_DATA = "no_pixel_data"
    UNSUPPORTED_PIXEL_FORMAT = "unsupported_pixel_format"
    SIZE_LIMIT_EXCEEDED = "size_limit_exceeded"
    UNSUPPORTED_TRANSFER_SYNTAX = "unsupported_transfer_syntax"
    NO_DECODER = "no_decoder"
    LOCALIZER = "localizer"
    PROJECTION_IMAGE = "projection_image"
    DERIVED_IMAGE = "derived_image"
    BURNED_IN_ANNOTATION = "burned_in_annotation"
    PIXEL_DECODE_FAILED = "pixel_decode_failed"
    # Series and studies
    NO_FILES = "no_files"
    DUPLICATE_SOP_INSTANCE = "duplicate_sop_instance"
    PATIENT_ID_MISMATCH = "patient_id_mismatch"
    MULTIPLE_STUDIES_IN_FOLDER = "multiple_studies_in_folder"
    STUDY_IN_TWO_ROWS = "study_in_two_rows"  # one StudyInstanceUID in two rows' folders
    TOO_FEW_SLICES = "too_few_slices"
    INCONSISTENT_GEOMETRY = "inconsistent_geometry"
    NOT_AXIAL = "not_axial"  # a sagittal or coronal series
    DUPLICATE_SLICE_POSITION = "duplicate_slice_position"
    IRREGULAR_SPACING = "irregular_spacing"
    GANTRY_TILT = "gantry_tilt"
    INCOMPLETE_SERIES = "incomplete_series"
    SERIES_NOT_SELECTED = "series_not_selected"
    NO_USABLE_SERIES = "no_usable_series"
    INGESTION_ERROR = "ingestion_error"
    WORKER_CRASHED = "worker_crashed"


@dataclass(frozen=True)
class QuarantineEntry:
    path: str
    reason: Reason
    message: str
    study_id: str = ""
    series_uid: str = ""
    manifest_line: int = 0  # the manifest line of the row (or the bad line); 0: not known yet
