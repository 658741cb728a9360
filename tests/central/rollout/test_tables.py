"""The planner's tables: what a terminal shows of the progress against the plan."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from central.rollout.service import ProgressRow
from central.rollout.tables import progress_lines

pytestmark = pytest.mark.sqlite_only  # no database


def _rows(figures: list[tuple[int, int, int, int]]) -> list[ProgressRow]:
    start = date(2015, 9, 7)
    return [
        ProgressRow(
            week=week,
            starts=start + timedelta(weeks=week - 1),
            borough="all",
            planned=p,
            delivered=d,
            issued=i,
            in_service=s,
        )
        for week, (p, d, i, s) in enumerate(figures, start=1)
    ]


def test_a_run_of_unchanged_weeks_becomes_one_line_with_its_length():
    # A plan that ended in week 3 of a roll-out now in week 10: weeks 4-9 moved nothing.
    rows = _rows([(10, 0, 0, 0), (20, 5, 0, 0), (30, 5, 2, 0)] + [(30, 5, 2, 0)] * 7)
    lines = progress_lines(rows, current_week=10)
    assert [line if isinstance(line, int) else line.week for line in lines] == [1, 2, 3, 6, 10]


def test_the_current_week_and_any_week_that_moved_are_kept():
    rows = _rows([(10, 0, 0, 0)] * 4 + [(10, 1, 0, 0)] + [(10, 1, 0, 0)] * 3)
    lines = progress_lines(rows, current_week=3)
    assert [line if isinstance(line, int) else line.week for line in lines] == [1, 1, 3, 1, 5, 2, 8]


def test_nothing_hidden_when_every_week_moves():
    rows = _rows([(i, i, 0, 0) for i in range(1, 6)])
    assert progress_lines(rows, current_week=5) == rows
