import gc
import weakref

import pytest

from radreport import start_up_gc


@pytest.fixture
def restored_gc():
    """Each test leaves the collector of the test process as it found it."""
    thresholds = gc.get_threshold()
    yield
    start_up_gc._thresholds_before_pause = None
    gc.set_threshold(*thresholds)
    gc.unfreeze()


def collections_while_growing() -> list[int]:
    """The generations collected while the heap gains more long-lived containers than it
    holds now: enough that an unpaused collector runs a full collection."""
    generations = []

    def record(phase, info):
        if phase == "start":
            generations.append(info["generation"])

    kept = []
    gc.callbacks.append(record)
    try:
        for _ in range(gc.get_freeze_count() + len(gc.get_objects()) + 100_000):
            kept.append([])
    finally:
        gc.callbacks.remove(record)
    return generations


class Cycle:
    def __init__(self):
        self.me = self


def test_a_growing_heap_triggers_full_collections_unless_paused(restored_gc):
    assert 2 in collections_while_growing()  # the control: the collector as Python sets it

    start_up_gc.pause_full_collections()
    generations = collections_while_growing()
    assert 2 not in generations
    assert 0 in generations  # young collections go on


def test_young_cycles_are_freed_while_paused(restored_gc):
    start_up_gc.pause_full_collections()
    cycle = Cycle()
    alive = weakref.ref(cycle)
    del cycle
    collections_while_growing()
    assert alive() is None


def test_resume_freezes_what_start_up_made_and_restores_the_thresholds(restored_gc):
    thresholds = gc.get_threshold()
    start_up_gc.pause_full_collections()
    frozen_before = gc.get_freeze_count()
    start_up_gc.resume_full_collections()

    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() > frozen_before
    assert 2 in collections_while_growing()
    cycle = Cycle()  # made after start-up: collected as usual
    alive = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert alive() is None


def test_resume_without_a_pause_changes_nothing(restored_gc):
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    start_up_gc.resume_full_collections()
    assert (gc.get_threshold(), gc.get_freeze_count()) == (thresholds, frozen)
