"""The public figures page in a real browser: no login, no script, the keyboard alone, a phone."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from central.core.store import CentralStore
from central.evidence import audit
from central.web.public_figures import latest_published, month_start, previous_month
from fleet.clock import to_iso, utc_now
from tests.e2e.harness import Cluster


@pytest.fixture(scope="module")
def central(tmp_path_factory):
    """Central alone, with the clips of two stations verified over the two latest published months."""
    cluster = Cluster(tmp_path_factory.mktemp("public"), station_ids=("camden", "barnet"))
    cluster.start_central()
    latest = month_start(latest_published(utc_now()))
    store = CentralStore(cluster.central_data())
    try:
        with store.writer.write() as db:
            for start, n in ((previous_month(latest), 40), (latest, 60)):
                rows = [
                    (f"{start:%Y%m}-{s}-{i}", s, f"BWV-{s}-{i % 4}", to_iso(start + timedelta(hours=i)), i % 5 == 0)
                    for s, count in (("camden", n), ("barnet", 3))
                    for i in range(count)
                ]
                db.executemany(
                    "INSERT INTO clips (clip_id, upload_id, sha256, size, state, station_id, device_serial, "
                    "recorded_at, filename, verified_at, evidential) "
                    "VALUES (?1, ?1, '', 1, 'verified', ?2, ?3, ?4, 'c.mp4', ?4, ?5)",
                    rows,
                )
                audit.record_many(
                    db,
                    [
                        dict(actor="station", action="ingest", object_type="clip", object_id=r[0], at=start)
                        for r in rows
                    ],
                )
    finally:
        store.close()
    yield cluster, f"{latest:%Y-%m}", f"{previous_month(latest):%Y-%m}"
    cluster.stop_all()


def test_the_public_reads_the_figures_with_no_script_from_the_keyboard_on_a_phone(chromium, central):
    cluster, _latest, earlier = central
    context = chromium.browser.new_context(java_script_enabled=False, viewport={"width": 375, "height": 740})
    page = context.new_page()
    page.on("console", lambda m: chromium.violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(cluster.url + "/public/figures")  # no login asked for
    assert page.url.endswith("/public/figures")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Body-worn video: figures for")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scroll
    uploads = page.locator("section", has=page.get_by_role("heading", name="Clips uploaded"))
    assert uploads.locator("tr", has_text="Barnet").locator("td").inner_text() == "fewer than 5"
    assert uploads.locator("tr", has_text="All boroughs").locator("td").inner_text() == "63"
    assert page.locator("figure svg").count() == 6  # a chart per measure
    assert page.get_by_role("heading", name="How each figure is made").is_visible()

    # the keyboard alone: past the skip link to the month picker, choose the month before, show it
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    focused = []
    for _ in range(8):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id || document.activeElement.textContent"))
        if focused[-1] == "month":
            break
    assert focused[-1] == "month", focused
    page.keyboard.press("ArrowDown")  # the months run newest first: down is the month before
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Show"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"month={earlier}$"))
    uploads = page.locator("section", has=page.get_by_role("heading", name="Clips uploaded"))
    assert uploads.locator("tr", has_text="All boroughs").locator("td").inner_text() == "43"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    context.close()
