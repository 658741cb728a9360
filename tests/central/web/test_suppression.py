"""Suppression of small counts: no small count published, none recoverable by subtraction.

The attacker here knows the rules (``central.web.suppression``) and every published figure of a
table: the counts shown, the London total when shown, that a "fewer than 5" count is 0..4 and
that a withheld one lies between 5 and the smallest count shown (with none shown, the total
bounds it). Every table of up to four boroughs is checked by enumerating what those facts allow."""

from __future__ import annotations

import itertools

import pytest

from central.web.suppression import SHOWN, SMALL, WITHHELD, protect, protect_bounded, protect_shared, share_status

pytestmark = pytest.mark.sqlite_only  # no database: pure functions of the counts

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


def _reader_ranges(counts: dict[str, int], status: dict, cap: int) -> dict[str, range]:
    """What the documented reader knows of each count from its status alone (``cap`` stands for
    no upper bound)."""
    shown = [counts[k] for k, s in status.items() if s == SHOWN]
    ceiling = min(shown, default=cap)
    return {
        k: range(counts[k], counts[k] + 1) if s == SHOWN else range(0, 5) if s == SMALL else range(5, ceiling + 1)
        for k, s in status.items()
    }


SHARED = (0, 1, 4, 5, 6, 9)


@pytest.mark.parametrize("sizes", [(1, 2), (2, 2), (2, 3), (3, 2)])
def test_two_tables_sharing_a_total_narrow_no_small_count_of_either(sizes):
    """The requests by borough and by outcome: a reader combines both tables' ranges through the
    one total (withheld or not); every small count of either must still be any of 0 to 4."""
    first_keys, second_keys = [f"A{i}" for i in range(sizes[0])], [f"B{i}" for i in range(sizes[1])]
    for first_values in itertools.product(SHARED, repeat=sizes[0]):
        for second_values in itertools.product(SHARED, repeat=sizes[1]):
            if sum(first_values) != sum(second_values):
                continue
            first = dict(zip(first_keys, first_values, strict=True))
            second = dict(zip(second_keys, second_values, strict=True))
            first_status, second_status, total_status = protect_shared(first, second)
            total, cap = sum(first_values), sum(first_values) + 12
            tables = [(first, first_status)] + ([(second, second_status)] if second_status is not None else [])
            seen: list[dict[str, set[int]]] = [{k: set() for k in t} for t, _ in tables]
            possible = [list(itertools.product(*_reader_ranges(t, s, cap).values())) for t, s in tables]
            sums = [{sum(v) for v in p} for p in possible]
            allowed = set.intersection(*sums) & ({total} if total_status == SHOWN else set(range(cap * 3)))
            for i, (table, _) in enumerate(tables):
                for values in possible[i]:
                    if sum(values) in allowed:
                        for k, v in zip(table, values, strict=True):
                            seen[i][k].add(v)
            for i, (table, status) in enumerate(tables):
                for k, s in status.items():
                    assert s != SHOWN or table[k] >= 5, (first, second, status)
                    if s == SMALL:
                        assert seen[i][k] == set(range(5)), (first, second, first_status, second_status, k)


def test_a_shared_total_the_labels_alone_would_pin_leaves_the_second_table_out():
    # five boroughs of 4 ("fewer than 5" each: at most 20) beside four outcomes of 5 (withheld:
    # at least 20) would make every count exact; the outcomes are then not published
    boroughs, outcomes = {f"B{i}": 4 for i in range(5)}, {"o1": 5, "o2": 5, "o3": 5, "o4": 5, "o5": 0}
    first, second, total = protect_shared(boroughs, outcomes)
    assert second is None and total == WITHHELD and set(first.values()) == {SMALL}


@pytest.mark.parametrize("boroughs", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_cameras_beside_clips_narrow_no_small_count(boroughs):
    """Cameras are at most their borough's clips and at least 1 where it has clips: with both tables
    and both totals in hand, a small camera count is still anything its own borough's row allows,
    and the cameras narrow no small clip count."""
    names = [f"B{i}" for i in range(boroughs)]
    values = (0, 4, 5) if boroughs == 3 else (0, 1, 3, 4, 5, 6, 9)  # three: fewer, or it takes minutes
    for clips_values in itertools.product(values, repeat=boroughs):
        clips = dict(zip(names, clips_values, strict=True))
        clip_status, clip_total = protect(clips)
        clip_options = [
            v
            for v in itertools.product(*_reader_ranges(clips, clip_status, sum(clips_values) + 5).values())
            if clip_total != SHOWN or sum(v) == sum(clips_values)
        ]
        for camera_values in itertools.product(*(range(min(c, 1), c + 1) for c in clips_values)):
            cameras = dict(zip(names, camera_values, strict=True))
            status, total = protect_bounded(cameras, clips, clip_status)
            camera_ranges = _reader_ranges(cameras, status, sum(clips_values) + 5)
            seen_cameras: dict[str, set[int]] = {k: set() for k in names}
            seen_clips: dict[str, set[int]] = {k: set() for k in names}
            for c in clip_options:
                for m in itertools.product(*camera_ranges.values()):
                    if total == SHOWN and sum(m) != sum(camera_values):
                        continue
                    if all(x <= y and (x >= 1) == (y >= 1) for x, y in zip(m, c, strict=True)):
                        for k, x, y in zip(names, m, c, strict=True):
                            seen_cameras[k].add(x)
                            seen_clips[k].add(y)
            for k in names:
                assert status[k] != SHOWN or cameras[k] >= 5, (clips, cameras, status)
                if status[k] == SMALL:
                    own = set(range(1, 5)) if clip_status[k] != SMALL else set(range(5))  # 5+ clips: a camera
                    assert seen_cameras[k] == own, (clips, cameras, status, k, seen_cameras[k])
                if clip_status[k] == SMALL:
                    assert seen_clips[k] == set(range(5)), (clips, cameras, status, k)
