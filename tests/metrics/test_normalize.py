import pytest

from radreport.metrics.normalize import normalize_report


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        (
            "The heart is normal. The lungs are clear.",
            "the heart is normal . the lungs are clear .",
        ),
        ("1. No evidence of active disease.", "no evidence of active disease ."),
        (
            "1. Small effusion. 2. Mild atelectasis/airspace disease.",
            "small effusion . mild atelectasisairspace disease .",
        ),
        ("Cardiomegaly 2. Left effusion", "cardiomegaly . left effusion ."),
        ("Negative chest x-XXXX.", "negative chest xxxxx ."),
        ('Lungs (clear); "stable" [sic] {ok}: 3.5 cm!', "lungs clear stable sic ok 35 cm ."),
        ("Today's exam.. No change.", "todays exam . no change ."),
        ("", ""),
        (" . ", ""),
    ],
)
def test_normalize_report_follows_r2gen(raw, normalized):
    assert normalize_report(raw) == normalized
