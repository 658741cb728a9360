"""A started process's heap: kept out of the collector's sight, start-up's garbage collected first."""

from __future__ import annotations

import gc
import weakref

from fleet import heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_settling_freezes_what_lives_and_collects_what_does_not_first():
    garbage = _Node()
    gone = weakref.ref(garbage)
    kept = _Node()
    del garbage
    try:
        heap.settle()
        assert gone() is None  # start-up's garbage is not frozen for ever
        assert gc.get_freeze_count() > 0 and kept.me is kept
        later = _Node()
        later_gone = weakref.ref(later)
        del later
        gc.collect()
        assert later_gone() is None  # what is made afterwards is collected as before
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
