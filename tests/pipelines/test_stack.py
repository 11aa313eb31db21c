import os
import subprocess
import sys

from zenml.client import Client
from zenml.enums import StackComponentType

from pipelines.stack import (
    REGISTRY_NAME,
    REPOSITORY_ROOT,
    STACK_NAME,
    TRACKER_NAME,
    ensure_stack,
)


def test_setup_is_idempotent_and_registers_mlflow_components(radreport_stack):
    assert ensure_stack() == []
    stack = Client().active_stack_model
    assert stack.name == STACK_NAME
    tracker = stack.components[StackComponentType.EXPERIMENT_TRACKER][0]
    registry = stack.components[StackComponentType.MODEL_REGISTRY][0]
    assert (tracker.name, tracker.flavor_name) == (TRACKER_NAME, "mlflow")
    assert (registry.name, registry.flavor_name) == (REGISTRY_NAME, "mlflow")


def test_two_setups_at_once_on_a_new_store_both_succeed_and_register_the_stack_once(tmp_path):
    """The second used to fail creating the store's tables the first was creating."""
    environment = {**os.environ, "ZENML_CONFIG_PATH": str(tmp_path / "zenml")}
    setups = [
        subprocess.Popen(
            [sys.executable, str(REPOSITORY_ROOT / "run.py"), "setup"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPOSITORY_ROOT,
            env=environment,
        )
        for _ in range(2)
    ]
    outputs = [setup.communicate(timeout=300)[0] for setup in setups]
    assert [setup.returncode for setup in setups] == [0, 0], outputs
    assert sum(f"created stack '{STACK_NAME}'" in output for output in outputs) == 1
    assert ".radreport.lock" not in os.listdir(tmp_path / "zenml")
