"""The evaluation's comparison plot says which scores have an interval and which do not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from radreport.metrics.plots import metric_comparison_figure


def test_a_metric_without_an_interval_gets_no_error_bar_and_says_so():
    table = pd.DataFrame(
        {
            "bleu4": [0.30, 0.25],
            "bleu4_ci_low": [0.26, 0.20],
            "bleu4_ci_high": [0.34, 0.29],
            "chrf": [0.50, 0.45],  # scored on the corpus alone: no bootstrap interval
        },
        index=["model", "lookup"],
    )
    axes = metric_comparison_figure(table).axes[0]
    labels = [label.get_text() for label in axes.get_xticklabels()]
    assert labels == ["BLEU-4", "chrF\n(no CI)"]
    # One drawn interval per system, BLEU-4's from its low to its high end; none for chrF
    # (before, a bar of width 0 at the score, which reads as a certain one).
    drawn = [
        [
            sorted(np.reshape(segment, (-1, 2))[:, 1])
            for segment in container.errorbar.lines[2][0].get_segments()
        ]
        for container in axes.containers
        if getattr(container, "errorbar", None) is not None
    ]
    drawn = [[ends for ends in system if len(ends)] for system in drawn]
    assert np.allclose(drawn, [[[0.26, 0.34]], [[0.20, 0.29]]])
