"""Every dashboard page fits a 1280 px laptop and a 768 px tablet: wide tables scroll in their
own box, long values (SHA-256 hashes) are shortened with the whole value one click away."""

from __future__ import annotations

import re

import pytest

from tests.browser.test_dashboard_in_chromium import base, logged_in

VIEWPORTS = [(1280, 800), (768, 1024)]
HEX64 = re.compile(r"[0-9a-f]{64}")


def pages_to_visit(page, fleet) -> list[str]:
    """Each page the navigation offers an administrator, and the pages one camera and one clip open."""
    _, clip = fleet
    page.goto(base(fleet) + "/")
    listed = page.locator("header.top nav a").evaluate_all("links => links.map(a => a.pathname)")
    return [
        *listed,
        "/devices/BWV-000001",
        f"/clips/{clip.clip_id}",
        f"/api/v1/clips/{clip.clip_id}/custody.html",
        "/stations?station=camden&days=1",
    ]


@pytest.mark.slow
def test_every_page_fits_a_laptop_and_a_tablet_and_a_hash_shows_whole_on_a_click(chromium, fleet):
    page = logged_in(chromium, fleet, "f.manager")
    paths = pages_to_visit(page, fleet)
    assert len(paths) >= 15 and "/audit" in paths
    too_wide = []
    for width, height in VIEWPORTS:
        page.set_viewport_size({"width": width, "height": height})
        for path in paths:
            answer = page.goto(base(fleet) + path)
            assert answer is not None and answer.ok, path
            if not page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"):
                too_wide.append(f"{path} at {width} px: {page.evaluate('document.documentElement.scrollWidth')} px")
    assert too_wide == [], "pages wider than the window"

    page.goto(base(fleet) + "/audit")  # at 768 px: the ingest's and the upload's records carry the clip's hash
    hashes = page.locator("#audit .long")
    assert hashes.count() >= 2
    first = hashes.first
    short = first.locator("summary").inner_text()
    whole = first.locator("summary code").get_attribute("title")
    assert re.fullmatch(r"[0-9a-f]{12}…", short) and HEX64.fullmatch(whole or "") and whole.startswith(short[:12])
    assert not first.locator(".whole").is_visible()
    first.locator("summary").click()
    assert first.locator(".whole").is_visible() and first.locator(".whole").inner_text() == whole  # selectable text
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the opened hash widens the page"

    _, clip = fleet
    page.goto(base(fleet) + f"/api/v1/clips/{clip.clip_id}/custody.html")
    page.emulate_media(media="print")
    printed = page.locator("body").inner_text()
    assert len(HEX64.findall(printed)) >= 2, "the printed chain of custody shows whole hashes"
    assert "…" not in printed
    page.close()
