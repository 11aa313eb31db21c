"""The stop bias calibration as a picture: length ratio and BLEU-4 against the bias tried."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on training machines
import matplotlib.pyplot as plt  # noqa: E402

from radreport.llm.stop_bias_calibration import StopBiasCalibration  # noqa: E402


def plot_calibration(calibration: StopBiasCalibration, path: Path) -> Path:
    """Length ratio and BLEU-4 against the stop bias, the chosen bias marked."""
    trials = sorted(calibration.trials, key=lambda t: t.bias)
    biases = [t.bias for t in trials]
    figure, ratio_axis = plt.subplots(figsize=(6, 4))
    ratio_axis.plot(biases, [t.length_ratio for t in trials], "o-", color="tab:blue")
    ratio_axis.axhline(1.0, color="tab:blue", linestyle=":", linewidth=1)
    ratio_axis.set_xlabel("stop logit bias")
    ratio_axis.set_ylabel("length ratio (generated / reference words)", color="tab:blue")
    bleu_axis = ratio_axis.twinx()
    bleu_axis.plot(biases, [t.bleu4 for t in trials], "s--", color="tab:orange")
    bleu_axis.set_ylabel("BLEU-4", color="tab:orange")
    ratio_axis.axvline(calibration.chosen_bias, color="grey", linewidth=1)
    ratio_axis.set_title(
        f"Stop bias calibration on {calibration.studies} validation studies: "
        f"{calibration.chosen_bias:+g} chosen",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
