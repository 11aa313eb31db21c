"""Report text scrub: identifiers go, clinical content stays."""

from __future__ import annotations

import pytest
import regex

from radreport.data.text_scrub import DATE, IDENTIFIER, NAME, scrub_report
from radreport.dicom.deidentify import as_person_name

REPORT = (
    "EXAM: CT chest, accession ACC75315076. COMPARISON: CT chest dated March 4, 2019, "
    "03/14/2020, 2021-01-02 and 4 Mar 2018.\n"
    "LUNGS: 5 mm nodule near T12; XXXX opacity. Mass effect absent. 3.2 x 2.1 cm mass.\n"
    "Findings were discussed with Dr. Bartholomew Blackwood on 5 June 2021.\n"
    "Images reviewed for Amelia Abernathy (MRN1234567), call 555-123-4567, "
    "Elmsford General Hospital, amelia@example.org."
)


def test_known_identifiers_become_pseudonyms_or_placeholders():
    scrubbed = scrub_report(
        REPORT,
        identifiers=["Abernathy^Amelia", "Elmsford General Hospital"],
        pseudonyms={"MRN1234567": "P0123456789abcde", "ACC75315076": "A1234567890123456"},
    )
    gone = ["Abernathy", "Amelia", "Blackwood", "Bartholomew", "MRN1234567", "ACC7531"]
    gone += ["2019", "03/14/2020", "2021-01-02", "4 Mar", "555-123", "Elmsford", "@"]
    assert [value for value in gone if value in scrubbed] == []
    assert "P0123456789abcde" in scrubbed and "A1234567890123456" in scrubbed
    assert scrubbed.count(DATE) == 5 and "Dr. " + NAME in scrubbed
    for kept in ("5 mm nodule near T12", "XXXX opacity", "Mass effect absent", "3.2 x 2.1 cm"):
        assert kept in scrubbed, kept


def test_patterns_catch_identifiers_no_header_listed():
    scrubbed = scrub_report("Seen by Mrs. Ophelia Ormsby, ID 99812345, on 12.01.2020.")
    assert scrubbed == f"Seen by Mrs. {NAME}, ID {IDENTIFIER}, on {DATE}."


def test_a_lone_name_part_is_replaced_only_when_written_as_a_name():
    scrubbed = scrub_report("Mass in the right lobe. The mass measures 2 cm.", ["Mass^John"])
    assert scrubbed == f"{NAME} in the right lobe. The mass measures 2 cm."


def test_untitled_names_are_found_where_reports_put_them():
    text = (
        "Findings discussed with Jonas Whitfield at 14:05. "
        "Electronically signed by: Priya K. Raman, MD. "
        "Dictated by Olu Adeyemi. Patient: Hartley, Maeve. "
        "Referring physician: Tomasz Nowak. Reviewed by attending radiologist."
    )
    scrubbed = scrub_report(text)
    leaked = ["Jonas", "Whitfield", "Priya", "Raman", "Olu", "Adeyemi", "Hartley", "Maeve"]
    assert [name for name in leaked + ["Tomasz", "Nowak"] if name in scrubbed] == []
    assert f"discussed with {NAME} at 14:05" in scrubbed
    assert f"signed by: {NAME}, MD." in scrubbed
    assert f"Patient: {NAME}." in scrubbed
    # A cue followed by ordinary lower-case words is left alone.
    assert "Reviewed by attending radiologist." in scrubbed


def test_name_cues_leave_clinical_sentences_alone():
    clinical = (
        "The patient: no acute distress. Read by comparison with the prior study. "
        "Nodule seen by CT and MRI measures 4 mm. Heart size normal, MD ratio unchanged."
    )
    assert scrub_report(clinical) == clinical


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Patient John Smith MRN 1234567 seen.", "Patient [NAME] MRN [ID] seen."),
        ("Pt. Mary Jane Watson was seen.", "Pt. [NAME] was seen."),
        # One capitalised word after a bare "Patient" is a heading, not a name.
        ("Patient History: cough.", "Patient History: cough."),
        ("The patient is a 45 year old male.", "The patient is a 45 year old male."),
    ],
)
def test_a_full_name_after_a_bare_patient_is_scrubbed(text, expected):
    assert scrub_report(text) == expected


@pytest.mark.parametrize(
    ("person_name", "text", "expected"),
    [
        # An empty middle name before a prefix keeps the components in their places.
        ("Doe^John^^Mr", "patient john doe", "patient [NAME]"),
        (
            "Doe^John^Secret",
            "john doe; John Secret Doe; DOE, JOHN SECRET",
            "[NAME]; [NAME]; [NAME]",
        ),
        # Alphabetic, ideographic and phonetic groups: each is the patient's name.
        (
            "Yamada^Tarou=山田^太郎=やまだ^たろう",
            "Tarou Yamada was scanned today. 山田太郎. やまだ たろう.",
            "[NAME] was scanned today. [NAME]. [NAME].",
        ),
    ],
)
def test_every_written_form_of_a_header_name_is_scrubbed(person_name, text, expected):
    assert scrub_report(text, {person_name}) == expected


