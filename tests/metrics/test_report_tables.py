import pandas as pd
import pytest

from radreport.metrics.report_tables import read_prompt_table, read_report_table
from tests.another_user import locked_folder, raised_as_another_user


def test_iu_xray_layout(tmp_path):
    path = tmp_path / "iu.csv"
    pd.DataFrame(
        {"study_id": ["a"], "uid": [1], "impression": [""], "findings": ["Clear."], "mesh": ["x"]}
    ).to_csv(path, index=False)
    table = read_report_table(path)
    assert table.to_dict("records") == [{"study_id": "a", "impression": "", "reference": "Clear."}]


def test_manifest_layout(tmp_path):
    path = tmp_path / "manifest.csv"
    pd.DataFrame(
        {"study_id": ["a"], "patient_id": ["p"], "impression": ["Normal."], "report": ["Clear."]}
    ).to_csv(path, index=False)
    assert read_report_table(path)["reference"].tolist() == ["Clear."]


@pytest.mark.parametrize("dropped", ["study_id", "impression", "findings"])
def test_a_missing_column_is_named_with_the_file(tmp_path, dropped):
    path = tmp_path / "broken.csv"
    columns = {"study_id": ["a"], "impression": ["b"], "findings": ["c"]}
    del columns[dropped]
    pd.DataFrame(columns).to_csv(path, index=False)
    with pytest.raises(ValueError, match=f"broken.csv: missing column '{dropped}'") as error:
        read_report_table(path)
    assert "\n" not in str(error.value)


def test_column_names_match_without_case_or_spaces(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_text("\ufeffStudy_ID, Impression ,Findings\na,Normal.,Clear.\n", encoding="utf-8")
    assert read_report_table(path).to_dict("records") == [
        {"study_id": "a", "impression": "Normal.", "reference": "Clear."}
    ]


@pytest.mark.parametrize(
    ("header", "first", "second"),
    [
        ("study_id,impression,findings,impression", "impression", "impression"),
        # pandas names the repeat " Impression .1", which no longer reads as "impression"
        ("study_id, Impression ,findings, Impression ", " Impression ", " Impression "),
        ("study_id,Impression,findings,IMPRESSION", "Impression", "IMPRESSION"),
    ],
)
def test_a_known_column_given_twice_is_refused_with_its_headers_as_written(
    tmp_path, header, first, second
):
    path = tmp_path / "twice.csv"
    path.write_text(f"{header}\na,b,c,d\n")
    expected = f"twice.csv: column 'impression' appears twice (headers {first!r} and {second!r})"
    with pytest.raises(ValueError) as error:
        read_prompt_table(path)
    assert str(error.value).endswith(expected)


def test_other_columns_may_repeat_and_a_known_name_may_carry_a_suffix(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("study_id,note,impression,note,impression.1\na,x,Normal.,y,z\n")
    table = read_prompt_table(path)
    assert table[["study_id", "impression"]].to_dict("records") == [
        {"study_id": "a", "impression": "Normal."}
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"study_id,impression\na,caf\xe9\n",
            "line 2: not UTF-8 text \\(byte 0xe9 at position 25\\)",
        ),
        (b"", "empty file"),
        (b"study_id,impression,findings\n", "no rows"),
        (b'study_id,impression\na,"never closed\n', "not a readable CSV"),
        # pandas would read the first fields as an index and shift every column left
        (
            b"study_id,impression,findings\na,Normal.,Clear.,extra\nb,X.,Y.\n",
            "not a readable CSV \\(line 2 has 4 fields, the header has 3\\)",
        ),
        (
            b"\nstudy_id,impression,findings\n\na,Normal.,Clear.,x\nb,X.,Y.,y\n",
            "not a readable CSV \\(line 4 has 4 fields, the header has 3\\)",
        ),
        (
            b"study_id,impression,findings\ra,Normal.,Clear.,extra\rb,X.,Y.\r",  # old Mac lines
            "not a readable CSV \\(line 2 has 4 fields, the header has 3\\)",
        ),
        # a line of spaces, which pandas skips as blank, before that row
        (
            b"study_id,impression,findings\n \n00123,No acute disease.,Heart normal.,\n",
            "not a readable CSV \\(line 3 has 4 fields, the header has 3\\)",
        ),
        # a cell over the csv module's size limit in that row: pandas' index still tells
        (
            b"study_id,impression,findings\n" + b"x" * 200_000 + b",Normal.,Clear.,extra\n",
            "not a readable CSV \\(the first row has more fields than the header\\)",
        ),
        (b"study_id,impression\na,b\nc,d,e\n", "not a readable CSV"),
        # A line break in an unquoted cell: two short rows, the second one's first words
        # its study id. The line is the record's first, past a quoted cell's line break.
        (
            b'study_id,impression,findings\nA0,"Two\nlines.",Ref.\nA1,No acute\n'
            b"disease.,Heart normal.\n",
            "not a readable CSV \\(line 4 has 2 fields, the header has 3\\)",
        ),
        (
            b"sep=,\nstudy_id,impression,findings\na,Normal.,Clear.\nb,X.\n",
            "not a readable CSV \\(line 4 has 2 fields, the header has 3\\)",
        ),
        # Tab-separated, with commas in a cell.
        (
            b"study_id\timpression\tfindings\na\tNo effusion, no edema.\tClear.\n",
            "not a readable CSV \\(line 2 has 2 fields, the header has 1\\); the header is one "
            "column separated by tabs: save it comma-separated",
        ),
        (
            b"sep=;\nstudy_id;impression\na;b\n",
            "line 1: the file says its fields are separated by semicolons \\(sep=;\\)",
        ),
        (
            b'study_id,impression\na,"He said \\"no effusion\\" today."\n',
            "line 2: a quote escaped with a backslash",
        ),
        (b"study_id,impression\na,No\x00 effusion.\n", "line 2: a NUL character"),
        # A quote inside a quoted cell not doubled (an inch mark unquoted is fine: below).
        (
            b'study_id,impression\na,5" nodule.\nb,"No "quoted" effusion."\n',
            "line 3: a quoted cell goes on after its closing quote",
        ),
    ],
)
def test_unreadable_tables_are_refused_in_one_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"bad.csv: {message}") as error:
        read_prompt_table(path)
    assert "\n" not in str(error.value)


