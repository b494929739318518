"""csms.app.settle_collector: the garbage collector as `csms serve` sets it once started."""

from __future__ import annotations

import gc

from csms.app import GC_YOUNG_THRESHOLD, settle_collector


def test_settle_collector_freezes_start_up_and_raises_the_young_threshold() -> None:
    threshold = gc.get_threshold()
    frozen = gc.get_freeze_count()
    start_up = [object() for _ in range(10)]
    held = [start_up]  # a container, tracked by the collector
    try:
        settle_collector()
        assert gc.get_freeze_count() > frozen
        # Frozen objects are out of every generation a collection walks.
        assert not any(obj is held for obj in gc.get_objects())
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
