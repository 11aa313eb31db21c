"""The input fingerprint sees every byte ingestion reads, so a cache hit means the same data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pydicom.data import get_testdata_file

from radreport.data.run_inputs import fingerprint_inputs


def _study_with_linked_series(tmp_path: Path) -> tuple[Path, Path]:
    """A study folder whose series lives elsewhere and is linked in, as exports do."""
    series = tmp_path / "archive" / "series1"
    series.mkdir(parents=True)
    shutil.copy(get_testdata_file("CT_small.dcm", download=False), series / "1.dcm")
    study = tmp_path / "s1"
    study.mkdir()
    (study / "series1").symlink_to(series, target_is_directory=True)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        f"study_id,patient_id,impression,report,dicom_dir\ns1,p1,Clear.,Lungs clear.,{study}\n"
    )
    return manifest, series / "1.dcm"


def test_a_changed_file_in_a_linked_series_is_a_new_input(tmp_path):
    manifest, slice_file = _study_with_linked_series(tmp_path)
    before = fingerprint_inputs(manifest, {})
    assert fingerprint_inputs(manifest, {}) == before  # same bytes: the cache may hit
    data = bytearray(slice_file.read_bytes())
    data[-1] ^= 0xFF  # one pixel byte
    slice_file.write_bytes(bytes(data))
    assert fingerprint_inputs(manifest, {}) != before


def test_file_names_that_are_not_utf8_and_dangling_links_are_fingerprinted(tmp_path):
    manifest, slice_file = _study_with_linked_series(tmp_path)
    study = tmp_path / "s1"
    with open(os.fsencode(study) + b"/\xff.dcm", "wb") as file:
        file.write(b"not DICOM")
    with_odd_name = fingerprint_inputs(manifest, {})
    (study / "gone.dcm").symlink_to(tmp_path / "nowhere.dcm")
    assert fingerprint_inputs(manifest, {}) != with_odd_name  # ingestion quarantines it


def test_two_runs_starting_at_once_generate_the_demo_studies_once(tmp_path, monkeypatch):
    import threading

    from radreport.data import run_inputs
    from radreport.data.settings import SyntheticSettings

    calls = []
    generate = run_inputs.generate_demo_studies

    def counted(*args, **kwargs):
        calls.append(1)
        return generate(*args, **kwargs)

    monkeypatch.setattr(run_inputs, "generate_demo_studies", counted)
    settings = SyntheticSettings(
        out_dir=tmp_path / "demo", n_studies=2, min_slices=2, max_slices=2, size=32, workers=1
    )
    manifests = []
    runs = [
        threading.Thread(target=lambda: manifests.append(run_inputs.ensure_demo_studies(settings)))
        for _ in range(2)
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=120)
    assert len(calls) == 1
    assert manifests == [run_inputs.demo_studies_dir(settings) / "manifest.csv"] * 2


def test_demo_studies_already_there_are_read_without_taking_a_lock(tmp_path, monkeypatch):
    from radreport.data import run_inputs
    from radreport.data.settings import SyntheticSettings

    settings = SyntheticSettings(
        out_dir=tmp_path / "demo", n_studies=2, min_slices=2, max_slices=2, size=32, workers=1
    )
    manifest = run_inputs.ensure_demo_studies(settings)

    def no_lock(*args, **kwargs):
        raise AssertionError("a folder already generated needs no lock (nor write access)")

    monkeypatch.setattr(run_inputs, "FolderLock", no_lock)
    assert run_inputs.ensure_demo_studies(settings) == manifest


def test_other_demo_settings_leave_the_studies_a_running_run_reads_untouched(tmp_path):
    """A run reads its studies after fingerprinting them; a second run started with other
    settings must not rewrite them under it (the first would ingest other bytes than its
    fingerprint says)."""
    from radreport.data import run_inputs
    from radreport.data.settings import SyntheticSettings

    first = SyntheticSettings(
        out_dir=tmp_path / "demo", n_studies=2, min_slices=2, max_slices=2, size=32, workers=1
    )
    manifest = run_inputs.ensure_demo_studies(first)
    before = {p: p.read_bytes() for p in manifest.parent.rglob("*") if p.is_file()}
    other = run_inputs.ensure_demo_studies(first.model_copy(update={"seed": first.seed + 1}))
    assert other.parent != manifest.parent
    assert other.parent.parent == manifest.parent.parent == (tmp_path / "demo").resolve()
    assert {p: p.read_bytes() for p in manifest.parent.rglob("*") if p.is_file()} == before
    assert other.read_bytes() != manifest.read_bytes()
    # More workers write the same bytes: the same folder, nothing generated again.
    same = first.model_copy(update={"workers": 2})
    assert run_inputs.ensure_demo_studies(same) == manifest
