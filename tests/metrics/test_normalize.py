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


@pytest.mark.parametrize(
    ("written", "as_typed_elsewhere"),
    [
        ("Pas d'épanchement pleural.", "Pas d\u2019e\u0301panchement pleural."),  # macOS, Word
        ("Kein Erguss. Herz normal.", "Kein Erguss\u200b. Herz nor\u00admal."),  # pasted
        ("CT normal. Effusion.", "ＣＴ normal。 Effusion…"),  # full-width, 。 and …
    ],
)
def test_text_that_reads_the_same_normalises_the_same(written, as_typed_elsewhere):
    assert normalize_report(as_typed_elsewhere) == normalize_report(written)


def test_chinese_and_japanese_characters_are_tokens_and_end_sentences_at_the_full_stop():
    assert normalize_report("心脏大小正常。双肺清晰。") == "心 脏 大 小 正 常 . 双 肺 清 晰 ."
    assert normalize_report("肺野に異常なし。") == "肺 野 に 異 常 な し ."
