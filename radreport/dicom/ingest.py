"""Ingest many study folders in parallel processes (pydicom holds the GIL: threads would
not help). A study whose worker fails for any reason is quarantined, never the whole run."""

from __future__ import annotations

import logging
import multiprocessing
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed

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
    failures = Counter(
        entry.message
        for result in results
        for entry in result.quarantine
        if entry.reason == Reason.INGESTION_ERROR
    )
    if failures:
        logger.warning("ingestion failed for %d studies: %s", sum(failures.values()), failures)


def _ingest_one_thread(task: StudyTask, settings: DicomSettings, keys: DeidKeys) -> StudyImages:
    # Parallelism is across studies; a multi-threaded BLAS inside each worker only
    # oversubscribes the cores (measured here: resizing ran 3-5x slower under load).
    with threadpool_limits(limits=1, user_api="blas"):
        return ingest_study(task, settings, keys)


def _ingest_safely(task: StudyTask, settings: DicomSettings, keys: DeidKeys) -> StudyImages:
    try:
        return _ingest_one_thread(task, settings, keys)
    except Exception as error:
        return _failed(task, error)


def _ingest_in_processes(
    tasks: Sequence[StudyTask], settings: DicomSettings, keys: DeidKeys
) -> list[StudyImages]:
    # "spawn": workers start clean, without locks or thread pools (BLAS, torch) that a
    # forked copy of a busy parent can inherit in a held state.
    context = multiprocessing.get_context("spawn")
    workers = min(settings.workers, len(tasks))
    results: list[StudyImages | None] = [None] * len(tasks)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures: dict[Future, int] = {
            pool.submit(_ingest_one_thread, task, settings, keys): index
            for index, task in enumerate(tasks)
        }
        for future in tqdm(as_completed(futures), total=len(tasks), desc="ingest", unit="study"):
            index = futures[future]
            error = future.exception()
            if error is None:
                results[index] = future.result()
            else:
                results[index] = _failed(tasks[index], error)
    return results


def ingest_studies(
    tasks: Sequence[StudyTask], settings: DicomSettings, keys: DeidKeys
) -> list[StudyImages]:
    """One StudyImages per task, in task order. With several workers the caller's script
    needs the usual `if __name__ == "__main__":` guard (processes are spawned)."""
    if settings.workers == 1 or len(tasks) <= 1:
        progress = tqdm(tasks, desc="ingest", unit="study")
        results = [_ingest_safely(task, settings, keys) for task in progress]
    else:
        results = _ingest_in_processes(tasks, settings, keys)
    _log_failures(results)
    return results
