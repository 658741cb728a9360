"""Charts as inline SVG, drawn on the server: no script, no CDN, readable when printed.

Each chart carries a ``<title>`` and ``<desc>`` (read by screen readers) and the numbers
behind it are also in a table on the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 32


def _scale(value: float, lo: float, hi: float, out_lo: float, out_hi: float) -> float:
    if hi == lo:
        return (out_lo + out_hi) / 2
    return out_lo + (value - lo) * (out_hi - out_lo) / (hi - lo)


def time_chart(
    title: str,
    series: Sequence[tuple[str, Sequence[tuple[datetime, float]], str]],
    *,
    y_label: str,
    y_min: float | None = None,
    y_max: float | None = None,
    threshold: tuple[float, str] | None = None,
    description: str = "",
    key: str = "chart",
) -> Markup:
    """Lines over time. ``series``: (name, points, style) with style 'solid' or 'dashed'; ``key``
    names its title and description, unique on a page of several charts."""
    points = [p for _, pts, _ in series for p in pts]
    if not points:
        return Markup(f'<p class="empty">{escape(title)}: no readings yet.</p>')
    t0 = min(t for t, _ in points).timestamp()
    t1 = max(t for t, _ in points).timestamp()
    values = [v for _, v in points] + ([threshold[0]] if threshold else [])
    lo = min(values) if y_min is None else y_min
    hi = max(values) if y_max is None else y_max
    x = lambda t: _scale(t.timestamp(), t0, t1, LEFT, WIDTH - RIGHT)  # noqa: E731
    y = lambda v: _scale(v, lo, hi, HEIGHT - BOTTOM, TOP)  # noqa: E731
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{key}-title {key}-desc" '
        f'xmlns="http://www.w3.org/2000/svg"><title id="{key}-title">{escape(title)}</title>'
        f'<desc id="{key}-desc">{escape(description)}</desc>'
    ]
    for tick in range(5):
        value = lo + (hi - lo) * tick / 4
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.0f}</text>'
        )
    for t, anchor in ((min(t for t, _ in points), "start"), (max(t for t, _ in points), "end")):
        parts.append(f'<text class="axis" x="{x(t):.1f}" y="{HEIGHT - 10}" text-anchor="{anchor}">{t:%Y-%m-%d}</text>')
    parts.append(
        f'<text class="axis" x="12" y="{TOP + 4}" transform="rotate(90 12 {TOP + 4})">{escape(y_label)}</text>'
    )
    if threshold:
        parts.append(
            f'<line class="threshold" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(threshold[0]):.1f}" '
            f'y2="{y(threshold[0]):.1f}"/><text class="axis threshold-label" x="{WIDTH - RIGHT}" '
            f'y="{y(threshold[0]) - 4:.1f}" text-anchor="end">{escape(threshold[1])}</text>'
        )
    for name, pts, style in series:
        if not pts:
            continue
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in sorted(pts))
        parts.append(f'<polyline class="series {style}" points="{path}"><title>{escape(name)}</title></polyline>')
        if len(pts) == 1 or style == "solid":
            t, v = sorted(pts)[-1]
            parts.append(f'<circle class="series {style}" cx="{x(t):.1f}" cy="{y(v):.1f}" r="3"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(
    title: str, bars: Sequence[tuple[str, float]], *, description: str = "", labels: Sequence[str] | None = None
) -> Markup:
    """Horizontal bars, one per label (e.g. cameras per borough); ``labels``: the text beside each
    bar instead of its value (e.g. "fewer than 5" for a count not shown)."""
    if not bars:
        return Markup(f'<p class="empty">{escape(title)}: nothing yet.</p>')
    row, label_w = 18, 150
    height = TOP + row * len(bars) + 8
    top = max(v for _, v in bars) or 1
    parts = [
        f'<svg class="chart bars" viewBox="0 0 {WIDTH} {height}" role="img" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title><desc>{escape(description)}</desc>"
    ]
    for i, (label, value) in enumerate(bars):
        y0 = TOP + i * row
        w = (WIDTH - label_w - 60) * value / top
        parts.append(
            f'<text class="axis" x="{label_w - 6}" y="{y0 + 12}" text-anchor="end">{escape(label)}</text>'
            f'<rect class="bar" x="{label_w}" y="{y0 + 2}" width="{w:.1f}" height="{row - 5}"/>'
            f'<text class="axis" x="{label_w + w + 4:.1f}" y="{y0 + 12}">'
            f"{escape(labels[i]) if labels is not None else f'{value:,.0f}'}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
