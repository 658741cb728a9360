"""Charts as inline SVG, drawn on the server: no script, no CDN, readable when printed.

Each chart carries a ``<title>`` and ``<desc>`` (read by screen readers) and the numbers
behind it are also in a table on the page. Every label is placed against those already drawn
(its box estimated from its length) and left out rather than drawn over another: the axis ticks
are chosen from the data's span (seconds to decades, each span with its own date format), so a
single reading, two readings a minute apart and a year of readings all read cleanly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from html import escape
from itertools import pairwise
from typing import NamedTuple

from markupsafe import Markup

from central.web import local_time
from fleet.clock import LONDON

WIDTH, HEIGHT = 640, 240
RIGHT, TOP, BOTTOM = 16, 30, 30
FONT = 11
"""The labels' size in px (fleet.css draws ``svg .axis`` at the same size)."""
CHAR_EM = 0.62
"""A character's width in ems, on the generous side for system-ui: boxes estimated from it
are never narrower than the text drawn."""
GAP = 6
"""The least room between two labels, in px."""


class Box(NamedTuple):
    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: Box) -> bool:
        return not (
            self.x1 + GAP <= other.x0
            or other.x1 + GAP <= self.x0
            or self.y1 + GAP / 2 <= other.y0
            or other.y1 + GAP / 2 <= self.y0
        )


def text_width(text: str) -> float:
    return len(text) * FONT * CHAR_EM


def text_box(x: float, y: float, text: str, anchor: str) -> Box:
    """The box a label drawn at (x, y) (its baseline) with this text-anchor covers."""
    w = text_width(text)
    x0 = {"start": x, "middle": x - w / 2, "end": x - w}[anchor]
    return Box(x0, y - FONT, x0 + w, y + FONT * 0.3)


class Labels:
    """The chart's labels: each placed at the first of its candidate spots that overlaps none
    placed before it and stays inside the chart, or left out."""

    def __init__(self, width: float, height: float) -> None:
        self.width, self.height = width, height
        self.boxes: list[Box] = []
        self.parts: list[str] = []

    def fits(self, box: Box) -> bool:
        inside = box.x0 >= 0 and box.x1 <= self.width and box.y0 >= 0 and box.y1 <= self.height
        return inside and not any(box.overlaps(b) for b in self.boxes)

    def place(self, text: str, spots: Sequence[tuple[float, float, str]], cls: str = "axis") -> bool:
        for x, y, anchor in spots:
            box = text_box(x, y, text, anchor)
            if self.fits(box):
                self.boxes.append(box)
                self.parts.append(
                    f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{FONT}">'
                    f"{escape(text)}</text>"
                )
                return True
        return False

    def reserve(self, box: Box) -> None:
        """Room taken by something other than a label (a legend's swatch)."""
        self.boxes.append(box)


def _linear(lo: float, hi: float, out_lo: float, out_hi: float) -> Callable[[float], float]:
    """lo..hi onto out_lo..out_hi; a span of nothing onto the middle."""
    if hi == lo:
        return lambda _: (out_lo + out_hi) / 2
    slope = (out_hi - out_lo) / (hi - lo)
    return lambda value: out_lo + (value - lo) * slope


# --- the value axis -------------------------------------------------------------------------


def _nice_step(span: float, ticks: int, whole: bool) -> float:
    raw = span / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10) if whole else (1, 2, 2.5, 5, 10):
        if m * magnitude >= raw * 0.999:
            step = m * magnitude
            break
    return max(1.0, step) if whole else step


def _decimals(step: float) -> int:
    d = 0
    while d < 6 and abs(step * 10**d - round(step * 10**d)) > 1e-6:
        d += 1
    return d


class ValueAxis(NamedTuple):
    bottom: float
    top: float
    ticks: list[float]
    decimals: int

    def label(self, value: float) -> str:
        return f"{value:,.{self.decimals}f}"


