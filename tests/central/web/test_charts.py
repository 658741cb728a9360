"""The charts' geometry, read back from the SVG: no label over another at any shape of data, a
single reading as one marker with one date, axes that fit the data."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central.web import charts

pytestmark = pytest.mark.sqlite_only  # no database: a run on each would only repeat it

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def parse(markup) -> ET.Element:
    return ET.fromstring(str(markup))


def text_boxes(svg: ET.Element) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Each label's box, estimated on its own: characters × 0.6 em wide, one em tall above the
    baseline and a descender below."""
    boxes = []
    for text in svg.iter(SVG + "text"):
        tooltip = text.find(SVG + "title")
        label = "".join(text.itertext()) if tooltip is None else tooltip.tail or ""
        size = float(text.get("font-size") or 11)
        x, y, w = float(text.get("x", "")), float(text.get("y", "")), len(label) * size * 0.6
        x0 = {"start": x, "middle": x - w / 2, "end": x - w}[text.get("text-anchor", "start")]
        assert text.get("transform") is None, "a turned label: its box is not estimated here"
        boxes.append((label, (x0, y - size, x0 + w, y + size * 0.25)))
    return boxes


def assert_no_label_overlaps(svg: ET.Element) -> None:
    width, height = (float(v) for v in svg.get("viewBox").split()[2:])
    boxes = text_boxes(svg)
    for label, (x0, y0, x1, y1) in boxes:
        assert x0 >= 0 and x1 <= width and y0 >= 0 and y1 <= height, f"{label!r} leaves the chart"
    for i, (a, (ax0, ay0, ax1, ay1)) in enumerate(boxes):
        for b, (bx0, by0, bx1, by1) in boxes[i + 1 :]:
            apart = ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0
            assert apart, f"{a!r} overlaps {b!r}"


def x_labels(svg: ET.Element) -> list[str]:
    bottom = float(svg.get("viewBox").split()[3])
    return [label for label, box in text_boxes(svg) if box[3] > bottom - 12]


def y_labels(svg: ET.Element) -> list[float]:
    return [
        float(t.text.replace(",", ""))
        for t in svg.iter(SVG + "text")
        if t.get("text-anchor") == "end" and re.fullmatch(r"-?[\d,]+(\.\d+)?", t.text or "")
    ]


def chart(points, **kwargs):
    kwargs.setdefault("y_label", "hours")
    return parse(charts.time_chart("Sync lag", [("hours", points, "solid")], **kwargs))


SHAPES = {
    "one point": [(T0, 2.5)],
    "two points a minute apart": [(T0, 1.0), (T0 + timedelta(minutes=1), 3.0)],
    "two points a second apart": [(T0, 1.0), (T0 + timedelta(seconds=1), 3.0)],
    "a day of readings": [(T0 + timedelta(minutes=15 * i), i % 7) for i in range(96)],
    "a year of readings": [(T0 + timedelta(hours=i), (i % 50) * 1.5) for i in range(0, 365 * 24, 6)],
    "ten years of weeks": [(T0 + timedelta(weeks=i), i * 40) for i in range(520)],
    "values all equal": [(T0 + timedelta(days=i), 4.2) for i in range(5)],
    "all zero": [(T0 + timedelta(hours=i), 0.0) for i in range(48)],
    "large counts": [(T0 + timedelta(days=i), 1_234_567 * i) for i in range(30)],
}


@pytest.mark.parametrize("shape", SHAPES)
def test_no_label_overlaps_another_at_any_shape_of_data(shape):
    svg = chart(SHAPES[shape], y_min=0)
    assert_no_label_overlaps(svg)
    assert len(x_labels(svg)) >= 1 and len(y_labels(svg)) >= 2, shape


def test_series_names_and_a_threshold_label_keep_clear_of_each_other():
    soh = [(T0 + timedelta(days=30 * i), 96 - 2.2 * i) for i in range(7)]
    svg = parse(
        charts.time_chart(
            "Battery health of BWV-000001",
            [("state of health", soh, "solid"), ("forecast", [soh[-1], (T0 + timedelta(days=900), 80)], "dashed")],
            y_label="state of health %",
            y_min=75,
            y_max=100,
            threshold=(80, "replace below 80 %"),
        )
    )
    assert_no_label_overlaps(svg)
    labels = [label for label, _ in text_boxes(svg)]
    assert {"state of health", "forecast", "replace below 80 %"} <= set(labels)


def test_a_threshold_at_the_top_moves_below_its_line_clear_of_the_legend():
    points = [(T0 + timedelta(days=i), v) for i, v in enumerate((10, 40, 99))]
    svg = parse(
        charts.time_chart(
            "Load",
            [("this week", points, "solid"), ("last week", points[::-1], "dashed")],
            y_label="percent",
            y_min=0,
            y_max=100,
            threshold=(100, "a label as long as the legend's names together"),
        )
    )
    assert_no_label_overlaps(svg)


def test_a_single_reading_is_one_marker_with_its_value_and_one_date():
    svg = chart([(T0, 2.5)], y_min=0)
    assert [c.get("cx") for c in svg.iter(SVG + "circle")] != [] and len(list(svg.iter(SVG + "circle"))) == 1
    assert list(svg.iter(SVG + "polyline")) == []  # no line from nowhere
    assert x_labels(svg) == ["02 Mar 2026 09:30 GMT"]  # London time, as the pages show times
    assert "2.5 hours" in [label for label, _ in text_boxes(svg)]


