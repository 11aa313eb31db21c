"""Runs whose process died without finishing them (a SIGKILL, an out-of-memory kill, a lost
machine) are marked failed by the next command that starts a run, with their MLflow run,
instead of showing as running for ever in both dashboards.

A run can only belong to a process that started before it. Every command that runs a
pipeline holds a lock on a file beside the ZenML store's database (`radreport-launches/`)
for as long as it lives, named after its start time; a run still `running` when no live
holder started before it is orphaned. The locks live with the store, not the cache, since
two commands with different cache folders share the store's runs. Only where the ZenML store
is this machine's SQLite database: a ZenML server's runs may be going on other machines.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from pathlib import Path

from radreport.folder_lock import LocksUnavailable, try_lock
from radreport.llm.bundled import cache_dir

logger = logging.getLogger(__name__)

LAUNCHES = "radreport-launches"
# Where versions before the fiftieth session held their locks, still read: a run such a
# version is training while the new one starts (an update) is live.
CACHE_LAUNCHES = "launches"
# The pipelines `run.py` runs; another tool's pipelines in the same store are left alone.
OUR_PIPELINES = ("data_pipeline", "training_pipeline", "llm_pipeline")
ORPHANED = "its process ended without finishing it (killed, or out of memory)"
_held: list[int] = []  # this process's launch lock, open (and so held) until it exits


def _launches() -> Path | None:
    """The launch locks' folder, beside the store's SQLite database; None where the store is
    not a local database."""
    from sqlalchemy.engine import make_url
    from zenml.client import Client

    client = Client()
    if not _is_local_store(client):
        return None
    folder = Path(make_url(client.zen_store.config.url).database).parent / LAUNCHES
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def hold_launch_lock() -> None:
    """Mark this process as one that runs pipelines, from now until it exits."""
    if _held:
        return
    launches = _launches()
    if launches is None:
        return
    path = launches / f"{time.time():.6f}-{os.getpid()}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        locked = try_lock(fd)
    except LocksUnavailable:
        locked = False
    if not locked:  # no locks on this file system: nothing can be told from them
        os.close(fd)
        path.unlink(missing_ok=True)
        return
    _held.append(fd)


def _live_launch_times() -> list[float] | None:
    """Start times of the other processes that hold their launch lock; the files of those
    that ended are removed. This process is left out: it asks before it starts a run, and
    runs its pipelines one at a time, so no run still going is its own. None where the file
    system has no locks, or the store is not a local database."""
    launches = _launches()
    if launches is None:
        return None
    earlier_versions = cache_dir() / CACHE_LAUNCHES
    times = []
    for path in [*launches.glob("*.lock"), *earlier_versions.glob("*.lock")]:
        try:
            started, pid = path.stem.split("-", 1)
            started = float(started)
            if int(pid) == os.getpid():
                continue
            fd = os.open(path, os.O_RDWR)
        except (ValueError, FileNotFoundError):  # not ours, or removed meanwhile
            continue
        try:
            if try_lock(fd):  # its holder has ended
                path.unlink(missing_ok=True)
            else:
                times.append(started)
        except LocksUnavailable:
            return None
        finally:
            os.close(fd)
    return times


def _epoch(moment: dt.datetime) -> float:
    # ZenML keeps UTC times without a zone.
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)).timestamp()


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _is_local_store(client) -> bool:
    return str(client.zen_store.config.url).startswith("sqlite")


def mark_orphaned_runs_failed(pipeline_names: tuple[str, ...] = OUR_PIPELINES) -> list[str]:
    """Mark failed every run of these pipelines that is still running although no live
    process can be running it, its running steps and its MLflow run too; returns their
    names."""
    from zenml.client import Client
    from zenml.enums import ExecutionStatus
    from zenml.orchestrators.publish_utils import (
        publish_failed_step_run,
        publish_pipeline_run_status_update,
    )

    live = _live_launch_times()
    if live is None:
        return []
    client = Client()
    marked = []
    for name in pipeline_names:
        try:
            pipeline = client.get_pipeline(name)
        except KeyError:
            continue
        for status in (ExecutionStatus.RUNNING, ExecutionStatus.INITIALIZING):
            for run in client.list_pipeline_runs(
                pipeline_id=pipeline.id, status=status.value, size=1000
            ):
                started = _epoch(run.start_time or run.created)
                if any(launched <= started for launched in live):
                    continue  # a live process may be running it
                for step in run.steps.values():
                    if step.status in (ExecutionStatus.RUNNING, ExecutionStatus.INITIALIZING):
                        publish_failed_step_run(step.id)
                publish_pipeline_run_status_update(
                    run.id, ExecutionStatus.FAILED, status_reason=ORPHANED, end_time=_utc_now()
                )
                _end_mlflow_runs(run.name)
                logger.warning("Marked the ZenML run %s failed: %s.", run.name, ORPHANED)
                marked.append(run.name)
    return marked


def _end_mlflow_runs(run_name: str) -> None:
    """The run's MLflow run (named after it) as KILLED, where it is still RUNNING."""
    import mlflow

    from pipelines.stack import mlflow_tracking_uri

    mlflow.set_tracking_uri(mlflow_tracking_uri())
    client = mlflow.MlflowClient()
    for found in mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"attributes.run_name = '{run_name}' and attributes.status = 'RUNNING'",
        output_format="list",
    ):
        client.set_terminated(found.info.run_id, "KILLED")
