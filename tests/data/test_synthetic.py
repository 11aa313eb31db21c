"""The demo generator: deterministic, and its labels, masks, reports and impressions agree."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from radreport.data.phantom import FINDINGS, INCIDENTAL_NODULE_MM
from radreport.data.report_templates import findings_text, impression_text
from radreport.data.synthetic import generate_demo_studies, plan_studies, sample_findings

# Independent of the templates: what a reader would search the report for.
MENTIONS = {
    "nodule": r"nodul",
    "pleural_effusion": r"pleural effusion",
    "consolidation": r"consolidation",
    "pneumothorax": r"pneumothorax",
    "cardiomegaly": r"cardiomegaly|heart|cardiac silhouette",
}
NEGATION = re.compile(r"\bno\b|\bnormal\b|\bnot\b", re.IGNORECASE)


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=\.)\s+|\n", text) if s.strip()]


def _stated(report: str, finding: str) -> list[bool]:
    """For each sentence naming the finding: is it affirmed (True) or negated (False)?"""
    mentions = [s for s in _sentences(report) if re.search(MENTIONS[finding], s, re.I)]
    return [not NEGATION.search(s) for s in mentions]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    generate_demo_studies(out, n_studies=8, slices=(8, 10), size=64, seed=3, workers=1)
    return out


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_same_seed_same_bytes_whatever_the_workers(demo, tmp_path):
    again = tmp_path / "again"
    generate_demo_studies(again, n_studies=8, slices=(8, 10), size=64, seed=3, workers=2)
    assert _digest(again) == _digest(demo)
    other = tmp_path / "other"
    generate_demo_studies(other, n_studies=8, slices=(8, 10), size=64, seed=4, workers=1)
    assert _digest(other) != _digest(demo)


def test_every_report_states_every_finding_the_way_the_labels_say():
    for seed in range(300):
        rng = np.random.default_rng(seed)
        findings = sample_findings(rng)
        report = findings_text(findings, rng)
        present = {finding.name for finding in findings}
        for name in FINDINGS:
            stated = _stated(report, name)
            assert stated, f"{name} is not mentioned: {report}"
            assert any(stated) == (name in present), f"{name}: {report}"


def test_impression_leaves_out_incidental_nodules_only():
    incidental_seen = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        findings = sample_findings(rng)
        impression = impression_text(findings, rng)
        for finding in findings:
            named = bool(re.search(MENTIONS[finding.name], impression, re.I))
            if finding.name == "nodule" and finding.diameter_mm <= INCIDENTAL_NODULE_MM:
                incidental_seen += 1
                assert not named, impression
            else:
                assert named, f"{finding.name} missing from: {impression}"
        if not findings:
            assert NEGATION.search(impression) or "No acute" in impression
    assert incidental_seen > 10


def test_manifest_labels_match_masks_and_report(demo):
    manifest = pd.read_csv(demo / "manifest.csv", keep_default_na=False)
    assert list(manifest.columns) == [
        "study_id", "patient_id", "impression", "report", "dicom_dir", "labels"
    ]  # fmt: skip
    for row in manifest.itertuples():
        labels = json.loads(row.labels)
        with np.load(demo / "masks" / f"{row.study_id}.npz") as masks:
            for name in FINDINGS:
                assert bool(masks[name].any()) == labels[name], (row.study_id, name)
                assert any(_stated(row.report, name)) == labels[name], (row.study_id, name)


def test_headers_carry_fake_phi_and_real_ct_geometry(demo):
    manifest = pd.read_csv(demo / "manifest.csv", keep_default_na=False)
    folder = demo / manifest.dicom_dir[0]
    files = sorted(folder.glob("IM*.dcm")) or sorted(folder.glob("ENHANCED.dcm"))
    dataset = pydicom.dcmread(files[0])
    assert dataset.PatientID == manifest.patient_id[0]
    assert "^" in str(dataset.PatientName) and len(dataset.PatientBirthDate) == 8
    assert dataset.InstitutionName and dataset.AccessionNumber.startswith("ACC")
    assert dataset.Modality == "CT" and dataset.Rows == 64
    assert any(element.tag.is_private for element in dataset)


def test_some_patients_have_several_studies_and_later_reports_compare():
    studies = plan_studies(200, (16, 32), seed=0)
    patients = {study.patient.patient_id for study in studies}
    assert 100 < len(patients) < 200
    priors = [study for study in studies if study.prior_date]
    assert priors and all(study.prior_date < study.date for study in priors)