def value_axis(values: Sequence[float], y_min: float | None, y_max: float | None) -> ValueAxis:
    """From ``y_min`` (counts: 0) or the data's floor to ``y_max`` or the data's top with some
    headroom, ticked at round numbers; whole numbers only when the data are whole."""
    whole = all(float(v).is_integer() for v in [*values, *(b for b in (y_min, y_max) if b is not None)])
    lo = min(values) if y_min is None else min(y_min, *values)
    hi = max(values) if y_max is None else y_max
    headroom = 0.05
    if hi <= lo:  # one value (all equal, all zero): an axis around it, its top the padding's
        headroom = 0.0
        pad = abs(lo) * 0.5 or 1.0
        pad = max(1.0, round(pad)) if whole else pad
        lo, hi = (lo - pad if y_min is None else lo), (hi + pad if y_max is None else max(hi, lo + pad))
    step = _nice_step(hi - lo, 4, whole)
    bottom = math.floor(lo / step + 1e-9) * step
    if y_min is not None and y_min >= 0:
        bottom = max(bottom, 0.0)
    top = hi if y_max is not None else math.ceil((hi + (hi - lo) * headroom) / step - 1e-9) * step
    first = math.ceil(bottom / step - 1e-9)
    ticks = [i * step for i in range(first, math.floor(top / step + 1e-9) + 1)]
    return ValueAxis(bottom, top, ticks, 0 if whole else _decimals(step))


# --- the time axis --------------------------------------------------------------------------

_SECOND, _HOUR, _DAY = timedelta(seconds=1), timedelta(hours=1), timedelta(days=1)
_MONTH, _YEAR = "month", "year"
_STEPS: list[tuple[timedelta | tuple[str, int], str]] = [
    *((timedelta(seconds=s), "%H:%M:%S") for s in (1, 5, 10, 15, 30)),
    *((timedelta(minutes=m), "%H:%M") for m in (1, 2, 5, 10, 15, 30)),
    *((timedelta(hours=h), "%H:%M") for h in (1, 2, 3, 6, 12)),
    *((timedelta(days=d), "%d %b") for d in (1, 2, 7, 14)),
    *(((_MONTH, n), "%b %Y") for n in (1, 2, 3, 6)),
    *(((_YEAR, n), "%Y") for n in (1, 2, 5, 10, 20, 50, 100)),
]
"""Tick spacings from a few seconds to a century, each with the date format that reads at that span."""
_CONTEXT = {"%H:%M:%S": "%d %b %Y %H:%M:%S", "%H:%M": "%d %b %Y %H:%M", "%d %b": "%d %b %Y"}
"""The first tick's fuller label: the day or year the short labels after it belong to."""


def _approx(step: timedelta | tuple[str, int]) -> float:
    if isinstance(step, timedelta):
        return step.total_seconds()
    return step[1] * (30.4 if step[0] == _MONTH else 365.25) * 86400


def _ticks(t0: datetime, t1: datetime, step: timedelta | tuple[str, int]) -> Iterator[datetime]:
    """The round instants (UTC) in [t0, t1]: whole minutes, midnights, Mondays, months' and years' firsts."""
    if isinstance(step, timedelta):
        if step < _DAY:
            every = step.total_seconds()
            at = datetime.fromtimestamp(math.ceil(t0.timestamp() / every) * every, UTC)
        else:
            # Days from a Monday (1970-01-05), so weekly ticks fall on Mondays.
            monday = datetime(1970, 1, 5, tzinfo=UTC)
            at = monday + step * math.ceil((t0 - monday) / step)
        while at <= t1:
            yield at
            at += step
        return
    kind, n = step
    if kind == _MONTH:
        index = math.ceil((t0.year * 12 + t0.month - 1 + (t0 > datetime(t0.year, t0.month, 1, tzinfo=UTC))) / n) * n
        while True:
            at = datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
            if at > t1:
                return
            yield at
            index += n
    year = math.ceil((t0.year + (t0 > datetime(t0.year, 1, 1, tzinfo=UTC))) / n) * n
    while (at := datetime(year, 1, 1, tzinfo=UTC)) <= t1:
        yield at
        year += n


