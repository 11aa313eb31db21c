"""Python's cyclic garbage collector while a command starts and when it exits.

A command of `run.py` imports torch, transformers, peft, ZenML and MLflow: about a million
objects that live as long as the process. While they are created, the heap passes the
collector's full-collection threshold again and again, and each full collection walks
everything imported so far; at exit, the interpreter's last collection walks all of it once
more. Measured on `run.py generate` (2 cores): 11 full collections took 1.8 s of its 14 s,
and the exit another 1.8 s.

So a command run as a program (`run.py`'s `main`) starts with full collections paused, and
young collections still run, so short-lived cycles are freed as usual. When its start-up is
over (the heavy imports done, before the long work: a pipeline, a batch of generation)
`resume_full_collections` moves every object then alive to the collector's permanent
generation, which later collections skip, and turns full collections back on. At exit
`skip_final_collection` does the same for what the command made, so the interpreter frees
it by reference counts instead of walking it; Python does not promise to finalize objects
still alive at exit anyway.

Called in a process that did not pause (tests that invoke the commands in-process),
`resume_full_collections` changes nothing.
"""

from __future__ import annotations

import gc

# Full collections happen after this many young ones; high enough that none comes before
# `resume_full_collections` (a start-up runs a few hundred).
_PAUSED_THRESHOLD = 1 << 30

_thresholds_before_pause: tuple[int, int, int] | None = None


def pause_full_collections() -> None:
    global _thresholds_before_pause
    if _thresholds_before_pause is None:
        _thresholds_before_pause = gc.get_threshold()
        young, middle, _ = _thresholds_before_pause
        gc.set_threshold(young, middle, _PAUSED_THRESHOLD)


def resume_full_collections() -> None:
    global _thresholds_before_pause
    if _thresholds_before_pause is not None:
        gc.freeze()
        gc.set_threshold(*_thresholds_before_pause)
        _thresholds_before_pause = None


def skip_final_collection() -> None:
    gc.freeze()
