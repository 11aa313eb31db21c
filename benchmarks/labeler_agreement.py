"""How well the rule-based finding labeler agrees with IU X-Ray's MeSH labels, per finding.

Open-i coded each IU X-Ray report with MeSH-style terms ("Pleural Effusion/right/small"). For
the CheXpert observations that MeSH also names, this labels the reference findings text with
radreport.metrics.labeler (uncertain counted as present) and compares with the terms, taken
as the truth: positives on each side, both, agreement (share of reports where the two agree),
precision and recall of the labeler. MeSH codes the whole report (findings and impression),
so the recall on findings + impression is shown too.

    .venv/bin/python benchmarks/labeler_agreement.py [--data ../shared/data/iu_xray/val.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from radreport.metrics.labeler import NO_FINDING, OBSERVATIONS, binarize_labels, label_reports

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "iu_xray" / "val.csv"
# MeSH term (the part before the first "/", or the whole "head/qualifier" where the head alone
# is too broad) -> CheXpert observation.
MESH_TO_OBSERVATION = {
    "Cardiomegaly": "Cardiomegaly",
    "Cardiac Shadow/enlarged": "Cardiomegaly",
    "Mediastinum/enlarged": "Enlarged Cardiomediastinum",
    "Mediastinum/prominent": "Enlarged Cardiomediastinum",
    "Mediastinum/widened": "Enlarged Cardiomediastinum",
    "Nodule": "Lung Lesion",
    "Mass": "Lung Lesion",
    "Opacity": "Lung Opacity",
    "Density": "Lung Opacity",
    "Infiltrate": "Lung Opacity",
    "Airspace Disease": "Lung Opacity",
    "Pulmonary Edema": "Edema",
    "Pulmonary Congestion": "Edema",
    "Consolidation": "Consolidation",
    "Pneumonia": "Pneumonia",
    "Pulmonary Atelectasis": "Atelectasis",
    "Pneumothorax": "Pneumothorax",
    "Hydropneumothorax": "Pneumothorax",
    "Pleural Effusion": "Pleural Effusion",
    "Thickening/pleura": "Pleural Other",
    "Cicatrix/pleura": "Pleural Other",
    "Calcinosis/pleura": "Pleural Other",
    "Fractures, Bone": "Fracture",
    "Catheters, Indwelling": "Support Devices",
    "Implanted Medical Device": "Support Devices",
    "Medical Device": "Support Devices",
    "Tube, Inserted": "Support Devices",
    "Stents": "Support Devices",
    "Surgical Instruments": "Support Devices",
    "Sutures": "Support Devices",
}


def mesh_observations(mesh: str) -> set[str]:
    """CheXpert observations named by one report's ";"-separated MeSH terms."""
    found = set()
    for term in mesh.split(";"):
        parts = [part.strip() for part in term.split("/")]
        for key in (parts[0], "/".join(parts[:2])):
            if key in MESH_TO_OBSERVATION:
                found.add(MESH_TO_OBSERVATION[key])
    return found


def mesh_presence(mesh_column: pd.Series) -> np.ndarray:
    """(n_reports, 14) booleans; No Finding when MeSH names none of the other observations
    except devices, mirroring the labeler's rule."""
    rows = []
    for mesh in mesh_column:
        found = mesh_observations(mesh)
        if not found - {"Support Devices"}:
            found.add(NO_FINDING)
        rows.append([name in found for name in OBSERVATIONS])
    return np.array(rows, dtype=bool)


def agreement_table(truth: np.ndarray, labeled: np.ndarray, labeled_full: np.ndarray):
    both = (truth & labeled).sum(axis=0)
    truth_count, labeled_count = truth.sum(axis=0), labeled.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.DataFrame(
            {
                "mesh_positive": truth_count,
                "labeler_positive": labeled_count,
                "both": both,
                "agreement": (truth == labeled).mean(axis=0),
                "precision": both / labeled_count,
                "recall": both / truth_count,
                "recall_with_impression": (truth & labeled_full).sum(axis=0) / truth_count,
            },
            index=list(OBSERVATIONS),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    table = pd.read_csv(args.data, dtype=str, keep_default_na=False)
    truth = mesh_presence(table["mesh"])
    labeled = binarize_labels(label_reports(table["findings"]), uncertain_as=1)
    full_text = table["findings"] + " " + table["impression"]
    labeled_full = binarize_labels(label_reports(full_text), uncertain_as=1)
    result = agreement_table(truth, labeled, labeled_full)
    print(f"{len(table)} reports of {args.data}")
    print(result.to_string(float_format="{:.2f}".format))
    overall = (truth & labeled).sum() / max(truth.sum(), 1), (truth & labeled).sum() / labeled.sum()
    print(f"micro recall {overall[0]:.2f}, micro precision {overall[1]:.2f}")


if __name__ == "__main__":
    main()
