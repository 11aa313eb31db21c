"""DICOM header de-identification: no identifying value of the demo headers survives."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pydicom
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from radreport.data.pseudonyms import DeidKeys
from radreport.data.synthetic import plan_studies, study_header
from radreport.data.text_scrub import NAME, scrub_report
from radreport.dicom.deidentify import deidentify_dataset, identifying_values

KEYS = DeidKeys("test-secret")


def _demo_header(index: int = 0) -> Dataset:
    study = plan_studies(3, (16, 16), seed=7)[index]
    header = study_header(study, seed=7)
    header.SOPClassUID = CTImageStorage
    header.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["sop", str(index)])
    header.SeriesInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["series", str(index)])
    return header


def _all_text(dataset: Dataset) -> str:
    parts = []
    dataset.walk(lambda ds, element: parts.append(str(element.value)))
    return "\n".join(parts)


def _phi_values(header: Dataset) -> set[str]:
    names = {part for value in identifying_values(header) for part in value.split("^")}
    uids = {header.StudyInstanceUID, header.SOPInstanceUID, header.SeriesInstanceUID}
    return identifying_values(header) | names | uids | {header.StudyID, header.PatientAge}


def test_no_identifying_value_survives():
    header = _demo_header()
    phi = _phi_values(header)
    assert {"PatientName", "PatientBirthDate", "InstitutionName"} <= set(header.dir())
    clean_text = _all_text(deidentify_dataset(header, KEYS))
    assert [value for value in phi if value in clean_text] == []


def test_private_tags_go_and_identity_removed_is_set():
    header = _demo_header()
    assert any(element.tag.is_private for element in header)
    clean = deidentify_dataset(header, KEYS)
    assert not any(element.tag.is_private for element in clean)
    assert clean.PatientIdentityRemoved == "YES"
    assert clean.PatientID == KEYS.patient(header.PatientID) == str(clean.PatientName)
    assert clean.AccessionNumber == KEYS.accession(header.AccessionNumber)
    assert len(clean.AccessionNumber) <= 16  # fits SH
    assert clean.SOPClassUID == CTImageStorage  # standard UIDs are kept
    assert header.PatientName != clean.PatientName  # the input was not modified


def test_uid_remap_is_deterministic_per_key():
    header = _demo_header()
    first, again = deidentify_dataset(header, KEYS), deidentify_dataset(header, KEYS)
    other_key = deidentify_dataset(header, DeidKeys("another-secret"))
    assert first.StudyInstanceUID == again.StudyInstanceUID != header.StudyInstanceUID
    assert first.StudyInstanceUID != other_key.StudyInstanceUID
    assert pydicom.uid.UID(first.StudyInstanceUID).is_valid


def test_dates_move_by_one_shift_per_patient():
    header = _demo_header()
    clean = deidentify_dataset(header, KEYS)

    def day(value: str) -> dt.date:
        return dt.datetime.strptime(value, "%Y%m%d").date()

    shift = day(clean.StudyDate) - day(header.StudyDate)
    assert shift == KEYS.date_shift(header.PatientID) and shift < dt.timedelta(0)
    assert day(clean.ContentDate) - day(header.ContentDate) == shift
    assert clean.PatientBirthDate == ""


def test_real_ct_header_keeps_what_a_model_needs(testdata):
    header = pydicom.dcmread(testdata("CT_small.dcm"), stop_before_pixels=True)
    clean = deidentify_dataset(header, KEYS)
    assert "JFK IMAGING CENTER" not in _all_text(clean)
    assert "CompressedSamples" not in _all_text(clean)
    np.testing.assert_array_equal(clean.PixelSpacing, header.PixelSpacing)
    assert clean.RescaleIntercept == header.RescaleIntercept


def test_a_date_that_cannot_move_back_is_dropped_and_the_others_still_move():
    # "00010101", a placeholder some systems write, has no earlier day to move to.
    header = _demo_header()
    header.ContentDate = "00010101"
    clean = deidentify_dataset(header, KEYS)
    assert clean.ContentDate == ""
    assert clean.StudyDate and clean.StudyDate != header.StudyDate


def test_every_person_name_and_identifier_reaches_the_report_scrub_wherever_it_sits():
    header = _demo_header()
    header.OtherPatientNames = ["Allan^Edgar", "Pym^Arthur"]
    header.PatientBirthName = "Perry^Edgar"
    header.RequestingPhysician = "Griswold^Rufus"
    header.PhysiciansOfRecord = "Moran^John"
    header.InstitutionalDepartmentName = "Baltimore Thoracic Unit"
    other_id = Dataset()
    other_id.PatientID = "OTHERX998877"
    header.OtherPatientIDsSequence = [other_id]
    step = Dataset()
    step.ScheduledPerformingPhysicianName = "Usher^Roderick"
    header.ScheduledProcedureStepSequence = [step]
    header.private_block(0x0009, "ACME 1.1", create=True).add_new(0x10, "PN", "Valdemar^Ernest")
    values = identifying_values(header)
    assert {
        "Allan^Edgar",
        "Pym^Arthur",
        "Perry^Edgar",
        "Griswold^Rufus",
        "Moran^John",
        "Baltimore Thoracic Unit",
        "OTHERX998877",
        "Usher^Roderick",
        "Valdemar^Ernest",
    } <= values
    report = (
        "Prior imaging filed under Edgar Allan and Edgar Perry; see also A. Pym. Rufus Griswold "
        "requested the study; John Moran to follow up, Roderick Usher and Ernest Valdemar "
        "informed. Outside id OTHERX998877. Baltimore Thoracic Unit."
    )
    scrubbed = scrub_report(report, values)
    for word in ("Allan", "Perry", "Pym", "Griswold", "Moran", "Usher", "Valdemar", "OTHERX"):
        assert word not in scrubbed
    assert "Baltimore" not in scrubbed


@pytest.mark.parametrize(
    ("stored", "charset"),
    [
        ("Müller^Jürgen".encode(), "ISO_IR 100"),  # UTF-8 bytes labelled Latin-1
        ("Müller^Jürgen".encode(), None),  # UTF-8 bytes with no character set
        ("Müller^Jürgen".encode("latin-1"), "ISO_IR 192"),  # Latin-1 bytes labelled UTF-8
    ],
)
def test_a_name_whose_bytes_differ_from_its_character_set_still_scrubs_the_report(
    tmp_path, stored, charset
):
    header = _demo_header()
    if charset:
        header.SpecificCharacterSet = charset
    elif "SpecificCharacterSet" in header:
        del header.SpecificCharacterSet
    header.PatientName = stored
    path = tmp_path / "mislabelled.dcm"
    header.file_meta = FileMetaDataset()
    header.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    header.save_as(path, enforce_file_format=True)
    values = identifying_values(dcmread(path, stop_before_pixels=True))
    report = "JÜRGEN MÜLLER, no acute findings. Müller tolerated the exam."
    assert scrub_report(report, values) == f"{NAME}, no acute findings. {NAME} tolerated the exam."
