"""A key/value cache for the PyTorch decode loop that allocates every position once.

transformers' DynamicCache appends each step's keys and values with `torch.cat`, which
copies a layer's whole cache at every step: a step reads and writes the cache once more
than its attention reads it, and for a moment holds two copies of a layer's. The decode loop
knows how many positions a batch can reach (its padded prompt and its budget of new tokens),
so these layers take that much memory when the prompt is encoded and write each step's
position in place. Measured on the CPU with MBR over 8 on prompts of 1,000-2,100 tokens:
the same tokens, and 1.26x the decode steps per second (benchmarks/decode_cache_growth.py,
BENCHMARKS.md).
"""

from __future__ import annotations

from functools import partial

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """A DynamicLayer whose keys and values are views of `capacity` positions allocated at
    the first update; what the decode loop uses (updates, the batch's rows repeated or
    selected) behaves as DynamicLayer's. Writing past `capacity` is an error, not a
    reallocation: the loop sized it."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        rows, heads = key_states.shape[:2]

        def storage(states: torch.Tensor) -> torch.Tensor:
            shape = (rows, heads, self.capacity, states.shape[-1])
            return torch.empty(shape, dtype=states.dtype, device=states.device)

        self._keys, self._values = storage(key_states), storage(value_states)
        self.is_initialized = True
        self._expose()

    def _expose(self) -> None:
        """`keys` and `values`, as DynamicLayer's callers read them: the positions so far."""
        self.keys = self._keys[:, :, : self.length]
        self.values = self._values[:, :, : self.length]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise ValueError(f"the cache holds {self.capacity} positions; {end} were written")
        self._keys[:, :, self.length : end] = key_states
        self._values[:, :, self.length : end] = value_states
        self.length = end
        self._expose()
        return self.keys, self.values

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self._keys = self._keys.repeat_interleave(repeats, dim=0)
            self._values = self._values.repeat_interleave(repeats, dim=0)
            self._expose()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self._keys, self._values = self._keys[indices], self._values[indices]
            self._expose()


def preallocated_cache(config, capacity: int) -> DynamicCache:
    """A DynamicCache for a model with this `config` whose full-attention layers hold
    `capacity` positions each, allocated once (other layer types, e.g. sliding windows, are
    transformers' own)."""
    cache = DynamicCache(config=config)
    cache.layers = [
        PreallocatedLayer(capacity) if type(layer) is DynamicLayer else layer
        for layer in cache.layers
    ]
    if cache.layer_class_to_replicate is DynamicLayer:  # layers made as they are first used
        cache.layer_class_to_replicate = partial(PreallocatedLayer, capacity)
    return cache
