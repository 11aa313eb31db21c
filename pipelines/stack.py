"""The ZenML stack every radreport pipeline runs on: local orchestrator and artifact
store, an MLflow experiment tracker and an MLflow model registry.

It lives in the user's normal ZenML configuration (or wherever ZENML_CONFIG_PATH
points), so `zenml stack list` and the dashboard see it.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

from zenml.client import Client
from zenml.enums import StackComponentType
from zenml.utils.io_utils import get_global_config_directory

from radreport.folder_lock import FolderLock

logger = logging.getLogger(__name__)

STACK_NAME = "radreport"
TRACKER_NAME = "radreport_mlflow_tracker"
REGISTRY_NAME = "radreport_mlflow_registry"
MLFLOW_FLAVOR = "mlflow"

WANTED_COMPONENTS = {
    StackComponentType.ORCHESTRATOR: "default",
    StackComponentType.ARTIFACT_STORE: "default",
    StackComponentType.EXPERIMENT_TRACKER: TRACKER_NAME,
    StackComponentType.MODEL_REGISTRY: REGISTRY_NAME,
}


REPOSITORY_ROOT = Path(__file__).resolve().parents[1]


def ensure_stack() -> list[str]:
    """Create whatever is missing and activate the stack; return what changed (empty if
    nothing).

    Processes of one ZenML configuration take turns here. Two starting at once on a new
    store (two scheduled runs on a fresh machine) both created its tables, and the second
    failed ("table project already exists"), or both registered the same component; then
    both steps' trackers created the MLflow database's tables, and the second failed at its
    first step ("Online migration expected to match one row"). So the MLflow database is
    made here too, in turn.
    """
    lock = _setup_lock(Path(get_global_config_directory()))
    try:
        return _ensure_stack()
    finally:
        if lock is not None:
            lock.release()


def _setup_lock(config_dir: Path) -> FolderLock | None:
    """The configuration folder's lock; None where it cannot be taken (a read-only
    configuration, set up beforehand), said in a warning."""
    try:
        return FolderLock(
            config_dir,
            on_wait=lambda: logger.info(
                "Another radreport process is setting up the ZenML store in %s: waiting",
                config_dir,
            ),
        )
    except OSError as error:
        logger.warning(
            "%s: cannot lock it (%s); the stack is checked without waiting for other processes",
            config_dir,
            error.strerror,
        )
        return None


def _ensure_stack() -> list[str]:
    changes = ensure_repository()
    client = Client()
    changes += [
        change
        for kind in (StackComponentType.EXPERIMENT_TRACKER, StackComponentType.MODEL_REGISTRY)
        if (change := ensure_component(client, kind, WANTED_COMPONENTS[kind]))
    ]
    if (change := ensure_stack_components(client)) is not None:
        changes.append(change)
    if client.active_stack_model.name != STACK_NAME:
        client.activate_stack(STACK_NAME)
        changes.append(f"activated stack '{STACK_NAME}'")
    ensure_mlflow_database()
    return changes


def ensure_mlflow_database() -> None:
    """MLflow creates (or migrates) its database's tables when a client first opens it."""
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=mlflow_tracking_uri())


def ensure_repository() -> list[str]:
    """`zenml init` at the repository root: steps' sources resolve from there however the
    pipeline is launched (run.py, pytest, a notebook)."""
    if (REPOSITORY_ROOT / ".zen").is_dir():
        return []
    Client.initialize(root=REPOSITORY_ROOT)
    return [f"initialised the ZenML repository at {REPOSITORY_ROOT}"]


def ensure_component(client: Client, kind: StackComponentType, name: str) -> str | None:
    try:
        client.get_stack_component(kind, name)
        return None
    except KeyError:
        client.create_stack_component(
            name=name, flavor=MLFLOW_FLAVOR, component_type=kind, configuration={}
        )
        return f"registered {kind.value} '{name}' (flavor {MLFLOW_FLAVOR})"


def ensure_stack_components(client: Client) -> str | None:
    wanted = dict(WANTED_COMPONENTS)
    try:
        stack = client.get_stack(STACK_NAME)
    except KeyError:
        client.create_stack(name=STACK_NAME, components=wanted)
        return f"created stack '{STACK_NAME}'"
    current = {kind: models[0].name for kind, models in stack.components.items() if models}
    if current == wanted:
        return None
    client.update_stack(STACK_NAME, component_updates={k: [v] for k, v in wanted.items()})
    return f"updated stack '{STACK_NAME}' to {sorted(v for v in wanted.values())}"


def mlflow_tracking_uri() -> str:
    """Where the active stack's tracker writes, for `mlflow ui --backend-store-uri`."""
    tracker = Client().active_stack.experiment_tracker
    return tracker.get_tracking_uri()


def mlflow_ui_command(tracking_uri: str) -> str:
    """The command that opens the MLflow UI on `tracking_uri`, to paste into a shell (the
    store's path may hold a space)."""
    return f"mlflow ui --backend-store-uri {shlex.quote(tracking_uri)}"
