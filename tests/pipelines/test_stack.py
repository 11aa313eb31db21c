from zenml.client import Client
from zenml.enums import StackComponentType

from pipelines.stack import REGISTRY_NAME, STACK_NAME, TRACKER_NAME, ensure_stack


def test_setup_is_idempotent_and_registers_mlflow_components(radreport_stack):
    assert ensure_stack() == []
    stack = Client().active_stack_model
    assert stack.name == STACK_NAME
    tracker = stack.components[StackComponentType.EXPERIMENT_TRACKER][0]
    registry = stack.components[StackComponentType.MODEL_REGISTRY][0]
    assert (tracker.name, tracker.flavor_name) == (TRACKER_NAME, "mlflow")
    assert (registry.name, registry.flavor_name) == (REGISTRY_NAME, "mlflow")
