"""Suppression of small counts: no small count published, none recoverable by subtraction.

The attacker here knows the rules (``central.web.suppression``) and every published figure of a
table: the counts shown, the London total when shown, that a "fewer than 5" count is 0..4 and
that a withheld one lies between 5 and the smallest count shown (with none shown, the total
bounds it). Every table of up to four boroughs is checked by enumerating what those facts allow."""

from __future__ import annotations

import itertools

import pytest

from central.web.suppression import SHOWN, SMALL, WITHHELD, protect, share_status

TRIED = (0, 1, 2, 4, 5, 6, 9, 12)


def _possible(counts: dict[str, int]) -> tuple[dict, list[dict[str, int]]]:
    """The published statuses, and every table consistent with what is published."""
    status, total_status = protect(counts)
    shown = [counts[k] for k, s in status.items() if s == SHOWN]
    ceiling = min(shown) if shown else sum(counts.values()) + 5
    ranges = {
        k: [counts[k]] if s == SHOWN else range(0, 5) if s == SMALL else range(5, ceiling + 1)
        for k, s in status.items()
    }
    total = sum(counts.values())
    tables = [
        dict(zip(ranges, values, strict=True))
        for values in itertools.product(*ranges.values())
        if total_status != SHOWN or sum(values) == total
    ]
    return status, tables


def test_counts_of_five_or_more_are_all_shown():
    assert protect({"Barnet": 5, "Camden": 120}) == ({"Barnet": SHOWN, "Camden": SHOWN}, SHOWN)


def test_one_small_count_is_not_left_alone_beside_a_total():
    status, total = protect({"Barnet": 3, "Camden": 120, "Ealing": 40, "Brent": 41})
    # Ealing alone would not do: withheld smallest first, it is at most 41 (Brent), so Barnet >= 2
    assert status == {"Barnet": SMALL, "Camden": SHOWN, "Ealing": WITHHELD, "Brent": WITHHELD}
    assert total == SHOWN


def test_a_small_total_hides_everything():
    assert protect({"Barnet": 1, "Camden": 2}) == ({"Barnet": SMALL, "Camden": SMALL}, SMALL)


def test_small_counts_that_would_pin_each_other_withhold_the_total():
    # 4 + 1 = 5: were the total shown, Barnet could not be 0 (Camden would be 5)
    assert protect({"Barnet": 4, "Camden": 1}) == ({"Barnet": SMALL, "Camden": SMALL}, WITHHELD)


@pytest.mark.parametrize("boroughs", [1, 2, 3, 4])
def test_no_small_count_can_be_narrowed_by_subtraction(boroughs):
    names = [f"B{i}" for i in range(boroughs)]
    tried = TRIED if boroughs < 4 else (0, 2, 4, 5, 9)  # four boroughs: fewer values, or it takes minutes
    for counts in itertools.product(tried, repeat=boroughs):
        table = dict(zip(names, counts, strict=True))
        status, tables = _possible(table)
        assert table in tables
        for name, s in status.items():
            if s == SMALL:
                assert {t[name] for t in tables} == set(range(5)), (table, status, name)
            else:
                assert s == WITHHELD or table[name] >= 5, (table, status)


def test_a_share_hides_when_either_side_is_small():
    assert share_status(4, 100) == SMALL  # 4 evidential
    assert share_status(97, 100) == SMALL  # 3 not evidential
    assert share_status(5, 10) == SHOWN
