"""Requests to keep footage in a real browser: the public's form on a phone, with the keyboard
alone; the information manager's queue narrowing a request to the clip that matches."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

from fleet.clock import utc_now
from tests.browser.test_dashboard_in_chromium import base, logged_in

PHONE = {"width": 375, "height": 667}
LONDON = ZoneInfo("Europe/London")


def phone(chromium):
    return chromium.new_page(viewport=PHONE, locale="en-GB", has_touch=True)


def fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def tab_to(page, target: str, most: int = 25) -> None:
    """Press Tab until the element with id (or text) ``target`` has the focus (a date or time
    field takes a Tab per part: day, month, year; hours, minutes)."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if target in page.evaluate("[document.activeElement.id, document.activeElement.textContent]"):
            return
    raise AssertionError(f"Tab never reached {target}")


def test_the_public_form_on_a_phone_with_the_keyboard_alone(chromium, fleet):
    page = phone(chromium)
    page.goto(base(fleet) + "/public/keep-footage")
    assert fits(page)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "borough"
    tab_to(page, "Send the request")  # nothing chosen, nothing typed: send it as it is, to see the messages
    page.keyboard.press("Enter")
    problems = page.locator("#problems")
    assert "choose the borough from the list" in problems.inner_text()
    assert page.locator("#place").get_attribute("aria-invalid") == "true"
    assert fits(page)

    day = (utc_now() - timedelta(days=1)).astimezone(LONDON).date()
    while day.day != day.month:  # a date that reads the same day-first or month-first, whatever the widget's order
        day -= timedelta(days=1)
    page.locator("#problems a").first.focus()  # the first problem's link, followed from the keyboard
    page.keyboard.press("Enter")
    assert page.url.endswith("#borough")
    page.keyboard.press("Tab")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.id") == "borough"
    page.keyboard.type("Camden")  # a select picks the option typed
    steps = [
        ("place", "outside the library\non the High Street"),
        ("date", f"{day:%d%m%Y}"),
        ("time_from", "0900A"),  # "A" for a 12-hour widget's AM; a 24-hour one ignores it
        ("time_to", "0930A"),
        ("shoulder_numbers", "1234AB"),
        ("contact", "jo.public@example.org"),
    ]
    for field, typed in steps:
        tab_to(page, field)
        page.keyboard.type(typed)
    assert page.locator("#date").input_value() == f"{day:%Y-%m-%d}"
    assert page.locator("#time_from").input_value() == "09:00"
    assert page.locator("#time_to").input_value() == "09:30"
    tab_to(page, "Send the request")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "/public/keep-footage/received?reference=KF-" in page.url, page.locator("main").inner_text()
    reference = page.locator("#reference").inner_text()
    assert re.fullmatch(r"KF-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", reference)
    text = page.locator("main").inner_text()
    assert "We are reviewing your request" in text and "review it by" in text
    for private in ("jo.public", "1234AB", "High Street", "library"):
        assert private not in text
    assert fits(page)

    page.locator("#lookup").focus()
    page.keyboard.type(reference.lower().replace("-", " "))
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/public/keep-footage/status\?reference="))
    assert "We are reviewing your request" in page.locator("#status").inner_text()
    page.close()


def test_the_officer_narrows_a_request_to_the_clip_that_matches(chromium, fleet):
    _cluster, clip = fleet
    recorded = clip.recorded_at.astimezone(LONDON)
    public = phone(chromium)
    public.goto(base(fleet) + "/public/keep-footage")
    public.get_by_label("Borough").select_option("Camden")
    public.get_by_label("Where it happened").fill("<b>Camden Road</b> by the bus stop")
    # Ten minutes either side, within the day the clip was recorded: the form takes one day, so a
    # window across midnight (a run soon after it, the clip two hours old) must stop at its edge.
    day_starts = recorded.replace(hour=0, minute=0, second=0, microsecond=0)
    since = max(recorded - timedelta(minutes=10), day_starts)
    until = min(recorded + timedelta(minutes=10), day_starts.replace(hour=23, minute=59))
    public.get_by_label("Date").fill(f"{recorded:%Y-%m-%d}")
    public.get_by_label("From (time)").fill(f"{since:%H:%M}")
    public.get_by_label("Until (time)").fill(f"{until:%H:%M}")
    public.get_by_label("Your contact address").fill("12 Any Street, London")
    with public.expect_navigation():
        public.get_by_role("button", name="Send the request").click()
    assert "/received?" in public.url, public.locator("main").inner_text()
    reference = public.locator("#reference").inner_text()

    page = logged_in(chromium, fleet, "f.manager")
    page.goto(base(fleet) + "/keep-requests")
    row = page.locator("#requests tbody tr", has_text=reference)
    assert "open" in row.inner_text() and row.locator(".tag").count() == 1  # its deadline
    row.get_by_role("link", name=reference).click()
    assert page.locator("#place").inner_text() == "<b>Camden Road</b> by the bus stop"  # shown as text
    page.get_by_label(f"keep clip {clip.clip_id}").check()
    page.get_by_label("Why these match").fill("the stop at 21:05 on BWV-000001")
    page.get_by_role("button", name="Keep only the chosen clips").click()
    assert page.get_by_role("status").inner_text().startswith("request narrowed")
    assert page.locator("#state").inner_text() == "narrowed"
    assert "kept for this request" in page.locator("#clips").inner_text()
    page.close()

    public.goto(base(fleet) + f"/public/keep-footage/status?reference={reference}")
    status = public.locator("#status").inner_text()
    assert "keeping 1 recording that matches it" in status
    public.close()
