"""Ingestion throughput: our parallel ingestion against a plain single-process pydicom loop,
on the same synthetic CT files, in the same run.

The plain loop does dcmread + pixel_array + HU and nothing else. Ours does more per slice:
header checks, series selection and geometry checks, de-identification of one header per
study, three windows, resize to the model's size and uint8 storage; it skips decoding the
localizers that the plain loop decodes. Both rates count the CT slices of the axial series.

    .venv/bin/python benchmarks/ingest_throughput.py --studies 60 --workers 2
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from pydicom import dcmread

from radreport.data.pseudonyms import DeidKeys
from radreport.data.settings import DicomSettings
from radreport.data.synthetic import generate_demo_studies
from radreport.dicom.ingest import ingest_studies
from radreport.dicom.study import StudyTask


def plain_loop(files: list[Path]) -> int:
    """The baseline: every file read whole, decoded, rescaled to HU. Returns frames read."""
    frames = 0
    for path in files:
        dataset = dcmread(path)
        slope = float(dataset.get("RescaleSlope", 1.0))
        intercept = float(dataset.get("RescaleIntercept", 0.0))
        hounsfield = dataset.pixel_array.astype(np.float32) * slope + intercept
        frames += 1 if hounsfield.ndim == 2 else len(hounsfield)
    return frames


def ours(tasks: list[StudyTask], workers: int) -> int:
    settings = DicomSettings(workers=workers)
    results = ingest_studies(tasks, settings, DeidKeys("benchmark"))
    return sum(int(r.header.get("source_slices", 0)) for r in results)


def _timed(run) -> tuple[float, int]:
    start = time.perf_counter()
    count = run()
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2, help="best of N for each side")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as folder:
        manifest = generate_demo_studies(Path(folder), n_studies=args.studies, size=args.size)
        table = pd.read_csv(manifest)
        tasks = [
            StudyTask(row.study_id, row.patient_id, str(Path(folder) / row.dicom_dir))
            for row in table.itertuples()
        ]
        files = sorted(Path(folder, "dicom").rglob("*.dcm"))
        for path in files:  # warm the page cache for both sides alike
            path.read_bytes()
        axial = sum(1 for p in files if not p.name.startswith("SCOUT"))
        load = os.getloadavg()[0]
        plain = min(_timed(lambda: plain_loop(files)) for _ in range(args.repeats))
        mine = min(_timed(lambda: ours(tasks, args.workers)) for _ in range(args.repeats))
    plain_rate = (plain[1] - (len(files) - axial)) / plain[0]
    our_rate = mine[1] / mine[0]
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {load:.2f} at start"
    )
    print(f"files: {len(files)} ({args.studies} studies, {args.size}x{args.size} slices)")
    print(f"plain loop (1 process):  {plain_rate:8.1f} slices/s  ({plain[0]:.2f} s)")
    print(f"ours ({args.workers} workers):       {our_rate:8.1f} slices/s  ({mine[0]:.2f} s)")
    print(f"ratio ours / plain: {our_rate / plain_rate:.2f}x")


if __name__ == "__main__":
    main()
