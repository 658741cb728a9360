"""Small counts in the public figures: hidden, and kept hidden from subtraction.

A table of the public figures is counts by borough and their London total. Two rules:

- **Primary**: a count below ``THRESHOLD`` (5), zero included, is shown as "fewer than 5".
- **Secondary**: the London total minus the counts shown gives the sum of the hidden ones,
  so one hidden borough alone would be recovered by subtraction. More counts are withheld,
  smallest first, until no hidden small count can be narrowed by that sum at all: whatever
  the published figures, each of them could still be any of 0 to 4. A reader knows that a
  "fewer than 5" count is 0 to 4 and that a withheld one is at least 5 and at most the
  smallest count shown (it was withheld smallest first); with those bounds, the sum of the
  hidden counts must leave each small count its whole range (``_safe``). When no count is
  left to withhold, the London total is withheld instead.

A total below the threshold is itself a small count: then every count is hidden.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

THRESHOLD = 5
Status = Literal["shown", "fewer than 5", "withheld"]
SMALL: Status = "fewer than 5"
WITHHELD: Status = "withheld"
SHOWN: Status = "shown"


def _safe(hidden_sum: int, small: int, withheld: int, smallest_shown: int | None) -> bool:
    """Can each of ``small`` hidden counts (each 0..4) still be any of 0..4, given only the sum of
    all hidden counts and that each of the ``withheld`` others lies in [5, smallest shown]?"""
    top = THRESHOLD - 1
    others_low = THRESHOLD * withheld  # the other small counts at 0, the withheld at 5
    # a withheld count with nothing shown above it has no upper bound
    unbounded = smallest_shown is None and withheld > 0
    others_high = top * (small - 1) + (smallest_shown or 0) * withheld
    low_ok = unbounded or hidden_sum <= others_high  # this count could be 0
    high_ok = hidden_sum - top >= others_low  # ... and could be 4
    return low_ok and high_ok


def protect(counts: Mapping[str, int]) -> tuple[dict[str, Status], Status]:
    """Each count's status and the total's: what may be published of this table."""
    total = sum(counts.values())
    if total < THRESHOLD:
        return dict.fromkeys(counts, SMALL), SMALL
    status: dict[str, Status] = {key: SMALL if n < THRESHOLD else SHOWN for key, n in counts.items()}
    small = sum(1 for s in status.values() if s == SMALL)
    if small == 0:
        return status, SHOWN
    shown = sorted((n, key) for key, n in counts.items() if status[key] == SHOWN)
    withheld = 0
    while True:
        hidden_sum = total - sum(n for n, _ in shown)
        if _safe(hidden_sum, small, withheld, shown[0][0] if shown else None):
            return status, SHOWN
        if not shown:
            return status, WITHHELD
        _, key = shown.pop(0)
        status[key] = WITHHELD
        withheld += 1


def keep_total_hidden(counts: Mapping[str, int], status: dict[str, Status]) -> dict[str, Status]:
    """``status`` made so that its table no longer gives its total away: for a total withheld
    because another table sharing it needs it hidden. A table whose counts are all shown adds up
    to the total; one count withheld (of 5 or more, so unbounded above) leaves the total unknown."""
    if WITHHELD in status.values():
        return status
    shown = sorted((n, key) for key, n in counts.items() if status[key] == SHOWN)
    if shown:
        status = {**status, shown[0][1]: WITHHELD}
    return status


def share_status(part: int, whole: int) -> Status:
    """A share (``part`` of ``whole``) gives away both counts, ``part`` and ``whole - part``:
    shown only when neither is small."""
    return SHOWN if part >= THRESHOLD and whole - part >= THRESHOLD else SMALL
