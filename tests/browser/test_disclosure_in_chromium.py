"""A case's share link in a real browser: made from the case page, opened with no account, then expired."""

from __future__ import annotations

from datetime import timedelta

from fleet.clock import to_iso, utc_now
from tests.browser.test_dashboard_in_chromium import base, logged_in
from tests.e2e.harness import wait_until


def test_a_share_link_is_made_opened_by_its_receiver_and_then_expires(chromium, fleet):
    cluster, clip = fleet
    with cluster.admin() as admin:
        admin.post("/api/v1/holds", json={"kind": "case", "case_ref": "OP-1", "reason": "op 1"}).raise_for_status()
        admin.post("/api/v1/cases/OP-1/clips", json={"clip_ids": [clip.clip_id], "reason": "op 1"}).raise_for_status()

    page = logged_in(chromium, fleet, "s.uper")
    page.goto(base(fleet) + "/cases")
    page.get_by_role("link", name="OP-1").click()
    page.get_by_label("Receiver").fill("IOPC, A. Jones")
    page.get_by_role("button", name="Make a share link").click()
    link = page.get_by_label("the new share link").input_value()
    assert "/shared/" in link
    page.goto(base(fleet) + "/cases/OP-1")  # shown once: the case page itself never shows a link
    assert page.get_by_label("the new share link").count() == 0
    assert "IOPC, A. Jones" in page.locator("table").last.inner_text()

    # The receiver: another browser context (no session), on a phone-sized window.
    receiver = chromium.browser.new_context(viewport={"width": 390, "height": 844})
    partner = receiver.new_page()
    partner.goto(link.replace("127.0.0.1", "localhost"))
    assert "Shared with IOPC, A. Jones" in partner.locator("main").inner_text()
    assert clip.clip_id in partner.locator("table").inner_text()
    assert partner.get_by_role("link", name="Download").count() == 1

    with cluster.admin() as admin:
        brief = admin.post(
            "/api/v1/cases/OP-1/shares",
            json={"recipient": "CPS, J. Smith", "expires_at": to_iso(utc_now() + timedelta(seconds=3))},
        )
        brief.raise_for_status()
    response = partner.goto(base(fleet) + brief.json()["path"])
    assert response is not None and response.status == 200

    def expired() -> bool:
        answer = partner.reload()
        return answer is not None and answer.status == 410

    wait_until(expired, 30, "the brief link to expire", interval=0.5)
    assert "expired on" in partner.locator("main").inner_text()
    receiver.close()
    page.close()
