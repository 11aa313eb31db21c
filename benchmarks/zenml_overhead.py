"""ZenML's cost per pipeline run and per step, against calling the same functions directly.

Runs pipelines of 1 and 5 trivial steps on the active stack (local orchestrator)
with caching off, a few times each, and prints the overhead per run, per step,
and the ratio pipeline time / direct call time.

    ZENML_CONFIG_PATH=$(mktemp -d) .venv/bin/python benchmarks/zenml_overhead.py
"""

from __future__ import annotations

import statistics
import time

from zenml import pipeline, step

REPEATS = 3


def add_one(x: int) -> int:
    return x + 1


@step(enable_cache=False)
def add_one_step(x: int) -> int:
    return add_one(x)


@pipeline(enable_cache=False)
def one_step_chain() -> None:
    add_one_step(0)


@pipeline(enable_cache=False)
def five_step_chain() -> None:
    x = add_one_step(0)
    for _ in range(4):
        x = add_one_step(x)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def direct_chain(length: int) -> None:
    x = 0
    for _ in range(length):
        x = add_one(x)


def main() -> None:
    from pipelines.stack import ensure_stack

    ensure_stack()
    one_step_chain()  # warm-up: imports, database and first-step initialisation
    one = statistics.median(timed(one_step_chain) for _ in range(REPEATS))
    five = statistics.median(timed(five_step_chain) for _ in range(REPEATS))
    direct = statistics.median(timed(lambda: direct_chain(5)) for _ in range(REPEATS))
    per_step = (five - one) / 4
    per_run = one - per_step
    print(f"1-step pipeline run: {one:.2f} s   5-step: {five:.2f} s")
    print(f"direct 5 calls: {direct:.2e} s")
    print(f"overhead per run: {per_run:.2f} s   per step: {per_step:.2f} s")
    print(f"ratio pipeline / direct (5 steps): {five / direct:,.0f}x")


if __name__ == "__main__":
    main()
