"""Ingestion in worker processes gives what ingestion in-process gives, and the files that
carried the volumes back are gone afterwards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from radreport.data.pseudonyms import DeidKeys
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
