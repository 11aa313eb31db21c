"""The length-grouped batch order: a function of the data seed and the epoch alone."""

from __future__ import annotations

import torch

from radreport.llm.length_grouped_order import EpochSeededLengthGroupedSampler

LENGTHS = [(7 * index) % 37 + 1 for index in range(40)]


def test_an_epochs_order_does_not_depend_on_the_global_random_state():
    sampler = EpochSeededLengthGroupedSampler(4, LENGTHS, seed=7)
    torch.manual_seed(1)
    first = list(sampler)
    torch.manual_seed(2)
    assert list(sampler) == first
    assert sorted(first) == list(range(len(LENGTHS)))


def test_a_new_sampler_set_to_an_epoch_repeats_that_epochs_order():
    sampler = EpochSeededLengthGroupedSampler(4, LENGTHS, seed=7)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    resumed = EpochSeededLengthGroupedSampler(4, LENGTHS, seed=7)
    resumed.set_epoch(1)

    assert epoch1 != epoch0
    assert list(resumed) == epoch1
    assert list(EpochSeededLengthGroupedSampler(4, LENGTHS, seed=8)) != epoch0
