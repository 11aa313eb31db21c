import numpy as np

from radreport.metrics.bootstrap import percentile_interval, resample_weights


def test_each_resample_draws_every_report_slot_once():
    weights = resample_weights(n_items=7, n_resamples=50, seed=3)
    assert weights.shape == (50, 7)
    assert (weights.sum(axis=1) == 7).all()
    assert (weights >= 0).all()


def test_resamples_are_deterministic_by_seed():
    assert (resample_weights(20, 30, seed=1) == resample_weights(20, 30, seed=1)).all()
    assert (resample_weights(20, 30, seed=1) != resample_weights(20, 30, seed=2)).any()


def test_interval_of_a_mean_contains_the_point_estimate():
    values = np.random.default_rng(0).uniform(size=100)
    weights = resample_weights(len(values), 1000, seed=0)
    low, high = percentile_interval(weights @ values / len(values), confidence=0.95)
    assert low < values.mean() < high
    # Roughly the normal-theory half width 1.96 * sd / sqrt(n) of a uniform sample.
    assert abs((high - low) / 2 - 1.96 * values.std() / 10) < 0.01


def test_undefined_resamples_are_left_out():
    assert percentile_interval(np.array([np.nan, 0.5, 0.5]), 0.9) == (0.5, 0.5)
    assert np.isnan(percentile_interval(np.array([np.nan]), 0.9)[0])
