"""The roll-out page's burn-up, read back from its SVG: the plan's window, the plan a line
across it from nothing."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta

from central.core.providers import services
from fleet.clock import utc_now
from tests.central.apps import central_client
from tests.central.conftest import make_settings
from tests.central.web.test_dashboard import PASSWORD, log_in
from tests.test_cli import ROOT

SVG = "{http://www.w3.org/2000/svg}"


def burn_up(tmp_path, start) -> tuple[ET.Element, int]:
    """The whole force's burn-up for the reference scenario moved to start on ``start``."""
    scenario = (ROOT / "config" / "rollout.toml").read_text()
    scenario = re.sub(r"(?m)^start = \S+", f"start = {start.isoformat()}", scenario)
    scenario = re.sub(r"(?m)^deadline = \S+", f"deadline = {(start + timedelta(weeks=40)).isoformat()}", scenario)
    (tmp_path / "rollout.toml").write_text(scenario)
    settings = make_settings(
        tmp_path / "c",
        rollout={"boroughs": str(ROOT / "config" / "boroughs.toml"), "scenario": str(tmp_path / "rollout.toml")},
    )
    with central_client(settings, base_url="https://central.test", raise_server_exceptions=False) as c:
        services(c.app).users.add("v.iewer", "viewer", "test", password=PASSWORD)
        log_in(c)
        page = c.get("/rollout").text
        weeks = c.get("/api/v1/rollout/plan", headers={"Authorization": "Bearer admin-test-token"}).json()["weeks"]
    svg = ET.fromstring(re.search(r'<figure id="burn-up">(.*?)</figure>', page, re.S).group(1))
    return svg, len(weeks)


def plot_edges(svg: ET.Element) -> tuple[float, float]:
    grid = next(line for line in svg.iter(SVG + "line") if line.get("class") == "grid")
    return float(grid.get("x1", "")), float(grid.get("x2", ""))


def line_points(svg: ET.Element, style: str) -> list[tuple[float, float]]:
    line = next(p for p in svg.iter(SVG + "polyline") if style in p.get("class", ""))
    return [(float(p.split(",")[0]), float(p.split(",")[1])) for p in line.get("points", "").split()]


def test_a_plan_under_way_is_drawn_over_its_own_window_from_nothing(tmp_path):
    monday = utc_now().date() - timedelta(days=utc_now().weekday())
    svg, weeks = burn_up(tmp_path, monday - timedelta(weeks=2))
    left, right = plot_edges(svg)
    plan = line_points(svg, "dashed")
    bottom = max(y for _, y in plan)
    assert plan[0] == (left, bottom)  # nothing planned before the first week
    assert abs(plan[-1][0] - right) < 0.2  # the plan's last week ends at the right edge
    assert len(plan) == weeks + 1 and len({x for x, _ in plan}) == len(plan)  # a point a week, across
    issued = next(c for c in svg.iter(SVG + "circle"))
    today = left + (right - left) * (utc_now().date() - (monday - timedelta(weeks=2))).days / (7 * weeks)
    assert abs(float(issued.get("cx", "")) - today) < (right - left) / weeks  # issued so far: up to now


def test_a_plan_long_past_runs_to_today(tmp_path):
    start = utc_now().date() - timedelta(weeks=80)
    svg, weeks = burn_up(tmp_path, start - timedelta(days=start.weekday()))
    left, right = plot_edges(svg)
    assert weeks < 80
    issued = line_points(svg, "solid")
    week = (right - left) / 80
    assert issued[0][0] == left and right - week < issued[-1][0] < right  # from the plan's start to now
