"""Scrub identifying text from a report before it leaves ingestion.

Three layers, most specific first: the study's own identifiers from the manifest and the
DICOM headers become their pseudonyms (patient, accession) or placeholders (names,
institution, addresses); then patterns catch what no header lists: dates, titled names
("Dr. ..."), names in the places reports put them (after "signed by", "dictated by",
"discussed with" and the like, before a credential such as ", MD", after a "Patient:" or
"Radiologist:" label, two to four capitalised words after a bare "Patient"), long
identifiers, phone numbers, e-mail addresses and ages over 89 (which become "90+"). A name
with none of these cues that no header of the study carries is not found: that is the known
gap (named-entity models would close part of it, at the cost of a model download).

Names are written in any alphabet ("Dr. Ángela Ruiz", "Ørjan Ødegård"): the patterns use
the `regex` module's Unicode letter classes, and text and header values are compared in
Unicode's composed form (NFC), so a report typed with decomposed accents (as macOS writes
them) matches its header. Dates, ages and titles are also matched as German, French,
Spanish, Italian, Portuguese and Chinese, Japanese or Korean reports write them; other
languages' cues are the same gap as unlabelled names.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping

import regex as re

NAME, DATE, IDENTIFIER, REDACTED = "[NAME]", "[DATE]", "[ID]", "[REDACTED]"
AGE_90_OR_OLDER = "90+"
_OLD_AGE = r"(?:9\d|1[0-4]\d)"  # 90 to 149
MIN_IDENTIFIER_CHARS = 3  # shorter header values (sex, a digit) would wreck ordinary words

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
# Month names of German, French, Spanish, Italian and Portuguese reports, in full (their
# abbreviations mostly match the English ones above, or are words of their own).
_OTHER_MONTH = (
    r"(?:Januar|Februar|März|Maerz|Mai|Juni|Juli|Oktober|Dezember"
    r"|janvier|février|mars|avril|juin|juillet|août|septembre|octobre|novembre|décembre"
    r"|enero|febrero|marzo|abril|mayo|junio|julio|agosto|se?tiembre|octubre|noviembre|diciembre"
    r"|gennaio|febbraio|aprile|maggio|giugno|luglio|settembre|ottobre|dicembre"
    r"|janeiro|fevereiro|março|maio|junho|julho|setembro|outubro|dezembro)"
)
_ANY_MONTH = rf"(?:{_OTHER_MONTH}|{_MONTH})"
_TITLES = r"Dr|Doctor|Mr|Mrs|Ms|Miss|Prof|Herr|Frau|Mme|Mlle|Sr|Sra|Srta"
# A title as prose writes it, and its separator: Title case with a full stop or a space,
# or capitals with a full stop ("DR. SMITH"). Not MR and MS in capitals, with or without
# the stop: "on MR. No change" and "known MS. No new lesions" are an exam and a disease.
_UPPER_TITLES = r"DR|DOCTOR|MRS|MISS|PROF|HERR|FRAU"
_SPACE = r"[ \t\u00a0]"  # a no-break space too: "Dr.\u00a0Schmidt"
_TITLE = rf"(?:(?:{_TITLES})(?:\.{_SPACE}*|{_SPACE}+)|(?:{_UPPER_TITLES})\.{_SPACE}*)"
# German academic titles between a title and the name: "Dr. med.", "Prof. Dr. rer. nat.".
_ACADEMIC = r"(?:med|dent|vet|rer\.[ \t]?nat|phil|jur|habil|univ)\."
# A titled name's words: capitalised, in capitals, or initials with or without a full stop.
_TITLED_WORD = rf"\p{{Lu}}[\w'’-]+|\p{{Lu}}(?:\.|(?={_SPACE}))"
# Person names as prose writes them: capitalised words and initials, 1 to 4 of them (not a
# title: titled names have their own pattern). A word is a capital and small letters, in
# any alphabet, and may join more such parts: "Jean-Luc", "McDonald", "O'Brien", "D’Angelo".
_CAPITALISED = r"\p{Lu}\p{Ll}+(?:[-'’]?\p{Lu}\p{Ll}+)*|\p{Lu}['’]\p{Lu}\p{Ll}+"
_NAME_WORD = rf"(?!(?:{_TITLES})\b)(?:{_CAPITALISED}|\p{{Lu}}\.)"
_PERSON = rf"{_NAME_WORD}(?:[ \t]+{_NAME_WORD}){{0,3}}"
# Two to four of them: after a bare "Patient" a single capitalised word is more often a
# heading ("Patient History") than a name.
_FULL_NAME = rf"{_NAME_WORD}(?:[ \t]+{_NAME_WORD}){{1,3}}"
_CREDENTIAL = r"(?:M\.D\.|MD|D\.O\.|DO|MBBS|FRCR|FRCPC|PhD|RN|NP|PA-C|RT\(R\))(?![\w])"
# A name in capitals, as record systems print it: two to four words ("SMITH, JOHN",
# "O'NEIL SHAQUILLE"); one capitalised word alone after a cue is more often a unit ("ICU").
_UPPER_WORD = r"(?:\p{Lu}['’])?\p{Lu}{2,}(?:-\p{Lu}{2,})*"
_UPPER_NAME = rf"{_UPPER_WORD}(?:,?[ \t]+{_UPPER_WORD}){{1,3}}(?!\w)"


def _name_after(cue: str, tail: str = "") -> tuple[re.Pattern[str], str]:
    """A person's name after `cue` (matched in any case, kept), the name replaced."""
    return re.compile(rf"(?i:\b({cue}))(?:{_UPPER_NAME}|{_PERSON}{tail})"), rf"\1{NAME}"


PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A date may run into its time: 2019-07-23T10:15 (ISO 8601), 07/23/2019T10:15.
    (re.compile(r"\b\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})(?![\d/.-]\d)(?=T\d|\b)"), DATE),
    (re.compile(r"\b\d{4}[/.-]\d{1,2}[/.-]\d{1,2}(?![\d/.-]\d)(?=T\d|\b)"), DATE),
    (re.compile(rf"\b{_MONTH}-\d{{1,2}}-(?:\d{{4}}|\d{{2}})\b", re.I), DATE),  # Jul-23-2019
    (re.compile(rf"\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b", re.I), DATE),
    (re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH},?\s+\d{{4}}\b", re.I), DATE),
    (re.compile(rf"\b{_MONTH}\s+\d{{4}}\b", re.I), DATE),
    # 04-Jul-1945, 4-JUL-45, 04JUL1945 (DICOM and lab systems), Jul 4 '45.
    (re.compile(rf"\b\d{{1,2}}-{_MONTH}-(?:\d{{4}}|\d{{2}})\b", re.I), DATE),
    (re.compile(rf"\b\d{{2}}{_MONTH}\d{{4}}\b", re.I), DATE),
    (re.compile(rf"\b{_MONTH}\s+\d{{1,2}},?\s+'\d{{2}}\b", re.I), DATE),
    (re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}\s+'?\d{{2}}\b", re.I), DATE),  # 14 Mar 61
    # 15. März 2019, 15 mars 2019, 15 de marzo de 2019, März 2019.
    (re.compile(rf"\b\d{{1,2}}\.?\s+(?:de\s+)?{_ANY_MONTH}\s+(?:de\s+)?\d{{4}}\b", re.I), DATE),
    (re.compile(rf"\b{_ANY_MONTH}\s+(?:de\s+)?\d{{4}}\b", re.I), DATE),
    # 2019年3月15日 (Chinese, Japanese), 2019년 3월 15일 (Korean).
    (re.compile(r"\d{2,4}\s*[年년]\s*\d{1,2}\s*[月월](?:\s*\d{1,2}\s*[日일])?"), DATE),
    # A titled name, its titles kept: "Dr. Smith", "DR. SMITH", "Dr J. Smith",
    # "Prof. Dr. med. Klaus Müller".
    (
        re.compile(
            rf"(\b{_TITLE}(?:(?:{_TITLE}|{_ACADEMIC}{_SPACE}*))*)"
            rf"(?:{_TITLED_WORD})(?:{_SPACE}+(?:{_TITLED_WORD})){{0,3}}"
        ),
        rf"\1{NAME}",
    ),
    # A name after a label in Chinese or Japanese: 患者：张伟, 氏名: 山田太郎.
    (re.compile(r"((?:患者|病人|姓名|氏名|医师|医生|医師)\s*[:：]\s*)\p{Han}{2,4}"), rf"\1{NAME}"),
    # A capitalised name (optionally with initials) after a phrase that introduces a person.
    _name_after(
        r"(?:(?:electronically\s+)?(?:signed|dictated|transcribed|read|reviewed|verified|"
        r"approved|reported|interpreted|seen|examined)\s+by|discussed\s+with|"
        r"communicated\s+to|called\s+to|d/w)\b:?[ \t]+"
    ),
    # A name in front of a credential: "Jane Q. Doe, MD", "J. Doe MD".
    (re.compile(rf"{_PERSON}(,?[ \t]+{_CREDENTIAL})"), rf"{NAME}\1"),
    # A labelled name: "Patient: Jane Doe", "Referring physician: Doe, Jane".
    _name_after(
        r"(?:patient|name|attending|referring|radiologist|physician|technologist|resident|"
        r"fellow|requested\s+by|ordering)(?:\s+(?:name|physician|provider))?[ \t]*:[ \t]*",
        rf"(?:,[ \t]+{_NAME_WORD})?",
    ),
    # A full name after a bare "Patient" or "Pt": "Patient John Smith MRN ...".
    (re.compile(rf"(?i:\b(patient|pt\.?)[ \t]+){_FULL_NAME}"), rf"\1 {NAME}"),
    # An age over 89 identifies (HIPAA's Safe Harbor): "93-year-old", "93 yo", "aged 93".
    (
        re.compile(
            rf"\b{_OLD_AGE}(?=[ -]?(?:years?\b|yrs?\b|y/?o\b|jahre?n?\b|jährig|ans?\b|años\b|"
            r"anos\b|anni\b|岁|歳|세))",
            re.I,
        ),
        AGE_90_OR_OLDER,
    ),
    (re.compile(rf"(?i:\b(aged?:?[ \t]+)){_OLD_AGE}\b"), rf"\g<1>{AGE_90_OR_OLDER}"),
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+"), REDACTED),
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), IDENTIFIER),  # a US social security number
    # Any id after the label that introduces it, however short: "MRN 1234", "Acc# XK-4471".
    (
        re.compile(
            r"(?i:\b((?:MRN|MR\s?#|medical\s+record(?:\s+(?:number|no\.?))?|patient\s+id|"
            r"acc(?:ession)?(?:\s*(?:number|no\.?|#))?|SSN)(?!\w)\s*[:#]?\s*))"
            r"[A-Za-z]{0,4}[-/]?\d[\w/-]*"
        ),
        rf"\1{IDENTIFIER}",
    ),
    (re.compile(r"\(?\b\d{3}\)?[-.\s]\d{3}[-.\s]\d{4}\b"), REDACTED),
    # A number after its label, in any country's grouping: "Tel. 030 / 123 45 67".
    (
        re.compile(
            r"(?i:\b((?:tel(?:efon|éfono|ephone)?|phone|fax|tfno|pager|mobile|cell)\.?:?\s*))"
            r"\+?[\d(][\d \t/().-]{4,}\d"
        ),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"\b[A-Za-z]{0,4}\d{5,}\b"), IDENTIFIER),
)


