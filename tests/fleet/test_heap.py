"""A started process's heap: kept out of the collector's sight, start-up's garbage collected first.

Settled in a process of its own: the test session has frozen its own heap once collected
(``tests/conftest.py``), which a test here could neither tell from its own freeze nor undo
(``gc.unfreeze`` thawed the whole session's, for the rest of it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SETTLED = """
import gc
import weakref

from fleet import heap


class Node:
    def __init__(self):
        self.me = self  # a cycle: only the cyclic collector frees it


def seen(thing) -> bool:  # the collector's generations (a frozen object is in none of them)
    return any(o is thing for o in gc.get_objects())


garbage = Node()
gone = weakref.ref(garbage)
kept = Node()
del garbage
if gc.get_freeze_count() or not seen(kept):
    raise SystemExit("the heap was frozen before settling")
heap.settle()
if gone() is not None:
    raise SystemExit("start-up's garbage was frozen for ever")
if seen(kept) or not gc.get_freeze_count():
    raise SystemExit("what lives was left in the collector's sight")
later = Node()
later_gone = weakref.ref(later)
del later
gc.collect()
if later_gone() is not None:
    raise SystemExit("what is made afterwards is not collected as before")
"""


def test_settling_freezes_what_lives_and_collects_what_does_not_first():
    settled = subprocess.run([sys.executable, "-c", _SETTLED], cwd=ROOT, capture_output=True, text=True)
    assert settled.returncode == 0, settled.stderr
