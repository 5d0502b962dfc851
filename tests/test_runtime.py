"""Process-wide tuning at server start."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from aperture.runtime import freeze_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_freezing_the_heap_exempts_what_is_alive_and_makes_young_collections_rare() -> None:
    kept = [object() for _ in range(10)]
    before = gc.get_threshold()
    freeze_heap()
    assert gc.get_freeze_count() > len(kept)
    assert gc.get_threshold() == (20_000, *before[1:])  # the older generations as they were
    # Cycles are still collected, only less often.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
