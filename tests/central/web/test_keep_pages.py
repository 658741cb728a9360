"""Requests to keep footage over HTTP: the public's form and lookups, the officer's queue, and
what an attacker would try (a forged form, a flood, script in the place, another borough's requests)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from central.core.providers import services
from central.evidence.keep_request_form import parse_form
from central.evidence.keep_requests import ADDRESS_FREE
from fleet.clock import to_iso, utc_now
from tests.central.apps import central_client
from tests.central.conftest import ADMIN
from tests.central.web.test_dashboard import PASSWORD, csrf_of, log_in

FORM = "/public/keep-footage"


@pytest.fixture
def site(settings):
    """Central on https (its cookies are Secure), information managers for Camden and force-wide."""
    with central_client(settings, base_url="https://central.test", raise_server_exceptions=False) as c:
        users = services(c.app).users
        users.add("im.camden", "information_manager", "test", password=PASSWORD, borough="Camden")
        users.add("im.force", "information_manager", "test", password=PASSWORD)
        users.add("s.uper", "supervisor", "test", password=PASSWORD)
        c.post(
            "/api/v1/devices/",
            headers=ADMIN,
            json=[{"serial": f"BWV-{b}", "borough": b, "assignment_mode": "personal"} for b in ("Camden", "Barnet")],
        ).raise_for_status()
        yield c


def fields(**change) -> dict[str, str]:
    day = (utc_now() - timedelta(days=2)).date().isoformat()
    return {
        "borough": "Camden",
        "place": "outside the library, 12 High Street",
        "date": day,
        "time_from": "21:00",
        "time_to": "21:30",
        "shoulder_numbers": "1234AB",
        "contact": "jo.public@example.org",
        **change,
    }


def send(client, **change):
    token = csrf_of(client.get(FORM).text)
    return client.post(FORM, data={"csrf_token": token, **fields(**change)}, follow_redirects=False)


def reference_of(response) -> str:
    return re.search(r"reference=(KF-[0-9A-Z-]+)", response.headers["location"]).group(1)


def test_a_request_is_acknowledged_with_a_reference_and_nothing_personal(site):
    sent = send(site)
    assert sent.status_code == 303
    page = site.get(sent.headers["location"])
    reference = reference_of(sent)
    assert page.status_code == 200 and reference in page.text
    assert "We are reviewing your request" in page.text and "review it by" in page.text
    for private in ("jo.public@example.org", "1234AB", "High Street", "BWV-"):
        assert private not in page.text
    assert page.headers["cache-control"] == "no-store"
    looked_up = site.get(f"{FORM}/status", params={"reference": reference.lower()})
    assert looked_up.status_code == 200 and "We are reviewing your request" in looked_up.text


def test_a_form_without_its_token_or_from_another_site_stores_nothing(site):
    refused = site.post(FORM, data=fields(), follow_redirects=False)
    assert refused.status_code == 400 and "nothing was sent" in refused.text
    site.get(FORM)  # the cookie is set, but another site cannot read it to post it
    forged = site.post(FORM, data={**fields(), "csrf_token": "made.up"}, follow_redirects=False)
    assert forged.status_code == 400
    with services(site.app).store.writer.read() as db:
        assert db.execute("SELECT count(*) FROM keep_requests").fetchone()[0] == 0


def test_wrong_fields_are_named_on_the_page_and_what_was_typed_is_kept(site):
    future = (utc_now() + timedelta(days=2)).date().isoformat()
    page = send(site, borough="", place="", date=future, shoulder_numbers="<x>")
    assert page.status_code == 400
    for message in ("choose the borough from the list", "this is needed", "in the future", "only letters and digits"):
        assert message in page.text
    assert 'aria-invalid="true"' in page.text and 'href="#place"' in page.text
    assert "jo.public@example.org" in page.text  # the person's own typing comes back to them only, not stored


def test_a_flood_from_one_address_is_refused_with_retry_after(site):
    for _ in range(ADDRESS_FREE):
        assert send(site).status_code == 303
    refused = send(site)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert "too many requests from your address" in refused.text


def test_lookups_of_made_up_references_are_answered_then_throttled(site):
    miss = site.get(f"{FORM}/status", params={"reference": "KF-AAAA-BBBB-CCCC"})
    assert miss.status_code == 404 and "no request with that reference" in miss.text
    assert site.get(f"{FORM}/status", params={"reference": "x" * 41}).status_code == 400
    for _ in range(25):
        last = site.get(f"{FORM}/status", params={"reference": "KF-AAAA-BBBB-CCCD"})
    assert last.status_code == 429


def test_the_officer_narrows_and_closes_and_the_requester_is_told(site):
    reference = reference_of(send(site, place="<script>alert('x')</script> by the <b>bus stop</b>"))
    log_in(site, "im.force")
    queue = site.get("/keep-requests")
    assert queue.status_code == 200 and reference in queue.text and "Kept only by public requests" in queue.text
    page = site.get(f"/keep-requests/{reference}")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text and "<script>" not in page.text
    assert "jo.public@example.org" in page.text  # the officer does see the contact
    empty = site.post(f"/keep-requests/{reference}/narrow", data={"csrf_token": csrf_of(page.text), "note": "x"})
    assert empty.status_code == 400 and "choose the clips" in empty.text
    forged = site.post(f"/keep-requests/{reference}/close", data={"outcome": "withdrawn", "note": "x"})
    assert forged.status_code == 403
    closed = site.post(
        f"/keep-requests/{reference}/close",
        data={"csrf_token": csrf_of(page.text), "outcome": "no_matching_footage", "note": "no camera there"},
        follow_redirects=False,
    )
    assert closed.status_code == 303
    told = site.get(f"{FORM}/status", params={"reference": reference}).text
    assert "found no recording that matches" in told and "no camera there" not in told
    with services(site.app).store.writer.read() as db:
        actions = [r[0] for r in db.execute("SELECT action FROM audit WHERE object_id = ? ORDER BY id", [reference])]
    assert actions == ["keep-request", "keep-request-close"]


def test_a_borough_officer_sees_and_acts_on_their_borough_only(site):
    camden = reference_of(send(site))
    barnet = reference_of(send(site, borough="Barnet"))
    log_in(site, "im.camden")
    queue = site.get("/keep-requests").text
    assert camden in queue and barnet not in queue
    assert site.get(f"/keep-requests/{barnet}").status_code == 403
    token = csrf_of(site.get(f"/keep-requests/{camden}").text)
    for action, data in (("close", {"outcome": "withdrawn", "note": "x"}), ("narrow", {"clip": "c", "note": "x"})):
        assert site.post(f"/keep-requests/{barnet}/{action}", data={"csrf_token": token, **data}).status_code == 403
    assert site.get("/keep-requests/KF-0000-0000-0000").status_code == 404


def test_a_supervisor_has_no_queue(site):
    log_in(site, "s.uper")
    assert site.get("/keep-requests").status_code == 403


def overdue(site, reference: str) -> None:
    """Make a request's review date pass (as days going by would)."""
    with services(site.app).store.writer.write() as db:
        db.execute(
            "UPDATE keep_requests SET review_by = ? WHERE reference = ?",
            [to_iso(utc_now() - timedelta(days=1)), reference],
        )