def _utc(t: datetime) -> datetime:
    if t.tzinfo is UTC:
        return t
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def time_ticks(
    t0: datetime, t1: datetime, x: Callable[[datetime], float], plot: tuple[float, float]
) -> list[tuple[float, str]]:
    """The densest round ticks whose labels fit side by side between ``plot``'s edges, round in
    London time as the pages show times (``central.web.local_time``): midnights are London's."""
    room = plot[1] - plot[0]
    span = (t1 - t0).total_seconds()
    for step, fmt in _STEPS:
        if span / _approx(step) > room / 30:  # far too many to fit: skip without listing them
            continue
        ticks = _local_ticks(t0, t1, step)
        labels = [(x(t), wall.strftime(_CONTEXT.get(fmt, fmt) if i == 0 else fmt)) for i, (t, wall) in enumerate(ticks)]
        boxes = [text_box(px, 0, text, "middle") for px, text in labels]
        if all(not a.overlaps(b) for a, b in pairwise(boxes)):
            return labels or [(x(t0), local_time.local(t0, _CONTEXT["%H:%M:%S"]))]
    return []


def _local_ticks(t0: datetime, t1: datetime, step: timedelta | tuple[str, int]) -> list[tuple[datetime, datetime]]:
    """(instant, London wall time) of the round London times in [t0, t1]. The round times are
    found on the wall clock (``_ticks`` on it as if it were UTC); one the clocks skip, or one
    of the hour they repeat that falls outside the span, is left out."""
    wall0, wall1 = (t.astimezone(LONDON).replace(tzinfo=None) for t in (t0, t1))
    ticks: list[tuple[datetime, datetime]] = []
    for fake in _ticks(wall0.replace(tzinfo=UTC) - _HOUR, wall1.replace(tzinfo=UTC) + _HOUR, step):
        wall = fake.replace(tzinfo=None)
        at = wall.replace(tzinfo=LONDON).astimezone(UTC)
        if t0 <= at <= t1 and at.astimezone(LONDON).replace(tzinfo=None) == wall and (not ticks or at > ticks[-1][0]):
            ticks.append((at, wall))
    return ticks


# --- the charts -----------------------------------------------------------------------------


def time_chart(
    title: str,
    series: Sequence[tuple[str, Sequence[tuple[datetime, float]], str]],
    *,
    y_label: str,
    y_min: float | None = None,
    y_max: float | None = None,
    threshold: tuple[float, str] | None = None,
    x_range: tuple[datetime, datetime] | None = None,
    description: str = "",
    key: str = "chart",
) -> Markup:
    """Lines over time. ``series``: (name, points, style) with style 'solid' or 'dashed'; ``key``
    names its title and description, unique on a page of several charts; ``x_range``: the span
    the time axis shows (a plan's window) when it is not the data's own."""
    series = [(name, sorted((_utc(t), v) for t, v in pts), style) for name, pts, style in series]
    points = [p for _, pts, _ in series for p in pts]
    if not points:
        return Markup(f'<p class="empty">{escape(title)}: no readings yet.</p>')
    t0, t1 = min(t for t, _ in points), max(t for t, _ in points)
    if x_range is not None:
        t0, t1 = min(t0, _utc(x_range[0])), max(t1, _utc(x_range[1]))
    values = [v for _, v in points] + ([threshold[0]] if threshold else [])
    axis = value_axis(values, y_min, y_max)
    left = max(36.0, max(text_width(axis.label(v)) for v in axis.ticks) + 12)
    plot = (left, WIDTH - RIGHT)
    one_instant = t0 == t1
    across = _linear(t0.timestamp(), t1.timestamp(), *plot)
    y = _linear(axis.bottom, axis.top, HEIGHT - BOTTOM, TOP)

    def x(t: datetime) -> float:
        return across(t.timestamp())

    labels = Labels(WIDTH, HEIGHT)
    shapes = []
    # The unit, then a legend when there is more than one line, along the top.
    labels.place(y_label, [(4, FONT + 4, "start")])
    named = [(name, style) for name, pts, style in series if pts]
    if len(named) > 1:
        at = max(left, labels.boxes[-1].x1 + 2 * GAP if labels.boxes else left)
        for name, style in named:
            swatch = Box(at, FONT - 2, at + 18, FONT + 4)
            if labels.fits(swatch) and labels.place(name, [(at + 22, FONT + 4, "start")]):
                labels.reserve(swatch)
                shapes.append(
                    f'<line class="series {style}" x1="{at:.1f}" x2="{at + 18:.1f}" y1="{FONT:.1f}" y2="{FONT:.1f}"/>'
                )
                at = labels.boxes[-2].x1 + 2 * GAP
    for value in axis.ticks:
        shapes.append(f'<line class="grid" x1="{left:.1f}" x2="{plot[1]}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>')
        labels.place(axis.label(value), [(left - 6, y(value) + FONT * 0.35, "end")])
    base = HEIGHT - 7
    if one_instant:
        labels.place(local_time.local(t0, "%d %b %Y %H:%M"), [(x(t0), base, "middle")])
    else:
        for px, text in time_ticks(t0, t1, x, plot):
            shapes.append(
                f'<line class="tick" x1="{px:.1f}" x2="{px:.1f}" y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM + 4}"/>'
            )
            half = text_width(text) / 2
            labels.place(text, [(min(max(px, half + 1), WIDTH - half - 1), base, "middle")])
    if threshold:
        ty = y(threshold[0])
        shapes.append(f'<line class="threshold" x1="{left:.1f}" x2="{plot[1]}" y1="{ty:.1f}" y2="{ty:.1f}"/>')
        labels.place(
            threshold[1],
            [(plot[1], ty - 4, "end"), (plot[1], ty + FONT + 2, "end"), (left + 4, ty - 4, "start")],
            cls="axis threshold-label",
        )
    for name, pts, style in series:
        if not pts:
            continue
        if pts[0][0] != pts[-1][0]:  # sorted: more than one instant
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
            shapes.append(f'<polyline class="series {style}" points="{path}"><title>{escape(name)}</title></polyline>')
        if len(pts) == 1 or style == "solid":
            t, v = pts[-1]
            shapes.append(
                f'<circle class="series {style}" cx="{x(t):.1f}" cy="{y(v):.1f}" r="3.5">'
                f"<title>{escape(name)}: {axis.label(v)} at {t:%Y-%m-%d %H:%M}</title></circle>"
            )
            if len(points) == 1:  # a single reading says what it is beside it
                px, py = x(t), y(v)
                labels.place(
                    f"{v:,.{max(axis.decimals, 0 if float(v).is_integer() else 1)}f} {y_label}",
                    [(px + 8, py - 6, "start"), (px - 8, py - 6, "end"), (px + 8, py + FONT + 4, "start")],
                    cls="axis value",
                )
    head = (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{key}-title {key}-desc" '
        f'xmlns="http://www.w3.org/2000/svg"><title id="{key}-title">{escape(title)}</title>'
        f'<desc id="{key}-desc">{escape(description)}</desc>'
    )
    return Markup(head + "".join(shapes) + "".join(labels.parts) + "</svg>")