def test_excels_separator_line_is_not_the_header(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"sep=,\r\nstudy_id,impression,findings\r\n00123,Normal.,Clear.\r\n")
    table = read_prompt_table(path)
    assert table.values.tolist() == [["00123", "Normal.", "Clear."]]


def test_a_directory_is_not_a_table(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        read_prompt_table(tmp_path)


def test_prompt_table_without_references(tmp_path):
    path = tmp_path / "prompts.csv"
    path.write_text("study_id,impression,extra\na,Normal.,x\n")
    assert read_prompt_table(path).to_dict("records") == [
        {"study_id": "a", "impression": "Normal."}
    ]


def test_a_missing_value_marker_alone_is_an_empty_text(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(
        '"","study_id","impression","findings"\n'  # as R's write.csv writes it
        '"1","a",NA,"Clear."\n"2","b","Effusion.",NULL\n"3","NA","No NA here.","\\N"\n'
    )
    table = read_report_table(path)
    assert table.values.tolist() == [
        ["a", "", "Clear."],
        ["b", "Effusion.", ""],
        ["NA", "No NA here.", ""],  # a study id is kept as written
    ]


def test_invisible_characters_in_a_header_do_not_hide_its_column(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("study_id,impression\u200b,findings\na,Normal.,Clear.\n")
    assert read_report_table(path).values.tolist() == [["a", "Normal.", "Clear."]]
    path.write_text("study_id,impresion,findings\na,Normal.,Clear.\n")
    with pytest.raises(ValueError, match="missing column 'impression' \\(the header has "):
        read_report_table(path)


@pytest.mark.parametrize("read", [read_report_table, read_prompt_table])
def test_a_table_in_a_folder_the_user_cannot_enter_is_one_line(tmp_path, read):
    path = locked_folder(tmp_path) / "x.csv"
    assert raised_as_another_user(lambda: read(path)) == f"ValueError: {path}: permission denied"
