"""Times are stored as fixed-width RFC 3339 UTC text, so they compare correctly as text."""

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from fleet.clock import from_iso, to_iso, to_iso_many

aware = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5, minutes=-30))]),
)


@given(st.lists(aware, max_size=20))
def test_the_batch_form_equals_the_single_form(moments):
    assert to_iso_many(moments) == [to_iso(m) for m in moments]


@given(aware, aware)
def test_text_order_is_time_order(a, b):
    assert (to_iso(a) < to_iso(b)) == (a < b)
    assert from_iso(to_iso(a)) == a
