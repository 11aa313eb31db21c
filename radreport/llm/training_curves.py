"""Plots of a training run's history: train/validation loss and the learning rate."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on training machines
import matplotlib.pyplot as plt  # noqa: E402


def _series(log_history: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(entry["step"], entry[key]) for entry in log_history if key in entry]
    return [step for step, _ in points], [value for _, value in points]


def plot_training_curves(
    log_history: list[dict], out_dir: Path, learning_rates: list[tuple[int, float]] = ()
) -> list[Path]:
    """loss_curves.png (train and validation loss) and learning_rate.png; returns the paths.
    `learning_rates` (finetune.learning_rate_schedule: every step's rate) draws the
    schedule; without it, the rates the trainer logged."""
    out_dir.mkdir(parents=True, exist_ok=True)
    loss_path, lr_path = out_dir / "loss_curves.png", out_dir / "learning_rate.png"
    figure, axis = plt.subplots(figsize=(6, 4))
    for key, label in (("loss", "train"), ("eval_loss", "validation")):
        steps, values = _series(log_history, key)
        axis.plot(steps, values, marker="o", markersize=3, label=label)
    axis.set(xlabel="step", ylabel="cross-entropy loss", title="Loss on response tokens")
    axis.legend()
    figure.savefig(loss_path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    figure, axis = plt.subplots(figsize=(6, 3))
    if learning_rates:
        axis.plot([step for step, _ in learning_rates], [rate for _, rate in learning_rates])
    else:
        axis.plot(*_series(log_history, "learning_rate"))
    axis.set(xlabel="optimizer step", ylabel="learning rate", title="Learning-rate schedule")
    figure.savefig(lr_path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return [loss_path, lr_path]
