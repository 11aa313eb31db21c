"""The bundled demo studies: seeded thorax CT phantoms written as real DICOM, with findings,
ground-truth masks, an impression and a detailed report per study, and a manifest in the
bring-your-own-data layout.

Headers carry invented PHI (names, IDs, birth dates, addresses, institution, physicians,
accession numbers, a private tag), and some reports quote a name, a date or an accession
number, so de-identification of images and text can be tested end to end. Some patients
have several studies; later reports compare with the earlier date.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from tqdm.auto import tqdm

from radreport.data.fake_identities import (
    FakePatient,
    FakeSite,
    fake_patient,
    fake_physician,
    fake_site,
)
from radreport.data.phantom import FIELD_OF_VIEW_MM, FINDINGS, Finding, draw_phantom
from radreport.data.report_templates import findings_text, impression_text
from radreport.dicom.write_series import (
    SeriesLayout,
    write_ct_series,
    write_enhanced_ct,
    write_localizer,
)

NORMAL_FRACTION = 0.3
FINDING_CHANCE = {
    "nodule": 0.35,
    "pleural_effusion": 0.3,
    "consolidation": 0.25,
    "pneumothorax": 0.15,
    "cardiomegaly": 0.25,
}
STUDIES_PER_PATIENT = 1.6
COVERAGE_MM = 240.0
DATE_FORMATS = ("{d:%m/%d/%Y}", "{d:%Y-%m-%d}", "{d:%B} {d.day}, {d.year}", "{d.day} {d:%b %Y}")
PRIVATE_CREATOR = "RADREPORT DEMO"


@dataclass(frozen=True)
class PlannedStudy:
    study_id: str
    patient: FakePatient
    site: FakeSite
    physician: tuple[str, str]
    operator: tuple[str, str]
    accession: str
    date: dt.date
    prior_date: dt.date | None
    slices: int


def _patients_and_dates(n_studies: int, seed: int) -> list[tuple[int, dt.date, dt.date | None]]:
    """(patient index, study date, prior study date) per study; about 1.6 studies a patient."""
    rng = np.random.default_rng([seed, 0])
    n_patients = max(1, round(n_studies / STUDIES_PER_PATIENT))
    owners = np.concatenate(
        [np.arange(min(n_patients, n_studies)), rng.integers(0, n_patients, n_studies)]
    )[:n_studies]
    last: dict[int, dt.date] = {}
    plan = []
    for owner in map(int, owners):
        prior = last.get(owner)
        start = dt.date(2016, 1, 1) + dt.timedelta(days=int(rng.integers(0, 2500)))
        date = prior + dt.timedelta(days=int(rng.integers(30, 400))) if prior else start
        last[owner] = date
        plan.append((owner, date, prior))
    return plan


def plan_studies(n_studies: int, slices: tuple[int, int], seed: int) -> list[PlannedStudy]:
    rng = np.random.default_rng([seed, 1])
    patients = {}
    studies = []
    for index, (owner, date, prior) in enumerate(_patients_and_dates(n_studies, seed)):
        patient = patients.setdefault(owner, fake_patient(rng))
        studies.append(
            PlannedStudy(
                study_id=f"demo-{index:04d}",
                patient=patient,
                site=fake_site(rng),
                physician=fake_physician(rng),
                operator=fake_physician(rng),
                accession=f"ACC{int(rng.integers(10**7, 10**8))}",
                date=date,
                prior_date=prior,
                slices=int(rng.integers(slices[0], slices[1] + 1)),
            )
        )
    return studies


def sample_findings(rng: np.random.Generator) -> list[Finding]:
    if rng.random() < NORMAL_FRACTION:
        return []
    names = [name for name in FINDINGS if rng.random() < FINDING_CHANCE[name]]
    findings = [_finding(name, rng) for name in names or [_pick(rng, FINDINGS)]]
    return _visible_together(findings)


def _visible_together(findings: list[Finding]) -> list[Finding]:
    """Fluid fills the lower lung first, so a consolidation on an effusion's side is placed
    in the upper lobe, where there is air left to replace."""
    effusion = next((f for f in findings if f.name == "pleural_effusion"), None)
    if effusion is None:
        return findings
    return [
        replace(f, lobe="upper")
        if f.name == "consolidation" and effusion.side in (f.side, "bilateral")
        else f
        for f in findings
    ]


def _finding(name: str, rng: np.random.Generator) -> Finding:
    side = ("left", "right")[int(rng.integers(2))]
    lobe = ("upper", "lower")[int(rng.integers(2))]
    if name == "nodule":
        small = rng.random() < 0.5
        diameter = rng.uniform(4.0, 6.0) if small else rng.uniform(7.0, 16.0)
        return Finding(name, side=side, lobe=lobe, diameter_mm=round(float(diameter)))
    if name == "pleural_effusion":
        side = ("left", "right", "bilateral")[int(rng.integers(3))]
        return Finding(name, side=side, severity=_pick(rng, ("small", "moderate", "large")))
    if name == "consolidation":
        return Finding(name, side=side, lobe=lobe)
    if name == "pneumothorax":
        return Finding(name, side=side, severity=_pick(rng, ("small", "moderate", "large")))
    return Finding(name, severity=_pick(rng, ("mild", "moderate")))


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _format_date(date: dt.date, rng: np.random.Generator) -> str:
    return _pick(rng, DATE_FORMATS).format(d=date)


def detailed_report(study: PlannedStudy, findings: list[Finding], rng: np.random.Generator):
    """Findings section framed by the lines real reports carry, some quoting PHI."""
    lines = []
    if rng.random() < 0.15:
        lines.append(f"EXAM: CT chest without contrast, accession {study.accession}.")
    comparison = (
        f"CT chest dated {_format_date(study.prior_date, rng)}" if study.prior_date else "None"
    )
    lines.append(f"COMPARISON: {comparison}.")
    lines.append(findings_text(findings, rng))
    if findings and rng.random() < 0.3:
        given, family = study.physician
        when = _format_date(study.date, rng)
        lines.append(f"Findings were discussed with Dr. {given} {family} on {when}.")
    if rng.random() < 0.1:
        lines.append(f"Images reviewed for {study.patient.given_name} {study.patient.family_name}.")
    return "\n".join(lines)


def study_header(study: PlannedStudy, seed: int) -> Dataset:
    """Patient and study attributes shared by every file of the study, PHI included."""
    patient, site = study.patient, study.site
    age = (study.date - patient.birth_date).days // 365
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = patient.dicom_name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = f"{patient.birth_date:%Y%m%d}"
    ds.PatientSex = patient.sex
    ds.PatientAge = f"{age:03d}Y"
    ds.PatientAddress = patient.address
    ds.StudyInstanceUID = str(generate_uid(entropy_srcs=[str(seed), study.study_id, "study"]))
    ds.StudyID = f"ST{study.study_id[-4:]}{patient.patient_id[-3:]}"
    ds.AccessionNumber = study.accession
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        setattr(ds, keyword, f"{study.date:%Y%m%d}")
    ds.StudyTime = "101500"
    ds.StudyDescription = "CT CHEST WITHOUT CONTRAST"
    ds.SeriesDescription = "AXIAL CHEST"
    ds.ReferringPhysicianName = f"{study.physician[1]}^{study.physician[0]}"
    ds.OperatorsName = f"{study.operator[1]}^{study.operator[0]}"
    ds.InstitutionName = site.institution
    ds.InstitutionAddress = site.address
    ds.StationName = site.station
    ds.Manufacturer = "RADREPORT PHANTOM"
    block = ds.private_block(0x0011, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", f"{patient.given_name} {patient.family_name}")
    block.add_new(0x02, "LO", patient.patient_id)
    return ds


def _layout(study: PlannedStudy, size: int, rng: np.random.Generator) -> SeriesLayout:
    pixel_mm = FIELD_OF_VIEW_MM / size
    corner = -FIELD_OF_VIEW_MM / 2 + pixel_mm / 2
    return SeriesLayout(
        pixel_spacing_mm=round(pixel_mm, 4),
        slice_spacing_mm=round(COVERAGE_MM / study.slices * 2) / 2,
        origin_mm=(corner, corner, round(float(rng.uniform(-320.0, -200.0)), 1)),
        encoding=_pick(rng, ("signed", "unsigned", "scaled")),
        rle=rng.random() < 0.1,
        descending_instance_numbers=rng.random() < 0.5,
    )


def _write_study(study: PlannedStudy, out_dir: Path, size: int, seed: int) -> dict[str, object]:
    rng = np.random.default_rng([seed, 2, int(study.study_id[-4:])])
    findings = sample_findings(rng)
    layout = _layout(study, size, rng)
    phantom = draw_phantom(study.slices, size, layout.slice_spacing_mm, findings, rng)
    folder = out_dir / "dicom" / study.study_id
    header = study_header(study, seed)
    uid_seed = f"{seed}/{study.study_id}"
    if rng.random() < 0.1:
        write_enhanced_ct(phantom.hounsfield, folder / "ENHANCED.dcm", header, layout, uid_seed)
    else:
        write_ct_series(phantom.hounsfield, folder, header, layout, uid_seed)
    if rng.random() < 0.25:
        write_localizer(phantom.hounsfield, folder, header, layout, uid_seed)
    empty = np.zeros(phantom.hounsfield.shape, dtype=bool)
    masks = {name: phantom.masks.get(name, empty) for name in FINDINGS}
    np.savez_compressed(out_dir / "masks" / f"{study.study_id}.npz", **masks)
    present = {finding.name for finding in findings}
    return {
        "study_id": study.study_id,
        "patient_id": study.patient.patient_id,
        "impression": impression_text(findings, rng),
        "report": detailed_report(study, findings, rng),
        "dicom_dir": f"dicom/{study.study_id}",
        "labels": json.dumps({name: name in present for name in FINDINGS}),
        "findings": [asdict(finding) for finding in findings],
    }


def _write_studies(
    studies: list[PlannedStudy], out_dir: Path, size: int, seed: int, workers: int
) -> list[dict[str, object]]:
    progress = {"total": len(studies), "desc": "demo studies", "unit": "study"}
    if workers == 1:
        return [_write_study(study, out_dir, size, seed) for study in tqdm(studies, **progress)]
    # Each study draws from its own seeded generator, so processes change no byte.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        jobs = [pool.submit(_write_study, study, out_dir, size, seed) for study in studies]
        for _ in tqdm(as_completed(jobs), **progress):
            pass
        return [job.result() for job in jobs]


def generate_demo_studies(
    out_dir: Path,
    n_studies: int = 200,
    slices: tuple[int, int] = (16, 32),
    size: int = 128,
    seed: int = 0,
    workers: int = 2,
) -> Path:
    """Write the demo studies under `out_dir` and return the manifest path.

    Layout: manifest.csv (study_id, patient_id, impression, report, dicom_dir, labels),
    dicom/<study_id>/*.dcm, masks/<study_id>.npz (one boolean volume per finding, in the
    written slice order, lowest slice first) and labels.json (findings with side, lobe,
    severity and diameter). The same arguments always write the same bytes, whatever
    the number of worker processes.
    """
    out_dir = Path(out_dir)
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    studies = plan_studies(n_studies, slices, seed)
    rows = _write_studies(studies, out_dir, size, seed, min(workers, n_studies))
    labels = {row["study_id"]: row.pop("findings") for row in rows}
    (out_dir / "labels.json").write_text(json.dumps(labels, indent=1, sort_keys=True))
    manifest = out_dir / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest
