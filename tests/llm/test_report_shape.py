"""A second report begun past a report's end is cut, by the marks the training reports lack."""

from __future__ import annotations

from radreport.llm.report_shape import ReportShape

SECTIONED = (
    "COMPARISON: None.\n"
    "LUNGS AND AIRWAYS: No pulmonary nodule. No focal consolidation.\n"
    "PLEURA: No pleural effusion. No pneumothorax.\n"
    "HEART AND MEDIASTINUM: No cardiomegaly."
)
PROSE = "The heart is normal in size. The lungs are clear. No pleural effusion or pneumothorax."
BOTH_MARKS = ReportShape(ends_at_blank_line=True, ends_at_repeated_label=True)


def test_the_marks_are_those_the_training_reports_do_not_have():
    assert ReportShape.learn([SECTIONED, PROSE]) == BOTH_MARKS
    spaced = SECTIONED.replace("\n", "\n\n")
    assert ReportShape.learn([SECTIONED, spaced]) == ReportShape(False, True)
    repeated = f"{SECTIONED}\nPLEURA: Small left effusion."
    assert ReportShape.learn([repeated, PROSE]) == ReportShape(True, False)
    # A blank line at either end of a training report is not inside it.
    assert ReportShape.learn([f"\n\n{PROSE}\n\n"]).ends_at_blank_line


def test_a_mark_in_at_most_one_percent_of_the_training_reports_is_still_used():
    spaced = SECTIONED.replace("\n", "\n\n")
    repeated = f"{SECTIONED}\nPLEURA: Small left effusion."
    assert ReportShape.learn([spaced, repeated] + [SECTIONED] * 98) == BOTH_MARKS
    assert ReportShape.learn([spaced, repeated] + [SECTIONED] * 97) == ReportShape(False, False)


def test_a_second_report_after_a_blank_line_is_cut():
    restarted = f"{SECTIONED}\n\nCOMPARISON: [NAME] [DATE]."
    assert BOTH_MARKS.cut(restarted) == SECTIONED
    # Spaces or a carriage return on the blank line make no difference.
    assert BOTH_MARKS.cut(f"{PROSE}\n \r\n{PROSE}") == PROSE
    assert ReportShape(False, False).cut(f"{PROSE}\n\n{PROSE}") == f"{PROSE}\n\n{PROSE}"


def test_a_repeated_section_label_ends_the_report_at_its_line():
    restarted = f"{SECTIONED}\ncomparison :  Chest CT of [DATE].\nPLEURA: Small effusion."
    assert BOTH_MARKS.report_end(restarted) == len(SECTIONED) + 1
    assert BOTH_MARKS.cut(restarted) == SECTIONED
    # Only where the training reports never repeat one.
    assert ReportShape(True, False).cut(restarted) == restarted


def test_a_report_without_either_mark_is_kept_whole():
    # Colons inside a line, times and ratios are not section labels.
    odd = (
        "FINDINGS: Nodule at 10:30 position, ratio 2:1. Note: stable.\n"
        "IMPRESSION: Stable. Note: as above."
    )
    for report in (SECTIONED, PROSE, odd, ""):
        assert BOTH_MARKS.report_end(report) is None
        assert BOTH_MARKS.cut(f"  {report}\n") == report
