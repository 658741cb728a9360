"""The dashboard in a real browser: log in, see the fleet, filter, chart, assign, hold."""

from __future__ import annotations

import re

from tests.browser.conftest import PASSWORD


def base(fleet) -> str:
    # localhost (not 127.0.0.1): browsers treat it as a secure context, so the Secure cookie is kept
    return fleet[0].url.replace("127.0.0.1", "localhost")


def logged_in(chromium, fleet, name: str):
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.goto(base(fleet) + "/devices")
    assert "/login?next=/devices" in page.url
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/devices$"))
    return page


def test_a_wrong_password_is_refused_on_the_page(chromium, fleet):
    page = chromium.new_page()
    page.goto(base(fleet) + "/login")
    page.get_by_label("User name").fill("f.manager")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text() == "wrong user name or password"
    page.close()


def test_overview_filter_and_battery_chart(chromium, fleet):
    page = logged_in(chromium, fleet, "f.manager")
    page.goto(base(fleet) + "/")
    assert page.locator('[data-state="allocated"] .n').inner_text() == "2"  # two of three: one docked, in service
    assert page.locator('[data-state="in_service"] .n').inner_text() == "1"

    page.goto(base(fleet) + "/devices")
    page.get_by_label("State").select_option("in_service")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"lifecycle=in_service"))  # the filtered page loaded, not the one before
    rows = page.locator("#devices tbody tr")
    assert rows.count() == 1 and "BWV-000001" in rows.first.inner_text()
    page.get_by_label("State").select_option("")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"lifecycle=(&|$)"))
    assert page.locator("#devices tbody tr").count() == 3

    page.get_by_role("link", name="BWV-000001").click()
    chart = page.locator("#battery-chart svg")
    assert "Battery health of BWV-000001" in chart.locator("title").first.text_content()
    points = chart.locator("polyline.solid").get_attribute("points").split()
    assert len(points) == 6  # one per docking
    heights = [float(p.split(",")[1]) for p in points]
    assert heights == sorted(heights)  # health falls docking after docking (y grows downwards)
    page.close()


def test_a_supervisor_assigns_a_camera_and_holds_a_clip(chromium, fleet):
    cluster, clip = fleet
    page = logged_in(chromium, fleet, "s.uper")
    page.goto(base(fleet) + "/officers")
    page.get_by_label("Camera serial").fill("BWV-000002")
    page.get_by_label("Officer id", exact=True).fill("PC2")
    page.get_by_role("button", name="Issue").click()
    assert page.get_by_role("status").inner_text() == "camera issued"
    assert "BWV-000002" in page.locator("#officers tbody tr", has_text="PC2").inner_text()

    page.goto(base(fleet) + "/clips")
    page.locator("#clips").get_by_role("link", name=re.compile(clip.clip_id[:13])).click()
    hold = page.locator('form[action$="/hold"]')
    hold.get_by_label("Reason").fill("complaint CMP-2231")
    hold.get_by_role("button", name="Place a hold").click()
    assert page.get_by_role("status").inner_text() == "held"
    assert "complaint CMP-2231" in page.locator("#holds").inner_text()
    with cluster.admin() as admin:
        assert admin.get(f"/api/v1/clips/{clip.clip_id}/retention").json()["held_by"]
    page.close()


def test_the_audit_page_shows_the_hold_and_verifies_the_chain(chromium, fleet):
    page = logged_in(chromium, fleet, "f.manager")
    page.goto(base(fleet) + "/audit?action=login")
    assert page.locator("#audit tbody tr").count() >= 1
    page.get_by_role("button", name="Verify the chain now").click()
    assert page.get_by_role("status").inner_text() == "chain intact"
    assert "chain intact" in page.locator("#chain").inner_text()
    page.close()


def test_the_rollout_page_shows_the_verdict_and_burn_up(chromium, fleet):
    page = logged_in(chromium, fleet, "f.manager")
    page.goto(base(fleet) + "/rollout")
    assert "not feasible" in page.locator("#verdict").inner_text()  # the reference scenario: deliveries bind
    assert page.locator("#burn-up svg polyline.dashed").count() == 1
    assert page.locator("#boroughs tbody tr").count() == 32
    page.close()


def test_pages_work_from_the_keyboard_on_a_tablet(chromium, fleet):
    """(Every page's width at a tablet's and a laptop's: test_layout_in_chromium.py.)"""
    page = logged_in(chromium, fleet, "f.manager")
    page.set_viewport_size({"width": 768, "height": 1024})
    page.goto(base(fleet) + "/devices")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.url.endswith("#main")
    page.get_by_label("Serial or officer").focus()
    page.keyboard.type("BWV-000003")
    page.keyboard.press("Enter")  # submits the filter form
    page.wait_for_url(re.compile(r"q=BWV-000003"))
    assert page.locator("#devices tbody tr").count() == 1
    page.close()


def test_a_csp_violation_would_be_seen(chromium, fleet):
    """The watch on the console that every test relies on does see a violation."""
    page = chromium.new_page()
    page.goto(base(fleet) + "/login")
    assert page.evaluate("getComputedStyle(document.querySelector('form.login')).display") == "grid"  # its CSS
    with page.expect_console_message(predicate=lambda m: "Content Security Policy" in m.text):
        page.evaluate("document.body.setAttribute('style', 'color: red')")  # inline style: refused by the policy
    assert chromium.violations and "style-src" in chromium.violations[0]
    chromium.violations.clear()
    page.close()