def _name_phrases(person_name: str) -> tuple[set[str], set[str]]:
    """DICOM PN as prose writes it, and its parts on their own. A PN holds up to three
    '='-separated groups (alphabetic, ideographic, phonetic), each 'Family^Given^Middle^
    Prefix^Suffix' by position, with empty components kept in place ('Doe^John^^Mr')."""
    phrases, parts = {person_name}, set()
    for group in person_name.split("="):
        family, given, middle = ([c.strip() for c in group.split("^")] + ["", ""])[:3]
        forenames = " ".join(w for w in (given, middle) if w)
        # Both orders, and "Doe, John": the same words as "Doe John" to _replace_whole, but
        # longer, so it is tried first ("Doe, John. DOE" is not "Doe, [NAME]").
        written = {
            " ".join(w for w in (given, family) if w),
            " ".join(w for w in (forenames, family) if w),
            " ".join(w for w in (family, forenames) if w),
            " ".join(w for w in (family, given) if w),
            ", ".join(w for w in (family, forenames) if w),
            ", ".join(w for w in (family, given) if w),
        } - {""}
        # Ideographic and phonetic groups are written without spaces: 山田太郎.
        written |= {w.replace(" ", "") for w in written if not w.isascii()}
        phrases |= written
        # Each word on its own too: "José" of "Ñúñez^José Ángel", written without the rest.
        words = {w for c in (family, given, middle) for w in c.split()} | {family, given, middle}
        parts |= {w for w in words if len(w) >= MIN_IDENTIFIER_CHARS}
    return phrases, parts