def _fit(text: str, room: float) -> str:
    """The text, cut with an ellipsis to fit ``room`` px."""
    if text_width(text) <= room:
        return text
    return text[: max(1, int(room / (FONT * CHAR_EM)) - 1)] + "…"


def bar_chart(
    title: str, bars: Sequence[tuple[str, float]], *, description: str = "", labels: Sequence[str] | None = None
) -> Markup:
    """Horizontal bars, one per label (e.g. cameras per borough); ``labels``: the text beside each
    bar instead of its value (e.g. "fewer than 5" for a count not shown). A name too long for
    its column is cut, whole in its tooltip."""
    if not bars:
        return Markup(f'<p class="empty">{escape(title)}: nothing yet.</p>')
    row, label_w = 18, 150
    texts = list(labels) if labels is not None else [f"{value:,.0f}" for _, value in bars]
    room = WIDTH - label_w - max(text_width(t) for t in texts) - 12
    height = TOP + row * len(bars) + 8
    top = max(v for _, v in bars) or 1
    parts = [
        f'<svg class="chart bars" viewBox="0 0 {WIDTH} {height}" role="img" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title><desc>{escape(description)}</desc>"
    ]
    for i, (label, value) in enumerate(bars):
        y0 = TOP + i * row
        w = room * value / top
        name = _fit(label, label_w - 10)
        parts.append(
            f'<text class="axis" x="{label_w - 6}" y="{y0 + 12}" text-anchor="end" font-size="{FONT}">'
            + (f"<title>{escape(label)}</title>" if name != label else "")
            + f"{escape(name)}</text>"
            f'<rect class="bar" x="{label_w}" y="{y0 + 2}" width="{w:.1f}" height="{row - 5}"/>'
            f'<text class="axis" x="{label_w + w + 4:.1f}" y="{y0 + 12}" font-size="{FONT}">{escape(texts[i])}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
