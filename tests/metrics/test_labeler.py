import math

import pytest

from radreport.metrics.labeler import (
    NEGATIVE,
    OBSERVATIONS,
    POSITIVE,
    UNCERTAIN,
    binarize_labels,
    label_report,
    label_reports,
)


def _mentioned(text: str) -> dict[str, float]:
    return {name: value for name, value in label_report(text).items() if not math.isnan(value)}


def test_negation_scope_covers_a_list_of_findings():
    labels = _mentioned("No pleural effusion or pneumothorax.")
    assert labels["Pleural Effusion"] == NEGATIVE
    assert labels["Pneumothorax"] == NEGATIVE
    assert labels["No Finding"] == POSITIVE


def test_negation_ends_at_a_contrasting_clause():
    labels = _mentioned("No pneumothorax, but there is a small left effusion.")
    assert labels["Pneumothorax"] == NEGATIVE
    assert labels["Pleural Effusion"] == POSITIVE


@pytest.mark.parametrize(
    ("text", "observation", "status"),
    [
        ("Opacity at the left base may represent atelectasis.", "Atelectasis", UNCERTAIN),
        ("Opacity at the left base may represent atelectasis.", "Lung Opacity", POSITIVE),
        ("Pneumonia cannot be excluded.", "Pneumonia", UNCERTAIN),
        ("Cannot exclude pneumonia.", "Pneumonia", UNCERTAIN),
        ("Atelectasis versus pneumonia.", "Atelectasis", UNCERTAIN),
        ("Borderline enlargement of the heart.", "Cardiomegaly", UNCERTAIN),
        ("No focal consolidation to suggest pneumonia.", "Pneumonia", NEGATIVE),
        ("The heart is not enlarged.", "Cardiomegaly", NEGATIVE),
        ("Small right pneumothorax is not visualized on today's exam.", "Pneumothorax", NEGATIVE),
        ("Interval resolution of the left effusion.", "Pleural Effusion", NEGATIVE),
        ("Lungs are clear without focal consolidation.", "Consolidation", NEGATIVE),
        ("No interval change in mild cardiomegaly.", "Cardiomegaly", POSITIVE),
        ("No pericardial effusion.", "Pleural Effusion", None),
        ("Left PICC with tip in the SVC.", "Support Devices", POSITIVE),
        ("Old healed left rib fractures.", "Fracture", POSITIVE),
        ("Mild pulmonary vascular congestion.", "Edema", POSITIVE),
        ("Heart size and vascular engorgement appear within limits of normal.", "Edema", NEGATIVE),
        ("Residuals of prior granulomatous infection.", "Pneumonia", None),
        ("The cardiomediastinal silhouette is widened.", "Enlarged Cardiomediastinum", POSITIVE),
    ],
)
def test_mention_status(text, observation, status):
    assert _mentioned(text).get(observation) == status


def test_a_normal_report_has_only_no_finding():
    text = (
        "The heart is normal in size. The mediastinum is unremarkable. The lungs are clear. "
        "No pneumothorax or pleural effusion. No acute osseous abnormality."
    )
    labels = _mentioned(text)
    assert labels.pop("No Finding") == POSITIVE
    assert set(labels.values()) == {NEGATIVE}


def test_support_devices_alone_keep_no_finding():
    labels = _mentioned("Right chest port. The lungs are clear.")
    assert labels == {"No Finding": POSITIVE, "Support Devices": POSITIVE}


def test_positive_beats_uncertain_beats_negative_within_a_report():
    assert _mentioned("No effusion on the right. Small left effusion.")["Pleural Effusion"] == 1
    assert _mentioned("No effusion. Possible small effusion.")["Pleural Effusion"] == UNCERTAIN


@pytest.mark.parametrize(
    ("text", "observation"),
    [
        ("There is a 6 mm pulmonary nodule in the upper lobe of the right lung.", "Lung Lesion"),
        ("Moderate right pleural effusion, layering dependently.", "Pleural Effusion"),
        ("Patchy consolidation is present in the left lower lobe.", "Consolidation"),
        ("A small left pneumothorax is present, without mediastinal shift.", "Pneumothorax"),
        ("HEART AND MEDIASTINUM: The heart is mildly enlarged.", "Cardiomegaly"),
    ],
)
def test_synthetic_ct_demo_findings_are_found(text, observation):
    labels = _mentioned(text)
    assert labels[observation] == POSITIVE
    assert "No Finding" not in labels


def test_label_table_and_presence_with_uncertain_as_configured():
    table = label_reports(["May represent atelectasis.", "No pneumothorax."])
    assert list(table.columns) == list(OBSERVATIONS)
    atelectasis = OBSERVATIONS.index("Atelectasis")
    assert binarize_labels(table, uncertain_as=1)[0, atelectasis]
    assert not binarize_labels(table, uncertain_as=0)[0, atelectasis]
    only_no_finding = [name == "No Finding" for name in OBSERVATIONS]
    assert binarize_labels(table, uncertain_as=1)[1].tolist() == only_no_finding


@pytest.mark.parametrize(
    ("text", "observation", "status"),
    [
        # Structured reports answer a mention with one word.
        ("Pneumothorax: none.", "Pneumothorax", NEGATIVE),
        ("Effusion, resolved.", "Pleural Effusion", NEGATIVE),
        ("Pleural effusion? No.", "Pleural Effusion", NEGATIVE),
        ("Pleural effusion? Yes.", "Pleural Effusion", POSITIVE),
        ("Effusion, no pneumothorax.", "Pleural Effusion", POSITIVE),
        ("Effusion: no change.", "Pleural Effusion", POSITIVE),
        ("Pneumothorax is unlikely.", "Pneumothorax", UNCERTAIN),
        ("Atelectasis rather than pneumonia.", "Pneumonia", NEGATIVE),
        ("Atelectasis rather than pneumonia.", "Atelectasis", POSITIVE),
        # Any line end ends a negation's scope: a lone CR, U+2028, U+0085.
        ("No effusion\rPneumothorax.", "Pneumothorax", POSITIVE),
        ("No effusion\u2028Pneumothorax.", "Pneumothorax", POSITIVE),
        ("No effusion\u0085Pneumothorax.", "Pneumothorax", POSITIVE),
    ],
)
def test_answers_contrasts_and_line_ends_as_other_systems_write_them(text, observation, status):
    assert label_report(text)[observation] == status
