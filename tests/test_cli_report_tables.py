"""`run.py evaluate` and `run.py baselines` on report tables they cannot use in full: one
line naming the option and file, exit 2, before a model loads; rows without a reference are
left out of the scores with a warning."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TRAIN = (
    "study_id,impression,findings\n"
    "t1,No acute disease.,The lungs are clear. The heart is normal.\n"
    "t2,Small right effusion.,Small right pleural effusion. The heart is normal.\n"
    "t3,Cardiomegaly.,The heart is enlarged. The lungs are clear.\n"
)
REPORTS = (
    "study_id,impression,findings\n"
    "r1,No acute disease.,The lungs are clear.\n"
    "r2,Cardiomegaly.,The heart is enlarged.\n"
)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "run.py"), *args], capture_output=True, text=True, cwd=REPO
    )


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def assert_one_line_error(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("error: ") and expected in result.stderr


def test_evaluate_refuses_an_out_that_is_a_file_before_loading_a_model(tmp_path):
    reports = write(tmp_path, "reports.csv", REPORTS)
    out = write(tmp_path, "taken", "")
    result = run_cli("evaluate", "--reports", str(reports), "--out", str(out))
    assert_one_line_error(result, f"--out {out}: exists and is not a directory")
    blocked = tmp_path / "blocked"
    (blocked / "metrics.json").mkdir(parents=True)
    result = run_cli("evaluate", "--reports", str(reports), "--out", str(blocked))
    assert_one_line_error(result, f"--out {blocked}: metrics.json is a directory there")


def test_evaluate_names_the_option_of_a_missing_file(tmp_path):
    result = run_cli("evaluate", "--reports", str(tmp_path / "absent.csv"), "--out", "x")
    assert_one_line_error(result, f"--reports {tmp_path / 'absent.csv'}: no such file")


@pytest.mark.parametrize("header", ["impression", " Impression "])
def test_a_column_given_twice_is_refused(tmp_path, header):
    reports = write(tmp_path, "reports.csv", f"study_id,impression,findings,{header}\na,b,c,d\n")
    result = run_cli("evaluate", "--reports", str(reports), "--out", str(tmp_path / "out"))
    assert_one_line_error(result, "column 'impression' appears twice")
    assert not (tmp_path / "out").exists()
    train = write(tmp_path, "train.csv", TRAIN)
    result = run_cli("baselines", "--train", str(train), "--reports", str(reports))
    assert_one_line_error(result, f"--reports {reports}: column 'impression' appears twice")


def test_baselines_refuse_tables_with_nothing_to_score(tmp_path):
    train = write(tmp_path, "train.csv", TRAIN)
    header_only = write(tmp_path, "header.csv", "study_id,impression,findings\n")
    result = run_cli("baselines", "--train", str(train), "--reports", str(header_only))
    assert_one_line_error(result, f"--reports {header_only}: no rows")
    result = run_cli("baselines", "--train", str(header_only), "--reports", str(train))
    assert_one_line_error(result, f"--train {header_only}: no rows")
    no_findings = write(tmp_path, "no_findings.csv", "study_id,impression,findings\na,b,\nc,d, \n")
    result = run_cli("baselines", "--train", str(no_findings), "--reports", str(train))
    assert_one_line_error(result, f"--train {no_findings}: no row has a reference")


def test_baselines_leave_out_the_rows_without_a_reference_and_say_so(tmp_path):
    train = write(tmp_path, "train.csv", TRAIN)
    reports = write(tmp_path, "reports.csv", REPORTS)
    with_gap = write(tmp_path, "with_gap.csv", REPORTS + "r3,Small right effusion.,\n")
    expected = run_cli("baselines", "--train", str(train), "--reports", str(reports), "--json")
    result = run_cli("baselines", "--train", str(train), "--reports", str(with_gap), "--json")
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected.stdout  # scored on r1 and r2 alone
    assert (
        f"warning: {with_gap}: 1 of 3 rows have an empty reference (findings or report) "
        "(first: row 3, study_id r3); left out"
    ) in result.stderr
    # A study id with a line break in it is shown escaped: the warning stays one line.
    broken_id = write(tmp_path, "broken_id.csv", REPORTS + '"r\n3",Small right effusion.,\n')
    result = run_cli("baselines", "--train", str(train), "--reports", str(broken_id), "--json")
    assert "(first: row 3, study_id 'r\\n3'); left out\n" in result.stderr


def test_a_semicolon_separated_file_is_named_as_such(tmp_path):
    reports = write(tmp_path, "reports.csv", "study_id;impression;findings\na;b;c\n")
    result = run_cli("evaluate", "--reports", str(reports), "--out", str(tmp_path / "out"))
    assert_one_line_error(result, "separated by semicolons: save it comma-separated")


def test_references_in_which_the_labeler_reads_no_finding_are_warned_about(tmp_path):
    chinese = write(
        tmp_path,
        "zh.csv",
        "study_id,impression,findings\na,心脏增大。,心影增大。\nb,积液。,少量胸腔积液。\n",
    )
    result = run_cli("baselines", "--train", str(chinese), "--reports", str(chinese), "--json")
    assert result.returncode == 0, result.stderr
    warning = (
        f"warning: {chinese}: the finding labeler (English CheXpert rules) reads no finding, "
        "present or absent, in any reference: finding F1 says nothing of these reports\n"
    )
    assert result.stderr.count(warning) == 2  # --train and --reports
    english = write(tmp_path, "en.csv", TRAIN)
    result = run_cli("baselines", "--train", str(english), "--reports", str(english), "--json")
    assert "labeler" not in result.stderr