# Between the words of a name or an institution, prose may drop or add a full stop, a
# comma or an apostrophe: "St Elsewhere" is "ST. ELSEWHERE", "O'Brien" is "O’Brien". Not a
# line break: "... John Doe.\ndoe tolerated ..." would match "Doe John" across the end of
# the line and leave the first "John" and the last "doe" behind.
_WORD_BREAK = r"[ \t.,'’]"


def _replace_whole(text: str, value: str, replacement: str, capitalised_only: bool = False) -> str:
    """`value` as a whole word or phrase in any case; with `capitalised_only`, only where
    it starts with a capital, as a name is written ("Mass", "MASS", not "mass")."""
    words = [word for word in re.split(f"{_WORD_BREAK}+", value) if word]
    if len(words) > 1 and any(c.isalpha() for c in value):
        body = f"{_WORD_BREAK}*".join(re.escape(word) for word in words)
    else:
        body = re.escape(value)
    pattern = rf"(?<!\w){body}(?!\w)"

    def replaced(match: re.Match[str]) -> str:
        return replacement if not capitalised_only or match[0][0].isupper() else match[0]

    return re.sub(pattern, replaced, text, flags=re.IGNORECASE)


def _replace_identifiers(text: str, identifiers: Iterable[str]) -> str:
    phrases: dict[str, str] = {}
    name_parts: set[str] = set()
    for value in identifiers:
        if "^" in value:
            found, parts = _name_phrases(value)
            phrases.update(dict.fromkeys(found, NAME))
            name_parts |= parts
        else:
            phrases[value] = REDACTED
    # Longest first, so full names win; ties in a fixed order, since a set's order changes
    # from one process to the next and overlapping phrases would scrub differently.
    for value in sorted(phrases, key=lambda phrase: (-len(phrase), phrase)):
        if len(value) >= MIN_IDENTIFIER_CHARS:
            text = _replace_whole(text, value, phrases[value])
    # A lone name part only as a name is written (starting with a capital: "Mass", "MASS",
    # "McDonald" for MCDONALD), so a patient called Mass leaves "mass" in the findings alone.
    for part in sorted(name_parts, key=lambda part: (-len(part), part)):
        text = _replace_whole(text, part, NAME, capitalised_only=True)
    return text


def _composed(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _with_unpadded_numbers(pseudonyms: Mapping[str, str]) -> dict[str, str]:
    """Also a zero-padded numeric id as prose writes it ("MRN 4711" for 0004711), when at
    least 4 digits remain: shorter numbers are too common in findings to replace."""
    extended = dict(pseudonyms)
    for raw, pseudonym in pseudonyms.items():
        unpadded = raw.lstrip("0")
        if raw.isdigit() and unpadded != raw and len(unpadded) >= 4:
            extended.setdefault(unpadded, pseudonym)
    return extended


def scrub_report(
    text: str, identifiers: Iterable[str] = (), pseudonyms: Mapping[str, str] | None = None
) -> str:
    """`pseudonyms` maps known raw ids (patient, study, accession) to their pseudonyms;
    `identifiers` are other raw identifying values (DICOM PN values hold '^'). The text
    comes back in Unicode's composed form (NFC)."""
    text = _composed(text)
    identifiers = [_composed(value) for value in identifiers]
    pseudonyms = {_composed(raw): pseudonym for raw, pseudonym in (pseudonyms or {}).items()}
    held = {}  # pseudonyms are parked behind tokens so the patterns cannot touch them
    for number, (raw, pseudonym) in enumerate(_with_unpadded_numbers(pseudonyms).items()):
        if len(raw) >= MIN_IDENTIFIER_CHARS:
            token = f"\x00{number}\x00"
            held[token] = pseudonym
            text = _replace_whole(text, raw, token)
    text = _replace_identifiers(text, identifiers)
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    for token, pseudonym in held.items():
        text = text.replace(token, pseudonym)
    return text