def test_two_readings_a_minute_apart_are_ticked_in_minutes_or_seconds():
    svg = chart(SHAPES["two points a minute apart"])
    dates = x_labels(svg)
    assert (
        dates[0].startswith("02 Mar 2026 09:30")
        and len(dates) >= 2
        and all(re.fullmatch(r"[\d:]+", d) for d in dates[1:])
    )


@pytest.mark.parametrize(
    ("shape", "pattern"),
    [
        ("a day of readings", r"\d\d:\d\d"),
        ("a year of readings", r"[A-Z][a-z]{2} \d{4}"),
        ("ten years of weeks", r"\d{4}"),
    ],
)
def test_the_time_ticks_are_read_at_the_data_span(shape, pattern):
    dates = x_labels(chart(SHAPES[shape]))
    assert len(dates) >= 3 and all(re.fullmatch(pattern, d) for d in dates[1:]), dates


def test_a_summers_ticks_are_round_in_london_time():
    """A day of readings in July: the hours ticked are London's (BST), and a week's days start at
    London's midnight (23:00 UTC the day before), where each tick is drawn."""
    july = datetime(2026, 7, 1, 6, 0, tzinfo=UTC)
    day = chart([(july + timedelta(hours=h), h) for h in range(0, 13)])
    assert x_labels(day)[0] == "01 Jul 2026 08:00" and x_labels(day)[1:3] == ["10:00", "12:00"]
    t0, t1 = datetime(2026, 7, 1, 12, tzinfo=UTC), datetime(2026, 7, 8, 12, tzinfo=UTC)
    week = chart([(t0, 1), (t1, 2)])
    plot = next(week.iter(SVG + "line"))
    left, right = float(plot.get("x1")), float(plot.get("x2"))
    midnight = datetime(2026, 7, 1, 23, tzinfo=UTC)  # 2 July, 00:00 BST
    ticks = [float(t.get("x1")) for t in week.iter(SVG + "line") if "tick" in (t.get("class") or "")]
    assert x_labels(week)[0] == "02 Jul 2026"
    assert ticks[0] == pytest.approx(left + (right - left) * ((midnight - t0) / (t1 - t0)), abs=0.2)


def test_the_hours_the_clocks_skip_or_repeat_are_ticked_once_and_in_order():
    for t0 in (datetime(2026, 3, 29, 0, tzinfo=UTC), datetime(2026, 10, 25, 0, tzinfo=UTC)):
        ticks = charts._local_ticks(t0, t0 + timedelta(hours=3), timedelta(minutes=30))
        instants = [at for at, _ in ticks]
        assert instants == sorted(set(instants)) and all(t0 <= at <= t0 + timedelta(hours=3) for at in instants)
        assert all(wall.minute in (0, 30) for _, wall in ticks)


def test_a_count_axis_starts_at_zero_and_fits_the_data_with_headroom():
    ticks = y_labels(chart([(T0 + timedelta(hours=i), v) for i, v in enumerate((3, 17, 12))], y_label="clips", y_min=0))
    assert ticks[0] == 0 and 17 < ticks[-1] <= 25 and all(t == int(t) for t in ticks)
    assert y_labels(chart(SHAPES["all zero"], y_min=0)) == [0, 1]
    flat = y_labels(chart(SHAPES["values all equal"]))
    assert flat[0] < 4.2 < flat[-1]


def test_a_time_range_given_widens_the_axis_to_it():
    svg = chart([(T0 + timedelta(weeks=1), 5)], x_range=(T0, T0 + timedelta(weeks=10)), y_min=0)
    (marker,) = svg.iter(SVG + "circle")
    grid = next(svg.iter(SVG + "line"))  # the first grid line spans the plot
    left, right = float(grid.get("x1")), float(grid.get("x2"))
    assert float(marker.get("cx")) == pytest.approx(left + (right - left) / 10, abs=0.2)


@settings(max_examples=60, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)),
    gaps=st.lists(st.integers(min_value=0, max_value=40_000_000), min_size=0, max_size=40),
    values=st.lists(st.floats(min_value=-1e6, max_value=1e7, allow_nan=False), min_size=1, max_size=41),
    threshold=st.none() | st.floats(min_value=0, max_value=1e6),
)
def test_no_label_overlaps_another_whatever_the_data(start, gaps, values, threshold):
    times = [start]
    for gap in gaps:
        times.append(times[-1] + timedelta(seconds=gap))
    points = list(zip(times, values, strict=False))
    svg = parse(
        charts.time_chart(
            "Anything",
            [("readings", points, "solid"), ("plan", points[::2], "dashed")],
            y_label="units",
            threshold=(threshold, "limit") if threshold is not None else None,
        )
    )
    assert_no_label_overlaps(svg)
    assert x_labels(svg)


def test_a_bar_name_too_long_for_its_column_is_cut_and_kept_whole_in_its_tooltip():
    svg = parse(charts.bar_chart("Cameras", [("Kensington and Chelsea and a long suffix", 5), ("Camden", 500)]))
    assert_no_label_overlaps(svg)
    title = next(t for t in svg.iter(SVG + "text") if t.find(SVG + "title") is not None)
    assert title.find(SVG + "title").text == "Kensington and Chelsea and a long suffix"
