"""Ingestion throughput: our parallel ingestion against a plain single-process pydicom loop,
on the same synthetic CT files, in the same run.

The plain loop does dcmread + pixel_array + HU and nothing else. Ours does more per slice:
header checks, series selection and geometry checks, de-identification of one header per
study, three windows, resize to the model's size and uint8 storage; it skips decoding the
localizers that the plain loop decodes. Both rates count the CT slices of the axial series.

    .venv/bin/python benchmarks/ingest_throughput.py --studies 200 --workers 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# Worker processes (forkserver or spawn) re-import the main module: its top-level imports
# are kept as light as run.py's, so the workers start as they do under the real CLI.


def plain_loop(files: list[Path]) -> int:
    """The baseline: every file read whole, decoded, rescaled to HU. Returns frames read."""
    import numpy as np
    from pydicom import dcmread

    frames = 0
    for path in files:
        dataset = dcmread(path)
        slope = float(dataset.get("RescaleSlope", 1.0))
        intercept = float(dataset.get("RescaleIntercept", 0.0))
        hounsfield = dataset.pixel_array.astype(np.float32) * slope + intercept
        frames += 1 if hounsfield.ndim == 2 else len(hounsfield)
    return frames


def ours(tasks: list, workers: int) -> int:
    from radreport.data.pseudonyms import DeidKeys
    from radreport.data.settings import DicomSettings
    from radreport.dicom.ingest import ingest_studies

    settings = DicomSettings(workers=workers)
    results = ingest_studies(tasks, settings, DeidKeys("benchmark"))
    return sum(int(r.header.get("source_slices", 0)) for r in results)


def _spin(seconds: float) -> float:
    """Busy pure-Python work for `seconds` of wall time; returns the CPU seconds it got."""
    start, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        pass
    return time.process_time() - cpu


def parallel_headroom(workers: int, seconds: float = 2.0) -> float:
    """CPU that `workers` busy processes get together, relative to one: on a free machine
    with enough cores this is `workers`; on a shared one it bounds any parallel speed-up."""
    alone = _spin(seconds)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        together = sum(pool.map(_spin, [seconds] * workers))
    return together / alone


def _timed(run) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process, slices) of one run."""
    wall, cpu = time.perf_counter(), time.process_time()
    count = run()
    return time.perf_counter() - wall, time.process_time() - cpu, count


def _cpu_pressure() -> str:
    pressure = Path("/proc/pressure/cpu")
    return pressure.read_text().split("\n")[0] if pressure.exists() else "n/a"


def _report(name: str, runs: list[tuple[float, float, int]], slices: int) -> float:
    """Print each run; return the best slices/s. CPU ms/slice is shown for in-process runs
    (worker processes are not children of this one, so their CPU is not counted here)."""
    rates = []
    for wall, cpu, _ in runs:
        rates.append(slices / wall)
        cpu_text = f", {1000 * cpu / slices:.2f} CPU ms/slice" if cpu > 0.5 * wall else ""
        print(f"  {name:<28} {slices / wall:7.1f} slices/s ({wall:.2f} s{cpu_text})")
    return max(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=200)  # the demo data's size
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import pandas as pd

    from radreport.data.synthetic import generate_demo_studies
    from radreport.dicom.study import StudyTask

    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as folder:
        manifest = generate_demo_studies(Path(folder), n_studies=args.studies, size=args.size)
        table = pd.read_csv(manifest)
        tasks = [
            StudyTask(row.study_id, row.patient_id, str(Path(folder) / row.dicom_dir))
            for row in table.itertuples()
        ]
        files = sorted(Path(folder, "dicom").rglob("*.dcm"))
        for path in files:  # warm the page cache for every side alike
            path.read_bytes()
        # Start the workers' fork server (it imports numpy and pydicom once per process,
        # ~0.6-0.8 s) before timing, as this process imported them before the plain loop.
        ours(tasks[:2], args.workers)
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, load average "
            f"{os.getloadavg()[0]:.2f}, cpu pressure {_cpu_pressure()}"
        )
        sides = {
            "plain loop, 1 process": lambda: plain_loop(files),
            "ours, in-process (1 worker)": lambda: ours(tasks, 1),
            f"ours, {args.workers} worker processes": lambda: ours(tasks, args.workers),
        }
        runs: dict[str, list] = {name: [] for name in sides}
        for _ in range(args.repeats):  # interleaved, so a change in load hits every side
            for name, run in sides.items():
                runs[name].append(_timed(run))
    slices = runs["ours, in-process (1 worker)"][0][2]
    scouts = runs["plain loop, 1 process"][0][2] - slices
    print(
        f"{len(files)} files: {slices} axial CT slices in {args.studies} studies "
        f"({args.size}x{args.size}) and {scouts} localizers (decoded by the plain loop only)"
    )
    best = {name: _report(name, timings, slices) for name, timings in runs.items()}
    plain, parallel = best["plain loop, 1 process"], best[f"ours, {args.workers} worker processes"]
    print(f"ratio ours ({args.workers} workers) / plain loop, best runs: {parallel / plain:.2f}x")
    # The VM's speed drifts by tens of percent within minutes: a ratio of two runs made
    # seconds apart in the same repeat is the steadier figure.
    paired = [
        plain_run[0] / ours_run[0]
        for plain_run, ours_run in zip(
            runs["plain loop, 1 process"],
            runs[f"ours, {args.workers} worker processes"],
            strict=True,
        )
    ]
    print(
        "ratio per repeat (the two runs of a repeat, back to back): "
        + ", ".join(f"{ratio:.2f}x" for ratio in paired)
        + f"; median {statistics.median(paired):.2f}x"
    )
    print(
        f"parallel headroom now: {args.workers} busy processes got "
        f"{parallel_headroom(args.workers):.2f}x the CPU of one"
    )
    print(f"end load average {os.getloadavg()[0]:.2f}, cpu pressure {_cpu_pressure()}")


if __name__ == "__main__":
    main()