def alert_count(page: str, key: str) -> int | None:
    found = re.search(rf'data-alert="{key}">\s*<a [^>]+><span class="n">(\d+)</span>', page)
    return int(found.group(1)) if found else None


def test_requests_past_their_review_date_head_the_queue_and_the_overview_counts_them(site):
    camden_late, camden = reference_of(send(site)), reference_of(send(site))
    barnet_late = reference_of(send(site, borough="Barnet"))
    overdue(site, camden_late)
    overdue(site, barnet_late)
    log_in(site, "im.camden")
    assert alert_count(site.get("/").text, "keep_overdue") == 1  # Camden's only
    queue = site.get("/keep-requests").text
    assert queue.index(camden_late) < queue.index(camden) and "1 request not reviewed by the date" in queue
    assert re.search(rf"{camden_late}.*?, overdue</span>", queue, re.S) and barnet_late not in queue
    assert 'id="overdue"' in site.get(f"/keep-requests/{camden_late}").text
    log_in(site, "im.force")
    assert alert_count(site.get("/").text, "keep_overdue") == 2
    log_in(site, "s.uper")  # cannot act on the queue: not shown the alert
    assert alert_count(site.get("/").text, "keep_overdue") is None


def test_several_requests_are_closed_at_once_but_only_of_the_officers_borough(site):
    camden = [reference_of(send(site)) for _ in range(2)]
    barnet = reference_of(send(site, borough="Barnet"))
    log_in(site, "im.camden")
    token = csrf_of(site.get("/keep-requests").text)
    close = {"outcome": "not_actionable", "note": "repeats of one request"}
    sneaked = site.post(
        "/keep-requests/bulk-close", data={"csrf_token": token, "reference": [*camden, barnet], **close}
    )
    assert sneaked.status_code == 403 and barnet in sneaked.text
    forged = site.post("/keep-requests/bulk-close", data={"reference": camden, **close})  # from another site
    assert forged.status_code == 403
    assert site.post("/keep-requests/bulk-close", data={"csrf_token": token, **close}).status_code == 400
    assert len(re.findall(r'name="reference" value="KF-', site.get("/keep-requests").text)) == 2  # nothing closed
    closed = site.post(
        "/keep-requests/bulk-close", data={"csrf_token": token, "reference": camden, **close}, follow_redirects=False
    )
    assert closed.status_code == 303 and closed.headers["location"] == "/keep-requests?done=closed_many"
    assert "requests closed" in site.get(closed.headers["location"]).text
    for reference in camden:
        told = site.get(f"{FORM}/status", params={"reference": reference}).text
        assert "We could not act on this request" in told and "repeats of one request" not in told
    with services(site.app).store.writer.read() as db:
        states = dict(db.execute("SELECT reference, state FROM keep_requests").fetchall())
        audited = db.execute("SELECT count(*) FROM audit WHERE action = 'keep-request-close'").fetchone()[0]
    assert states == {camden[0]: "closed", camden[1]: "closed", barnet: "open"} and audited == 2


