import pandas as pd
import pytest

from radreport.metrics.report_tables import read_report_table


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
