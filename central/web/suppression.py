"""Small counts in the public figures: hidden, and kept hidden from subtraction.

A table of the public figures is counts by borough (or by outcome) and their total. The reader
this guards against knows these rules and every published figure, and so knows each count to
lie in a range: a count shown is itself; a "fewer than 5" count is 0 to 4; a withheld one is 5
or more and at most the smallest count shown in its table (they are withheld smallest first);
and where another table bounds a count (a borough's cameras are at most its clips, and at least
one where it has clips) those bounds too. The rules:

- **Primary**: a count below ``THRESHOLD`` (5), zero included, is shown as "fewer than 5".
- **Secondary**: the total minus the counts shown gives the sum of the hidden ones, so one
  hidden count alone would be recovered by subtraction. More counts are withheld, smallest
  first, until that sum narrows no hidden small count at all: each could still be any value
  its own range allows (``_free``). When no count is left to withhold, the total is withheld.
- **Tables sharing a total** (``protect_shared``: the requests by borough and by outcome): when
  either must withhold the total, the reader still bounds it by what each table's ranges add up
  to. More counts are withheld, in either table, until no small count of either can be narrowed
  through the total's range.
- **A table bounded by another** (``protect_bounded``: cameras, at most the clips): counts are
  hidden wherever the bounding count is, and the total is published only when those bounds are
  exact (every bounding count shown), so that no sum over hidden bounds can pin a count.

Each check is exact, not a heuristic: with one sum over counts each known to lie in a range,
a count can take a value exactly when the others' ranges can make up the rest, and the others'
possible sums are every whole number between their least and their greatest.

A total below the threshold is itself a small count: then every count is hidden.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

THRESHOLD = 5
Status = Literal["shown", "fewer than 5", "withheld"]
SMALL: Status = "fewer than 5"
WITHHELD: Status = "withheld"
SHOWN: Status = "shown"

Range = tuple[float, float]
"""What the reader knows of a count: least and greatest (``math.inf``: no upper bound)."""


def _ranges(
    counts: Mapping[str, int],
    status: Mapping[str, Status],
    floor: Mapping[str, int] | None = None,
    cap: Mapping[str, int] | None = None,
) -> dict[str, Range]:
    """Each count's range as the reader works it out from its status, the smallest count shown
    and the bounds another table puts on it (``floor``, ``cap``)."""
    ceiling = min((n for k, n in counts.items() if status[k] == SHOWN), default=math.inf)
    floor, cap = floor or {}, cap or {}
    out: dict[str, Range] = {}
    for key, n in counts.items():
        low, high = floor.get(key, 0), cap.get(key, math.inf)
        if status[key] == SHOWN:
            out[key] = (n, n)
        elif status[key] == SMALL:
            out[key] = (low, min(THRESHOLD - 1, high))
        else:
            out[key] = (max(THRESHOLD, low), min(ceiling, high))
    return out


def _total_range(ranges: Mapping[str, Range]) -> Range:
    return sum(r[0] for r in ranges.values()), sum(r[1] for r in ranges.values())


def _free(ranges: Mapping[str, Range], status: Mapping[str, Status], total: Range) -> bool:
    """Can every small count still be each end (so every value) of its own range, given that all
    the counts add up to something in ``total``?"""
    low, high = _total_range(ranges)
    for key, (least, most) in ranges.items():
        if status[key] != SMALL:
            continue
        others_low, others_high = low - least, high - most
        for value in (least, most):
            if not (value + others_low <= total[1] and value + others_high >= total[0]):
                return False
    return True


def protect(
    counts: Mapping[str, int], floor: Mapping[str, int] | None = None, cap: Mapping[str, int] | None = None
) -> tuple[dict[str, Status], Status]:
    """Each count's status and the total's: what may be published of this table. ``floor`` and
    ``cap``: what another published table tells the reader of a count (at least, at most)."""
    total = sum(counts.values())
    if total < THRESHOLD:
        return dict.fromkeys(counts, SMALL), SMALL
    status: dict[str, Status] = {key: SMALL if n < THRESHOLD else SHOWN for key, n in counts.items()}
    shown = sorted((n, key) for key, n in counts.items() if status[key] == SHOWN)
    while not _free(_ranges(counts, status, floor, cap), status, (total, total)):
        if not shown:
            return status, WITHHELD
        _, key = shown.pop(0)
        status[key] = WITHHELD
    return status, SHOWN


def protect_shared(
    first: Mapping[str, int], second: Mapping[str, int]
) -> tuple[dict[str, Status], dict[str, Status] | None, Status]:
    """Two tables of the same total (the requests by borough, and by outcome): their statuses and
    the total's. Where either table must withhold the total, the other still bounds it (between
    what its ranges add up to), so counts are withheld, in the table whose small count is narrowed
    first, smallest first, until neither table's small counts can be narrowed through the total.

    None for ``second`` when even then a small count is narrowed: every count of both tables is
    already hidden, and the labels alone bound the total (all of one table "fewer than 5", so the
    total is at most 4 each, while the other's withheld counts are 5 or more each). Then
    ``second`` is not published at all, and ``first`` alone, with no total, gives nothing away."""
    (first_status, first_total), (second_status, second_total) = protect(first), protect(second)
    if first_total == second_total != WITHHELD:  # shown, each table is safe against it alone (or small)
        return first_status, second_status, first_total
    statuses = [first_status, second_status]
    tables = (first, second)
    while True:
        ranges = [_ranges(t, s) for t, s in zip(tables, statuses, strict=True)]
        bounds = [_total_range(r) for r in ranges]
        total = (max(b[0] for b in bounds), min(b[1] for b in bounds))
        narrowed = [i for i in (0, 1) if not _free(ranges[i], statuses[i], total)]
        if not narrowed:
            return statuses[0], statuses[1], WITHHELD
        # withholding in the narrowed table widens its small counts' room; in the other, the total's
        for i in (*narrowed, *(i for i in (0, 1) if i not in narrowed)):
            shown = sorted((n, key) for key, n in tables[i].items() if statuses[i][key] == SHOWN)
            if shown:
                statuses[i] = {**statuses[i], shown[0][1]: WITHHELD}
                break
        else:
            return statuses[0], None, WITHHELD


def protect_bounded(
    counts: Mapping[str, int], bound: Mapping[str, int], bound_status: Mapping[str, Status]
) -> tuple[dict[str, Status], Status]:
    """A table whose every count is at most the same key's count in another published table,
    ``bound`` (and at least 1 where that is): the cameras in service beside the clips uploaded.

    Where a bounding count is hidden, so is this one, and this table's total is published only
    when every bounding count is shown. Were it published beside hidden bounds, the bounds' sum
    (their table's total less its shown counts) would cap the hidden counts together, and the
    total could then pin one of them: clips Barnet 4, Ealing 0 (hidden) and Camden 5 cap Barnet's
    and Ealing's cameras together at 4, so cameras 4, 0 and 4 of total 8 make Camden's 4. With
    every bound shown, each count's range is known exactly (1 to its bound) and ``protect``
    checks the total against those ranges."""
    if all(bound_status[key] == SHOWN for key in counts):
        return protect(counts, floor={k: min(1, bound[k]) for k in counts}, cap=bound)
    status: dict[str, Status] = {
        key: (SMALL if n < THRESHOLD else WITHHELD if bound_status[key] != SHOWN else SHOWN)
        for key, n in counts.items()
    }
    return status, SMALL if sum(counts.values()) < THRESHOLD else WITHHELD


def share_status(part: int, whole: int) -> Status:
    """A share (``part`` of ``whole``) gives away both counts, ``part`` and ``whole - part``:
    shown only when neither is small."""
    return SHOWN if part >= THRESHOLD and whole - part >= THRESHOLD else SMALL
