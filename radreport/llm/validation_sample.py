"""The validation studies the training's loss is measured on: all of them, or a seeded sample
where the split is larger than `llm.eval_loss_studies`.

The validation loss is computed before training and every `eval_steps`, a forward pass over
each of its studies every time, so its cost grows with the split while the training between
two evaluations does not: at 50,000 studies the 10 % split holds 5,000, against the
`eval_steps x per_device_batch_size` (400 by default) trained between two evaluations. A
fixed sample bounds it; being the same studies every time, the losses stay comparable from
one evaluation to the next, and early stopping compares like with like.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def validation_loss_rows(
    val_rows: Sequence[Mapping], limit: int | None, seed: int
) -> Sequence[Mapping]:
    """`val_rows` when they are at most `limit` (or `limit` is None); else `limit` of them
    drawn without replacement by `seed`, in their original order, the same every run."""
    if limit is None or len(val_rows) <= limit:
        return val_rows
    chosen = np.sort(np.random.default_rng(seed).choice(len(val_rows), limit, replace=False))
    return [val_rows[index] for index in chosen]
