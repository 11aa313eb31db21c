import numpy as np
import pytest

from radreport.metrics.finding_f1 import FindingCounts, finding_f1, per_finding_table
from radreport.metrics.labeler import OBSERVATIONS, binarize_labels, label_reports

REFERENCES = [
    "Mild cardiomegaly. No pneumothorax.",
    "Small left pleural effusion. No pneumothorax.",
    "The lungs are clear. No pleural effusion.",
]


def _scores(references, generated):
    reference = binarize_labels(label_reports(references), uncertain_as=1)
    draft = binarize_labels(label_reports(generated), uncertain_as=1)
    counts = FindingCounts.compare(reference, draft)
    return {name: values[0] for name, values in finding_f1(counts, np.ones((1, 3))).items()}


def test_identical_reports_have_perfect_finding_f1():
    assert _scores(REFERENCES, REFERENCES) == {
        "finding_f1_micro": 1.0,
        "finding_f1_macro": 1.0,
        "finding_f1_example": 1.0,
    }


def test_a_flipped_negation_lowers_finding_f1():
    flipped = [REFERENCES[0], "Small left pleural effusion. Pneumothorax.", REFERENCES[2]]
    scores = _scores(REFERENCES, flipped)
    # References: {Cardiomegaly}, {Effusion}, {No Finding}; the flip adds one false
    # Pneumothorax: micro 2*3 / (2*3 + 1); macro over 4 observations (pneumothorax F1 0);
    # example: report 2 scores 2*1 / (2*1 + 1).
    assert scores["finding_f1_micro"] == pytest.approx(6 / 7)
    assert scores["finding_f1_macro"] == pytest.approx(3 / 4)
    assert scores["finding_f1_example"] == pytest.approx((1 + 2 / 3 + 1) / 3)


def test_weights_resample_reports():
    reference = np.zeros((2, len(OBSERVATIONS)), dtype=bool)
    generated = reference.copy()
    reference[:, 2] = True  # both references have cardiomegaly
    generated[0, 2] = True  # only the first draft says so
    counts = FindingCounts.compare(reference, generated)
    scores = finding_f1(counts, np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]]))
    np.testing.assert_allclose(scores["finding_f1_micro"], [1.0, 0.0, 2 / 3])
    np.testing.assert_allclose(scores["finding_f1_example"], [1.0, 0.0, 0.5])


def test_per_finding_table_counts_and_rates():
    reference = np.zeros((3, len(OBSERVATIONS)), dtype=bool)
    generated = reference.copy()
    reference[:2, 2] = True
    generated[1:, 2] = True
    table = per_finding_table(FindingCounts.compare(reference, generated)).set_index("observation")
    row = table.loc["Cardiomegaly"]
    assert (row.reference_positive, row.generated_positive, row.true_positive) == (2, 2, 1)
    assert (row.precision, row.recall, row.f1) == (0.5, 0.5, 0.5)
    assert np.isnan(table.loc["Fracture", "f1"])
