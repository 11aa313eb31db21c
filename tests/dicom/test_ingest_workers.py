"""Ingestion in worker processes gives what ingestion in-process gives, and the files that
carried the volumes back are gone afterwards."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from radreport.data.pseudonyms import DeidKeys
from radreport.data.quarantine import Reason
from radreport.data.settings import DicomSettings
from radreport.data.synthetic import generate_demo_studies
from radreport.dicom import ingest as ingest_module
from radreport.dicom.ingest import ingest_studies
from radreport.dicom.study import StudyTask


def test_worker_processes_return_the_in_process_volumes(tmp_path, monkeypatch):
    manifest = generate_demo_studies(tmp_path, n_studies=4, slices=(6, 8), size=32, workers=1)
    table = pd.read_csv(manifest)
    tasks = [
        StudyTask(row.study_id, row.patient_id, str(tmp_path / row.dicom_dir))
        for row in table.itertuples()
    ]
    tasks.append(StudyTask("missing", "nobody", str(tmp_path / "no-such-folder")))
    settings = DicomSettings(depth=4, height=16, width=16, min_slices=5, workers=1)
    handoff_folders = []
    make_folder = ingest_module._handoff_folder

    def recorded_folder():
        folder = make_folder()
        handoff_folders.append(Path(folder.name))
        return folder

    monkeypatch.setattr(ingest_module, "_handoff_folder", recorded_folder)
    alone = ingest_studies(tasks, settings, DeidKeys("test"))
    pooled = ingest_studies(tasks, settings.model_copy(update={"workers": 2}), DeidKeys("test"))
    assert [r.study_id for r in pooled] == [t.study_id for t in tasks]
    for one, other in zip(alone, pooled, strict=True):
        assert (one.volume is None) == (other.volume is None)
        if one.volume is not None:
            assert other.volume.dtype == np.uint8 and np.array_equal(one.volume, other.volume)
        assert one.header == other.header and one.quarantine == other.quarantine
    assert sum(r.volume is not None for r in pooled) == 4
    assert len(handoff_folders) == 1 and not handoff_folders[0].exists()


def test_a_volume_that_cannot_be_handed_off_by_file_comes_back_whole(tmp_path):
    manifest = generate_demo_studies(tmp_path, n_studies=1, slices=(6, 6), size=32, workers=1)
    row = next(pd.read_csv(manifest).itertuples())
    task = StudyTask(row.study_id, row.patient_id, str(tmp_path / row.dicom_dir))
    settings = DicomSettings(depth=4, height=16, width=16, min_slices=5, workers=1)
    unwritable = tmp_path / "no-such-folder"  # as a full /dev/shm would refuse the file
    result, path = ingest_module._ingest_handing_off(task, settings, DeidKeys("t"), unwritable)
    assert path is None and result.volume is not None and result.volume.shape == (3, 4, 16, 16)
    assert not unwritable.exists()


def _series_that_aborts_its_decoder(folder: Path) -> None:
    """12 slices of pydicom's JPEG 2000 CT with one byte of the codestream changed: GDCM
    throws from C++ where nothing catches it, and the process aborts."""
    source = get_testdata_file("693_J2KI.dcm", download=False)
    corrupt = bytearray(Path(source).read_bytes())
    corrupt[2076] = 0xA6
    folder.mkdir()
    series_uid = generate_uid()
    for index in range(12):
        dataset = dcmread(io.BytesIO(bytes(corrupt)))
        dataset.PatientID = "p-bad"
        dataset.SeriesInstanceUID = series_uid
        dataset.SOPInstanceUID = generate_uid()
        dataset.ImagePositionPatient = [0, 0, 2.0 * index]
        dataset.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        dataset.save_as(folder / f"{index:02d}.dcm")


def test_a_study_that_kills_its_worker_is_quarantined_alone(tmp_path):
    manifest = generate_demo_studies(tmp_path, n_studies=3, slices=(6, 6), size=32, workers=1)
    tasks = [
        StudyTask(row.study_id, row.patient_id, str(tmp_path / row.dicom_dir))
        for row in pd.read_csv(manifest).itertuples()
    ]
    _series_that_aborts_its_decoder(tmp_path / "bad")
    tasks.insert(1, StudyTask("bad", "p-bad", str(tmp_path / "bad")))
    settings = DicomSettings(depth=4, height=16, width=16, min_slices=5, workers=2)
    results = ingest_studies(tasks, settings, DeidKeys("test"))
    assert [r.study_id for r in results] == [t.study_id for t in tasks]
    [entry] = results[1].quarantine
    assert entry.reason == Reason.WORKER_CRASHED and entry.path == str(tmp_path / "bad")
    assert results[1].volume is None
    alone = ingest_studies(
        tasks[:1] + tasks[2:], settings.model_copy(update={"workers": 1}), DeidKeys("test")
    )
    for pooled, in_process in zip(results[:1] + results[2:], alone, strict=True):
        assert np.array_equal(pooled.volume, in_process.volume)
        assert pooled.quarantine == in_process.quarantine
    # One study alone also runs in a worker: the calling process survives it.
    [only] = ingest_studies(tasks[1:2], settings, DeidKeys("test"))
    assert [e.reason for e in only.quarantine] == [Reason.WORKER_CRASHED]
