"""Impressions and detailed findings for the demo studies, from varied sentence templates
that agree with the drawn findings.

Every finding is stated either way in the detailed report ("No pleural effusion."), so the
report fully describes the images. The impression names only what a radiologist would put
there: incidental findings (a nodule of 6 mm or less) appear in the images and the detailed
report alone, so the image pathway carries information the impression text does not.
"""

from __future__ import annotations

import numpy as np

from radreport.data.phantom import Finding

PRESENT = {
    "nodule": (
        "A solid nodule measuring {diameter} mm is seen in the {side} {lobe} lobe.",
        "A pulmonary nodule measuring {diameter} mm lies in the {lobe} lobe of the {side} lung.",
        "{diameter} mm noncalcified nodule in the {side} {lobe} lobe.",
    ),
    "pleural_effusion": (
        "{Severity} {side_effusion}.",
        "{Severity} {side_effusion} with adjacent compressive atelectasis.",
        "{Severity} {side_effusion}, layering dependently.",
    ),
    "consolidation": (
        "There is airspace consolidation in the {side} {lobe} lobe.",
        "Patchy consolidation is present in the {side} {lobe} lobe with air bronchograms.",
        "Dense consolidation occupies part of the {side} {lobe} lobe.",
    ),
    "pneumothorax": (
        "{Severity} {side} pneumothorax.",
        "There is a {severity} {side} pneumothorax along the apex and lateral chest wall.",
        "A {severity} {side} pneumothorax is present, without mediastinal shift.",
    ),
    "cardiomegaly": (
        "The heart is {severity}ly enlarged.",
        "{Severity} cardiomegaly.",
        "The cardiac silhouette is {severity}ly enlarged.",
    ),
}
ABSENT = {
    "nodule": (
        "No pulmonary nodules.",
        "There is no suspicious pulmonary nodule or mass.",
        "No pulmonary nodule or mass is identified.",
    ),
    "pleural_effusion": (
        "No pleural effusion.",
        "There is no pleural effusion.",
        "No pleural effusion or pleural thickening.",
    ),
    "consolidation": (
        "No focal consolidation.",
        "There is no airspace consolidation.",
        "No consolidation is seen.",
    ),
    "pneumothorax": ("No pneumothorax.", "There is no pneumothorax.", "No pneumothorax is seen."),
    "cardiomegaly": (
        "Heart size is normal.",
        "The heart is normal in size.",
        "No cardiomegaly.",
    ),
}
IMPRESSION_PHRASES = {
    "nodule": "{diameter} mm {side} {lobe} lobe pulmonary nodule; follow-up CT is recommended",
    "pleural_effusion": "{severity} {side_effusion}",
    "consolidation": "{side} {lobe} lobe consolidation, compatible with pneumonia",
    "pneumothorax": "{severity} {side} pneumothorax",
    "cardiomegaly": "{severity} cardiomegaly",
}
NORMAL_IMPRESSIONS = (
    "No acute cardiopulmonary abnormality.",
    "No acute intrathoracic process.",
    "Normal CT of the chest.",
)
SECTIONS = (
    ("LUNGS AND AIRWAYS", ("nodule", "consolidation")),
    ("PLEURA", ("pleural_effusion", "pneumothorax")),
    ("HEART AND MEDIASTINUM", ("cardiomegaly",)),
)
BONES = (
    "No acute osseous abnormality.",
    "Mild degenerative changes of the thoracic spine.",
    "The visualized osseous structures are unremarkable.",
)


def _fields(finding: Finding) -> dict[str, str]:
    side_effusion = (
        "bilateral pleural effusions"
        if finding.side == "bilateral"
        else f"{finding.side} pleural effusion"
    )
    return {
        "diameter": f"{finding.diameter_mm:.0f}",
        "side": finding.side,
        "lobe": finding.lobe,
        "severity": finding.severity,
        "Severity": finding.severity.capitalize(),
        "side_effusion": side_effusion,
    }


def _choose(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:]


def findings_text(findings: list[Finding], rng: np.random.Generator) -> str:
    """The detailed report: one labelled paragraph per region, every finding stated."""
    present = {finding.name: finding for finding in findings}
    paragraphs = []
    for title, names in SECTIONS:
        sentences = [
            _sentence(_choose(rng, PRESENT[name]).format(**_fields(present[name])))
            if name in present
            else _choose(rng, ABSENT[name])
            for name in names
        ]
        paragraphs.append(f"{title}: {' '.join(sentences)}")
    paragraphs.append(f"BONES: {_choose(rng, BONES)}")
    return "\n".join(paragraphs)


def impression_text(findings: list[Finding], rng: np.random.Generator) -> str:
    """Numbered main findings; incidental ones are left to the detailed report."""
    reported = [finding for finding in findings if not finding.incidental]
    if not reported:
        return _choose(rng, NORMAL_IMPRESSIONS)
    phrases = [IMPRESSION_PHRASES[f.name].format(**_fields(f)) for f in reported]
    if len(phrases) == 1:
        return _sentence(phrases[0]) + "."
    return " ".join(f"{number}. {_sentence(p)}." for number, p in enumerate(phrases, start=1))