def test_past_a_boroughs_cap_the_form_asks_for_a_phone_call_and_keeps_what_was_typed(site):
    keep_requests = services(site.app).keep_requests
    cap = keep_requests.settings.keep_requests.per_borough_per_day
    for n in range(cap):  # a day's requests, from as many people
        keep_requests.submit(parse_form(fields(), keep_requests.boroughs(), utc_now()), f"browser:198.51.100.{n}")
    refused = send(site, place="by the war memorial")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert "as many requests for Camden today" in refused.text and "phone 101" in refused.text
    assert "by the war memorial" in refused.text and "jo.public@example.org" in refused.text  # still in the form
    assert send(site, borough="Barnet").status_code == 303
    with services(site.app).store.writer.read() as db:
        assert db.execute("SELECT count(*) FROM keep_requests WHERE borough = 'Camden'").fetchone()[0] == cap
        (refusal,) = db.execute("SELECT detail FROM audit WHERE action = 'keep-request-refused'").fetchall()
    assert "war memorial" not in refusal[0] and "jo.public" not in refusal[0]


def test_a_clip_page_names_the_public_requests_keeping_it(site):
    from tests.central.evidence.test_clips import RECORDED, upload

    day = utc_now() - timedelta(days=2)
    at = day.replace(hour=21, minute=10, second=0, microsecond=0)
    clip_id = upload(site, b"footage" * 50, serial="BWV-Camden", hours=(at - RECORDED).total_seconds() / 3600)
    reference = reference_of(send(site))
    log_in(site, "s.uper")
    page = site.get(f"/clips/{clip_id}").text
    assert f"public request {reference}" in page and f'href="/keep-requests/{reference}"' not in page
    assert site.get(f"/api/v1/clips/{clip_id}/retention", headers=ADMIN).json()["requested_by"] == [reference]
