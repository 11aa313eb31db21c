"""De-identify a DICOM header after the DICOM PS3.15 Annex E basic profile (the subset that CT
headers carry), with the options our training data needs:

- patient and accession become keyed pseudonyms shared with the report table,
- every instance UID is remapped deterministically (same secret + UID -> same new UID),
- all dates move by one fixed per-patient shift, so intervals between studies survive
  (Retain Longitudinal Temporal Information with Modified Dates),
- private tags, overlays and curves are removed; person names, addresses, institution,
  physicians, descriptions and comments are emptied or removed.
"""

from __future__ import annotations

import copy
import datetime as dt

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID

from radreport.data.pseudonyms import DeidKeys

DEIDENTIFICATION_METHOD = "radreport PS3.15 basic: HMAC ids, UID remap, date shift"  # LO: 64
# Type 2 attributes: must stay present, so they are emptied.
EMPTIED = frozenset(
    {
        "PatientBirthDate",
        "PatientSex",
        "ReferringPhysicianName",
        "StudyID",
        "ContentCreatorName",
    }
)
REMOVED = frozenset(
    {
        "AdditionalPatientHistory",
        "AdmittingDiagnosesDescription",
        "BranchOfService",
        "CountryOfResidence",
        "DerivationDescription",
        "DeviceSerialNumber",
        "EthnicGroup",
        "ImageComments",
        "InstitutionAddress",
        "InstitutionCodeSequence",
        "InstitutionName",
        "InstitutionalDepartmentName",
        "IssuerOfPatientID",
        "MedicalRecordLocator",
        "MilitaryRank",
        "NameOfPhysiciansReadingStudy",
        "Occupation",
        "OperatorsName",
        "OtherPatientIDs",
        "OtherPatientIDsSequence",
        "OtherPatientNames",
        "PatientAddress",
        "PatientAge",
        "PatientBirthName",
        "PatientBirthTime",
        "PatientComments",
        "PatientInsurancePlanCodeSequence",
        "PatientMotherBirthName",
        "PatientReligiousPreference",
        "PatientSize",
        "PatientTelephoneNumbers",
        "PatientWeight",
        "PerformedLocation",
        "PerformedProcedureStepDescription",
        "PerformedProcedureStepID",
        "PerformingPhysicianName",
        "PhysiciansOfRecord",
        "ProtocolName",
        "ReferencedPatientSequence",
        "ReferringPhysicianAddress",
        "ReferringPhysicianTelephoneNumbers",
        "RegionOfResidence",
        "RequestAttributesSequence",
        "RequestedProcedureDescription",
        "RequestingPhysician",
        "ResponsibleOrganization",
        "ResponsiblePerson",
        "ScheduledProcedureStepDescription",
        "SeriesDescription",
        "StationName",
        "StudyComments",
        "StudyDescription",
    }
)
OVERLAY_AND_CURVE_GROUPS = (0x5000, 0x6000)  # repeating groups 50xx and 60xx


def _shift_date(value: str, shift: dt.timedelta) -> str:
    try:
        return (dt.datetime.strptime(value[:8], "%Y%m%d") + shift).strftime("%Y%m%d") + value[8:]
    except (ValueError, OverflowError):  # OverflowError: shifted before the year 1
        return ""  # a date that cannot be shifted cannot be kept


def _shifted(value: object, shift: dt.timedelta) -> object:
    if isinstance(value, str):
        return _shift_date(value, shift) if value else value
    return [_shift_date(str(item), shift) for item in value]


def _remapped(value: object, keys: DeidKeys) -> object:
    def remap(uid: str) -> str:
        return uid if not uid or UID(uid).keyword else str(keys.uid(uid))  # keep standard UIDs

    if isinstance(value, str):
        return remap(value)
    return [remap(str(item)) for item in value]


def _is_overlay_or_curve(element: DataElement) -> bool:
    return (element.tag.group & 0xFF00) in OVERLAY_AND_CURVE_GROUPS


def _deidentify_element(
    dataset: Dataset, element: DataElement, keys: DeidKeys, patient_id: str
) -> None:
    keyword = element.keyword
    if keyword in REMOVED or _is_overlay_or_curve(element):
        del dataset[element.tag]
    elif keyword in ("PatientID", "PatientName"):
        element.value = keys.patient(patient_id)  # the name shows the pseudonym too
    elif keyword == "AccessionNumber":
        element.value = keys.accession(str(element.value)) if element.value else ""
    elif keyword in EMPTIED or element.VR == "PN":
        element.value = ""
    elif element.VR == "UI":
        element.value = _remapped(element.value, keys)
    elif element.VR in ("DA", "DT") and element.value:
        element.value = _shifted(element.value, keys.date_shift(patient_id))


