"""Ingest many study folders in parallel processes (pydicom holds the GIL: threads would
not help). A study whose worker fails for any reason is quarantined, never the whole run."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import tempfile
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from radreport.data.pseudonyms import DeidKeys
from radreport.data.quarantine import QuarantineEntry, Reason
from radreport.data.settings import DicomSettings
from radreport.dicom.study import StudyImages, StudyTask, ingest_study

logger = logging.getLogger(__name__)


def _failed(task: StudyTask, error: BaseException) -> StudyImages:
    # The exception text may quote header values, so only its type is kept.
    entry = QuarantineEntry(
        task.dicom_dir, Reason.INGESTION_ERROR, type(error).__name__, task.study_id
    )
    return StudyImages(study_id=task.study_id, quarantine=[entry])


def _log_failures(results: list[StudyImages]) -> None:
    """Errors no check foresaw, counted: they point at a gap in the checks."""
    unforeseen = (Reason.INGESTION_ERROR, Reason.WORKER_CRASHED)
    failures = Counter(
        entry.message
        for result in results
        for entry in result.quarantine
        if entry.reason in unforeseen
    )
    if failures:
        studies = sum(any(e.reason in unforeseen for e in r.quarantine) for r in results)
        logger.warning(
            "unforeseen errors in %d studies (their files quarantined): %s",
            studies,
            dict(failures),
        )


def _single_threaded_blas() -> None:
    """Parallelism is across studies; a multi-threaded BLAS inside each worker only
    oversubscribes the cores (measured here: resizing ran 3-5x slower under load)."""
    threadpool_limits(limits=1, user_api="blas")


def _ingest_safely(task: StudyTask, settings: DicomSettings, keys: DeidKeys) -> StudyImages:
    try:
        return ingest_study(task, settings, keys)
    except Exception as error:
        return _failed(task, error)


def _ingest_handing_off(
    task: StudyTask,
    settings: DicomSettings,
    keys: DeidKeys,
    handoff: str,
    started: str | None = None,
) -> tuple[StudyImages, str | None]:
    """ingest_study in a worker; the volume comes back as a .npy file in `handoff` (on
    tmpfs where there is one) rather than through the pool's pipe: pickling ~1.5 MB through
    the pipe cost ~6 ms of wall time per study, ~3 ms of it on the parent's CPU, against
    ~2 ms through a file, while the whole study takes ~20-30 ms. The file `started` is
    created first: if a decoder kills the process, the parent knows which studies were in
    hand."""
    if started is not None:
        Path(started).touch()
    result = ingest_study(task, settings, keys)
    if result.volume is None:
        return result, None
    path = str(Path(handoff) / f"{uuid.uuid4().hex}.npy")
    try:
        np.save(path, result.volume, allow_pickle=False)
    except OSError:  # a full or small tmpfs (containers default to 64 MB): use the pipe
        with contextlib.suppress(OSError):
            os.unlink(path)
        return result, None
    result.volume = None
    return result, path


def _taken_back(result: StudyImages, path: str | None) -> StudyImages:
    # Copied, not memory-mapped: a mapping would keep one file descriptor open per study.
    if path is not None:
        result.volume = np.load(path, allow_pickle=False)
        os.unlink(path)
    return result


def _handoff_folder() -> tempfile.TemporaryDirectory:
    shared_memory = Path("/dev/shm")
    base = shared_memory if shared_memory.is_dir() and os.access(shared_memory, os.W_OK) else None
    return tempfile.TemporaryDirectory(prefix="radreport-ingest-", dir=base)


def _worker_context() -> multiprocessing.context.BaseContext:
    """Workers must not be forked from the caller: a pipeline process runs threads (ZenML,
    MLflow, BLAS) whose held locks a fork would copy. A fork server is a clean,
    single-threaded process that imports ingestion once and forks each worker ready to go;
    spawn (a fresh interpreter per worker, which re-imports everything) is the fallback
    where there is no fork server (Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def _ingest_in_processes(
    tasks: Sequence[StudyTask], settings: DicomSettings, keys: DeidKeys
) -> list[StudyImages]:
    """A native decoder that aborts on a corrupt file (GDCM on some JPEG 2000 streams) kills
    its worker, and the pool fails every study not finished. So the studies the dead
    worker had in hand are then ingested again one at a time, each in its own process:
    the one that kills it again is quarantined alone. The studies not yet started go to a
    new pool."""
    results: list[StudyImages | None] = [None] * len(tasks)
    context = _worker_context()
    pending = list(range(len(tasks)))
    with _handoff_folder() as handoff, tqdm(total=len(tasks), desc="ingest", unit="study") as bar:
        run = _PoolRound(tasks, settings, keys, context, handoff, results, bar)
        while pending:
            died = run(pending, min(settings.workers, len(pending)))
            in_hand = [index for index in died if run.started(index)]
            if died and not in_hand:  # the pool broke before any study began: no retry
                for index in died:
                    results[index] = _failed(tasks[index], BrokenProcessPool())
                    bar.update()
                break
            for index in in_hand:
                if run([index], 1):
                    results[index] = _crashed(tasks[index])
                    bar.update()
            pending = [index for index in died if index not in in_hand]
    return results


class _PoolRound:
    """One process pool over some of the tasks; fills `results` and returns the indices
    whose worker died before their study was done."""

    def __init__(self, tasks, settings, keys, context, handoff, results, bar):
        self.tasks, self.settings, self.keys = tasks, settings, keys
        self.context, self.handoff, self.results, self.bar = context, handoff, results, bar

    def started(self, index: int) -> bool:
        return self._marker(index).exists()

    def _marker(self, index: int) -> Path:
        return Path(self.handoff) / f"started-{index}"

    def __call__(self, indices: Sequence[int], workers: int) -> list[int]:
        pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=self.context, initializer=_single_threaded_blas
        )
        died = []
        with pool:
            futures: dict[Future, int] = {
                pool.submit(
                    _ingest_handing_off,
                    self.tasks[index],
                    self.settings,
                    self.keys,
                    self.handoff,
                    str(self._marker(index)),
                ): index
                for index in indices
            }
            for future in as_completed(futures):
                index = futures[future]
                error = future.exception()
                if isinstance(error, BrokenProcessPool):
                    died.append(index)
                    continue
                if error is None:
                    self.results[index] = _taken_back(*future.result())
                else:
                    self.results[index] = _failed(self.tasks[index], error)
                self.bar.update()
        return sorted(died)


def _crashed(task: StudyTask) -> StudyImages:
    entry = QuarantineEntry(
        task.dicom_dir,
        Reason.WORKER_CRASHED,
        "the worker process died on this study, also when it ran alone: a decoder crashed "
        "on one of its files",
        task.study_id,
    )
    return StudyImages(study_id=task.study_id, quarantine=[entry])


def ingest_studies(
    tasks: Sequence[StudyTask], settings: DicomSettings, keys: DeidKeys
) -> list[StudyImages]:
    """One StudyImages per task, in task order. With several workers the caller's script
    needs the usual `if __name__ == "__main__":` guard, and each worker re-imports the
    caller's main module: keep its top-level imports light (run.py imports only click; a
    script importing torch at the top adds ~2.5 s per call, pandas ~0.4 s)."""
    # One study still goes to a worker when workers are allowed: a decoder that aborts
    # would otherwise take the calling process, and every valid study, with it.
    if settings.workers == 1 or not tasks:
        progress = tqdm(tasks, desc="ingest", unit="study")
        with threadpool_limits(limits=1, user_api="blas"):
            results = [_ingest_safely(task, settings, keys) for task in progress]
    else:
        results = _ingest_in_processes(tasks, settings, keys)
    _log_failures(results)
    return results
