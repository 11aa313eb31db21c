import pandas as pd

from radreport.metrics.baselines import BASELINE_LABELS, baseline_reports

TRAIN = pd.DataFrame(
    {
        "impression": [
            "No acute disease.",
            "Cardiomegaly.",
            "No acute disease.",
            "",
            "No acute disease.",
            "Left pleural effusion.",
        ],
        "reference": [
            "Heart normal. Lungs clear.",
            "The heart is enlarged.",
            "The lungs are clear.",
            "The lungs are clear.",
            "The lungs are clear.",
            "Small left effusion.",
        ],
    }
)


def test_every_baseline_gives_one_report_per_impression():
    reports = baseline_reports(TRAIN, ["Cardiomegaly.", "Effusion on the left."])
    assert set(reports) == set(BASELINE_LABELS)
    assert all(len(texts) == 2 for texts in reports.values())


def test_most_frequent_report_and_copy():
    reports = baseline_reports(TRAIN, ["Anything.", "Else"])
    assert reports["most_frequent_report"] == ["The lungs are clear."] * 2
    assert reports["copy_impression"] == ["Anything.", "Else"]


def test_tfidf_takes_the_nearest_impression_and_the_first_on_ties():
    reports = baseline_reports(TRAIN, ["No acute cardiopulmonary disease.", "Effusion, left."])
    # "no acute disease" appears three times: ties go to the first training row.
    assert reports["tfidf_nearest_impression"] == [
        "Heart normal. Lungs clear.",
        "Small left effusion.",
    ]


def test_exact_lookup_takes_the_most_frequent_report_of_the_same_impression():
    reports = baseline_reports(TRAIN, ["1. NO ACUTE DISEASE", "Effusion, left."])
    assert reports["exact_impression_lookup"] == ["The lungs are clear.", "Small left effusion."]


def test_an_impression_without_known_words_gets_the_most_frequent_report():
    reports = baseline_reports(TRAIN, ["Pneumothorax."])
    assert reports["tfidf_nearest_impression"] == ["The lungs are clear."]
    assert reports["exact_impression_lookup"] == ["The lungs are clear."]


def test_impressions_without_a_word_get_the_most_frequent_report_not_an_error():
    train = pd.DataFrame({"impression": ["x", "-"], "reference": ["A.", "A."]})
    reports = baseline_reports(train, ["y", "?"])
    assert reports["tfidf_nearest_impression"] == ["A.", "A."]


def test_chinese_impressions_are_matched_by_their_characters():
    train = pd.DataFrame(
        {
            "impression": ["左侧胸腔积液。", "心脏增大。"],
            "reference": ["左侧少量胸腔积液。", "心影增大。"],
        }
    )
    reports = baseline_reports(train, ["心脏明显增大。", "左侧积液。"])
    assert reports["tfidf_nearest_impression"] == ["心影增大。", "左侧少量胸腔积液。"]
