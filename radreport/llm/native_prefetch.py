"""How far ahead the native kernel asks for the weights a batch-1 decode step streams:
chosen by measuring the step on this machine, once, and remembered.

Software prefetch is not a rule one can write down per vendor. On the Intel Xeon host we
measured, prefetching 2 KB ahead streamed the bfloat16 products at 81-88 % of the copy
limit against 81-82 % without; on the AMD EPYC hosts the same prefetch made decode steps
17-26 % slower than none (benchmarks/results/generation.md, thirteenth session). So the
kernel takes the distance as a parameter and NativeLlama times its own steps with each
choice, best of a few rounds, taken in turn so a burst of load on a shared machine hurts
every choice alike. The result is stored beside the kernel's build, whose key already names
the CPU, per matrix dtype, thread count and model size, so only the first model of a kind
on a machine pays the measurement (0.4-1.9 s for SmolLM2-135M on 2 cores).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from radreport.whole_file_writes import replaced_whole

# 0: no software prefetch; 2048: the distance that served the Intel host best.
PREFETCH_CHOICES = (0, 2048)
RECORD_NAME = "prefetch.json"


def fastest_prefetch(
    seconds_per_step: Callable[[int], float],
    choices: Sequence[int] = PREFETCH_CHOICES,
    rounds: int = 3,
) -> int:
    """The choice whose best time over `rounds` (each round times every choice in turn) is
    lowest; ties go to the earlier choice."""
    best = {choice: math.inf for choice in choices}
    for _ in range(rounds):
        for choice in choices:
            best[choice] = min(best[choice], seconds_per_step(choice))
    return min(choices, key=lambda choice: best[choice])


def read_record(record: Path) -> dict:
    """The distances stored in the JSON `record` by key; {} when it is missing or damaged."""
    try:
        known = json.loads(record.read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def remembered_prefetch(record: Path, key: str, measure: Callable[[], int]) -> int:
    """The distance stored under `key` in the JSON `record`, else `measure()`, stored there.
    An unreadable record is measured over, not trusted."""
    known = read_record(record)
    if isinstance(known.get(key), int):
        return known[key]
    chosen = measure()
    known[key] = chosen
    # Written whole or not at all: two processes measuring at once each leave a valid record.
    with replaced_whole(record) as partial:
        partial.write_text(json.dumps(known, indent=1, sort_keys=True))
    return chosen
