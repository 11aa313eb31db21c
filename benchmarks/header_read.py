"""Header pass cost per file: our quick reader against pydicom's dcmread(stop_before_pixels),
on the same demo files in the same run (CPU time, best of several passes).

    .venv/bin/python benchmarks/header_read.py --studies 100
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _best_cpu_ms_per_file(read, files: list[Path], passes: int) -> float:
    best = float("inf")
    for _ in range(passes):
        started = time.process_time()
        for path in files:
            read(path)
        best = min(best, time.process_time() - started)
    return 1000 * best / len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=100)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    from pydicom import dcmread

    from radreport.data.synthetic import generate_demo_studies
    from radreport.dicom.header import VALUE_ATTRIBUTES
    from radreport.dicom.quick_header import read_quick_header

    def pydicom_header(path: Path) -> None:
        with path.open("rb") as fp:
            dcmread(fp, stop_before_pixels=True)
            fp.tell()  # the pixel offset, as the header pass takes it

    with tempfile.TemporaryDirectory(prefix="header-bench-") as folder:
        generate_demo_studies(Path(folder), n_studies=args.studies)
        files = sorted(Path(folder, "dicom").rglob("*.dcm"))
        for path in files:  # warm the page cache for both sides alike
            path.read_bytes()
        quick = sum(read_quick_header(path, VALUE_ATTRIBUTES) is not None for path in files)
        readers = {
            "quick reader": lambda path: read_quick_header(path, VALUE_ATTRIBUTES),
            "dcmread(stop_before_pixels)": pydicom_header,
        }
        costs = {
            name: _best_cpu_ms_per_file(read, files, args.passes) for name, read in readers.items()
        }
    print(f"{len(files)} files, {quick} read quickly (the rest go to pydicom)")
    for name, cost in costs.items():
        print(f"  {name:<28} {cost:.3f} CPU ms/file")
    print(f"ratio: {costs['dcmread(stop_before_pixels)'] / costs['quick reader']:.1f}x")


if __name__ == "__main__":
    main()
