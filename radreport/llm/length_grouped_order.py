"""A length-grouped batch order that a resumed run repeats exactly.

transformers' LengthGroupedSampler draws its permutation from torch's global random state
when the epoch's iterator is made. A run resumed mid-epoch makes that iterator before the
Trainer restores the checkpoint's random state, so the steps after the resume saw other
batches than the uninterrupted run, and its adapter came out different (measured on the
tiny test model: identical when resumed at an epoch boundary, different mid-epoch). Here
each epoch's order depends on the data seed and the epoch alone, as with the Trainer's
seeded random sampler for the other batching modes.
"""

from __future__ import annotations

import torch
from transformers.trainer_pt_utils import LengthGroupedSampler


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """transformers' length grouping, with epoch e's permutation drawn from seed + e.

    The Trainer (through accelerate's data loader) calls set_epoch before each epoch's
    iterator, also when it skips the batches a resumed run already trained on."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        self.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return super().__iter__()


class SeededLengthGroupedOrder:
    """Trainer mixin: `train_sampling_strategy="group_by_length"` batches through
    EpochSeededLengthGroupedSampler, reading the lengths from the dataset's length column.
    Any other strategy, or a dataset without the column, is left to the Trainer."""

    def _get_train_sampler(self, train_dataset=None):
        dataset = self.train_dataset if train_dataset is None else train_dataset
        column = self.args.length_column_name
        if self.args.train_sampling_strategy != "group_by_length" or column not in getattr(
            dataset, "column_names", ()
        ):
            return super()._get_train_sampler(train_dataset)
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return EpochSeededLengthGroupedSampler(
            self.args.train_batch_size * self.args.gradient_accumulation_steps,
            lengths=list(dataset[column]),
            seed=seed,
        )