def test_identifiers_are_found_as_prose_writes_them():
    identifiers = {as_person_name("John Doe"), "O'Brien^Mary", "St Elsewhere General"}
    text = (
        "Seen with Doe, John. DOE tolerated it. Mary O’Brien called. MRN 4711. "
        "At ST. ELSEWHERE GENERAL. DOB 04-Jul-1945, 4-JUL-45, 04JUL1945, Jul 4 '45."
    )
    assert scrub_report(text, identifiers, {"0004711": "P0123456789abcde"}) == (
        f"Seen with {NAME}. {NAME} tolerated it. {NAME} called. MRN P0123456789abcde. "
        f"At [REDACTED]. DOB {DATE}, {DATE}, {DATE}, {DATE}."
    )
    assert scrub_report("DOB 14 Mar 61, seen 3rd May '19; 2 mm nodule.") == (
        f"DOB {DATE}, seen {DATE}; 2 mm nodule."
    )
    assert scrub_report(
        "A 93-year-old, 101 yo, aged 95, age: 90. A 45 year old; 95 HU; 92 years ago."
    ) == ("A 90+-year-old, 90+ yo, aged 90+, age: 90+. A 45 year old; 95 HU; 90+ years ago.")
    # A padded number keeps its zeros unless 4 digits remain: 3-digit numbers are findings;
    # after its label, any number is the id it names.
    assert scrub_report("Accession 456, 456 HU.", (), {"000456": "A1"}) == (
        f"Accession {IDENTIFIER}, 456 HU."
    )


def test_ids_after_their_label_dates_with_times_and_names_across_lines():
    text = (
        "MRN 1234, mrn: XK-4471-22, MR# 4471, Acc# 55A1, SSN 123-45-6789.\n"
        "Scanned 2019-07-23T10:15, seen Jul-23-2019. Accessory ossicle 3 mm, L4-5, 3-4 cm.\n"
        "Reviewed for John Doe.\njohn doe went home."
    )
    assert scrub_report(text, {"Doe^John"}) == (
        f"MRN {IDENTIFIER}, mrn: {IDENTIFIER}, MR# {IDENTIFIER}, Acc# {IDENTIFIER}, "
        f"SSN {IDENTIFIER}.\n"
        f"Scanned {DATE}T10:15, seen {DATE}. Accessory ossicle 3 mm, L4-5, 3-4 cm.\n"
        f"Reviewed for {NAME}.\n{NAME} went home."
    )


@pytest.mark.parametrize(
    "text",
    [
        "Signed by Dr. Ángela Ruiz.",
        "Dictated by Özlem Yılmaz, MD.",
        "Discussed with Émile Durand today.",
        "Patient: Łukasz Nowak.",
        "Patient Åsa Lindqvist was seen.",
        "Reviewed by Ørjan Ødegård, MD.",
        "Discussed with Siobhan O'Brien.",
        "Signed by Ian McDonald, MD.",
    ],
)
def test_names_in_any_alphabet_are_found_where_reports_put_them(text):
    scrubbed = scrub_report(text)
    # Every capitalised piece of a name: "Brien" of "O'Brien", "Donald" of "McDonald".
    pieces = regex.findall(r"\p{Lu}\p{Ll}+", text)
    cues = {"Signed", "Dr", "Dictated", "Discussed", "Patient", "Reviewed"}
    assert [piece for piece in pieces if piece not in cues and piece in scrubbed] == []
    assert NAME in scrubbed


def test_each_word_of_a_header_name_is_scrubbed_however_its_accents_are_encoded():
    decomposed = "Patient Bjørn A\u030asmund Ødegård. N\u0303u\u0301n\u0303ez, JOSE\u0301: clear."
    scrubbed = scrub_report(decomposed, {"Ødegård^Bjørn Åsmund", "Ñúñez^José Ángel"})
    assert scrubbed == f"Patient {NAME}. {NAME}, {NAME}: clear."
    # A lone given name, in any capitalisation a name is written in.
    assert scrub_report("JOHN and Paul; McDONALD.", {"Mcdonald^John Paul"}) == (
        f"{NAME} and {NAME}; {NAME}."
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Discussed with Dr. J. Smith at 10:00.", "Discussed with Dr. [NAME] at 10:00."),
        ("Dr J Smith and Dr. A. B. Jones agreed.", "Dr [NAME] and Dr. [NAME] agreed."),
        ("DR. SMITH called; Dr.Schmidt and Dr.\u00a0Weber too.", None),
        (
            "Prof. Dr. med. Klaus Müller, Herr Dr. Schmidt.",
            "Prof. Dr. med. [NAME], Herr Dr. [NAME].",
        ),
        ("Patient: MUELLER, HANS. Referring physician: O'NEIL SHAQUILLE.", None),
        ("Patient: O'Neil, Shaquille; Referring physician: DiCaprio, Leo.", None),
        ("15. März 2019, 15 mars 2019, 15 de marzo de 2019, 2019年3月15日.", None),
        ("患者：张伟。93 Jahre alt, 93 años. Tel. 030 / 123 45 67.", None),
    ],
)
def test_names_dates_ages_and_numbers_as_other_countries_and_systems_write_them(text, expected):
    scrubbed = scrub_report(text)
    if expected is not None:
        assert scrubbed == expected
    kept = regex.findall(r"\p{Lu}\p{Ll}+|\p{Lu}{2,}|\d+|\p{Han}+", scrubbed)
    leaked = {"Smith", "Jones", "SMITH", "Schmidt", "Weber", "Klaus", "Müller", "MUELLER", "HANS"}
    leaked |= {"NEIL", "SHAQUILLE", "Neil", "Shaquille", "Caprio", "Leo", "2019", "张伟", "93"}
    leaked |= {"030", "123", "45", "67", "3", "15"}
    assert leaked.isdisjoint(kept), scrubbed


def test_exams_and_diseases_in_capitals_are_not_taken_for_titles():
    clinical = (
        "Compared on MR. No change. Known MS. No new lesions. DR chest: clear. MR Angiography."
    )
    assert scrub_report(clinical) == clinical
