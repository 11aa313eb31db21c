"""Small MLflow helpers shared by the steps (the core never imports MLflow)."""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Number

import mlflow
from zenml import get_step_context


def flatten_values(values: Mapping, prefix: str = "") -> dict[str, object]:
    """Leaves of a nested mapping as `prefix_key_subkey`."""
    flat: dict[str, object] = {}
    for key, value in values.items():
        name = f"{prefix}_{key}" if prefix else str(key)
        flat |= flatten_values(value, name) if isinstance(value, Mapping) else {name: value}
    return flat


def flatten_numbers(values: Mapping, prefix: str = "") -> dict[str, float]:
    """The numeric leaves (not booleans, not NaN) of flatten_values, as floats."""
    return {
        name: float(value)
        for name, value in flatten_values(values, prefix).items()
        if isinstance(value, Number) and not isinstance(value, bool) and value == value
    }


def log_flat_params(values: Mapping, prefix: str) -> None:
    """A settings section as MLflow params, so runs that differ in it differ in the compare
    view too."""
    mlflow.log_params(flatten_values(values, prefix))


def log_flat_metrics(values: Mapping, prefix: str = "", step: int | None = None) -> None:
    mlflow.log_metrics(flatten_numbers(values, prefix), step=step)


def tag_model_version() -> None:
    """The ZenML model version the pipeline run makes, as tags of its MLflow run, so that a
    run found in the MLflow UI leads to the version that holds its adapter. A run without a
    model (the data pipeline) gets none."""
    model_version = get_step_context().model_version
    if model_version is not None:
        mlflow.set_tags(
            {"zenml_model": model_version.model.name, "zenml_model_version": model_version.name}
        )