def deidentify_dataset(dataset: Dataset, keys: DeidKeys) -> Dataset:
    """A de-identified copy; the input is left untouched."""
    result = copy.deepcopy(dataset)
    patient_id = str(result.get("PatientID", ""))
    result.remove_private_tags()
    result.walk(lambda ds, element: _deidentify_element(ds, element, keys, patient_id))
    meta = getattr(result, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta:
        meta.MediaStorageSOPInstanceUID = keys.uid(str(meta.MediaStorageSOPInstanceUID))
    result.PatientIdentityRemoved = "YES"
    result.LongitudinalTemporalInformationModified = "MODIFIED"
    result.DeidentificationMethod = DEIDENTIFICATION_METHOD
    return result


# Identifying values a header may hold besides person names, at any depth (a nested
# OtherPatientIDsSequence holds PatientID items); read to scrub the study's report.
IDENTIFYING_KEYWORDS = frozenset(
    {
        "PatientID",
        "OtherPatientIDs",
        "AccessionNumber",
        "PatientBirthDate",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "MedicalRecordLocator",
        "InstitutionName",
        "InstitutionAddress",
        "InstitutionalDepartmentName",
        "StationName",
    }
)


def identifying_values(dataset: Dataset) -> set[str]:
    """Raw identifying header values, for scrubbing the study's report text only: every
    person name (VR PN, whatever the attribute: the patient's other and birth names, the
    requesting physician, the physicians of record, ...) and the IDENTIFYING_KEYWORDS
    values, in nested sequences too. A value is also read as UTF-8 and as Latin-1 bytes:
    PACS often label UTF-8 names ISO_IR 100 or not at all, and the declared character set
    alone would give "MÃ¼ller" for the report's "Müller"."""
    values = set()
    for element, raw in _elements(dataset):
        is_name = element.VR == "PN"
        if not is_name and element.keyword not in IDENTIFYING_KEYWORDS:
            continue
        value = element.value
        items = list(value) if isinstance(value, MultiValue | list) else [value]
        texts = [str(item).strip() for item in items if item not in (None, "")]
        texts += _other_readings(raw)
        if is_name:
            texts = [as_person_name(text) for text in texts]
        values.update(text for text in texts if text)
    return values


# Longer values are not names or ids, and are not read: a private element may hold
# gigabytes that the header reader deferred.
_LONGEST_VALUE_READ = 64 * 1024
_TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC", "CS"})
_READINGS = ("utf-8", "latin-1")


def _other_readings(raw: bytes | None) -> list[str]:
    """The values of a text element's bytes read in each of _READINGS that decodes them."""
    if not raw:
        return []
    readings = []
    for encoding in _READINGS:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        readings += [item.strip(" \x00") for item in text.split("\\")]
    return [reading for reading in readings if reading]


def _elements(dataset: Dataset):
    """(element, its bytes as stored or None) for the person-name and IDENTIFYING_KEYWORDS
    elements of `dataset` and of its sequences' items. An element is converted (and a
    deferred one read) only when it is one of those; one whose value pydicom cannot convert
    holds nothing readable to scrub with."""
    for tag in list(dataset.keys()):
        stored = dataset.get_item(tag, keep_deferred=True)
        vr = stored.VR or _dictionary_vr(tag)
        if vr != "SQ":
            wanted = vr == "PN" or keyword_for_tag(tag) in IDENTIFYING_KEYWORDS
            if not wanted or (getattr(stored, "length", 0) or 0) > _LONGEST_VALUE_READ:
                continue
        raw = getattr(stored, "value", None)
        raw = raw if isinstance(raw, bytes) and vr in _TEXT_VRS else None
        try:
            element = dataset[tag]
        except Exception:
            continue
        if element.VR == "SQ":
            for item in element.value or ():
                yield from _elements(item)
        else:
            yield element, raw


def _dictionary_vr(tag: int) -> str | None:
    """The data dictionary's VR of a tag whose file did not say it (implicit VR)."""
    try:
        return dictionary_VR(tag)
    except KeyError:  # private or unknown
        return None


def as_person_name(text: str) -> str:
    """A person name value in DICOM's 'Family^Given^Middle' form, which the report scrub
    reads as a name. Some writers put a free-text 'John Q Doe' without carets: its last
    word is taken as the family name, so that its prose forms are all built."""
    if "^" in text or "=" in text:
        return text
    words = text.split()
    if len(words) < 2:
        return f"{text}^" if words else ""  # the family name alone
    return f"{words[-1]}^{words[0]}^{' '.join(words[1:-1])}".rstrip("^")


def header_pseudonyms(dataset: Dataset, keys: DeidKeys) -> dict[str, str]:
    """Raw PatientID and AccessionNumber -> their pseudonyms, so a report quoting either
    names the same pseudonym as the de-identified header."""
    pseudonyms = {}
    if dataset.get("PatientID"):
        pseudonyms[str(dataset.PatientID)] = keys.patient(str(dataset.PatientID))
    if dataset.get("AccessionNumber"):
        pseudonyms[str(dataset.AccessionNumber)] = keys.accession(str(dataset.AccessionNumber))
    return pseudonyms
