"""Times on the staff's pages in London time, named GMT or BST (``central.web.local_time``)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from central.web.local_time import local, moment_typed


@pytest.mark.parametrize(
    ("value", "fmt", "shown"),
    [
        (datetime(2026, 7, 1, 13, 30, tzinfo=UTC), "%Y-%m-%d %H:%M", "2026-07-01 14:30 BST"),
        (datetime(2026, 12, 1, 13, 30, tzinfo=UTC), "%Y-%m-%d %H:%M", "2026-12-01 13:30 GMT"),
        ("2026-07-01T13:30:05.000000Z", "%Y-%m-%d %H:%M:%S", "2026-07-01 14:30:05 BST"),
        (datetime(2026, 7, 1, 13, 30), "%H:%M", "14:30 BST"),  # naive: UTC, as central stores it
        (datetime(2026, 6, 30, 23, 30, tzinfo=UTC), "%Y-%m-%d", "2026-07-01"),  # London's day, no zone
        (date(2026, 6, 30), "%Y-%m-%d", "2026-06-30"),  # a day is no moment: nothing moves it
        (None, "%Y-%m-%d", "-"),
        ("", "%Y-%m-%d", "-"),
        ("not a time", "%Y-%m-%d", "not a time"),  # shown as it is: one odd value never breaks a page
    ],
)
def test_a_moment_is_shown_in_london_time_with_its_zone(value, fmt, shown):
    assert local(value, fmt) == shown


def test_the_hour_the_clocks_go_back_is_told_apart():
    first, second = datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert (local(first, "%H:%M"), local(second, "%H:%M")) == ("01:30 BST", "01:30 GMT")


@pytest.mark.parametrize(
    ("typed", "utc"),
    [
        ("2026-07-01T14:30", datetime(2026, 7, 1, 13, 30, tzinfo=UTC)),
        ("2026-12-01T14:30", datetime(2026, 12, 1, 14, 30, tzinfo=UTC)),
        ("2026-07-01", datetime(2026, 6, 30, 23, 0, tzinfo=UTC)),  # London's midnight
        ("2026-03-29T01:30", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),  # skipped: read as the hour after
        ("2026-10-25T01:30", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),  # repeated: its first
    ],
)
def test_a_time_a_person_types_is_london_time(typed, utc):
    assert moment_typed(typed) == utc
