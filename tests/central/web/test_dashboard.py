"""The dashboard in a browser's shoes: log in, see the fleet, forms need their CSRF token."""

from __future__ import annotations

import html
import re
import time

import pytest

from central.core.providers import services
from tests.central.apps import central_client
from tests.central.conftest import ADMIN, CAMDEN, central_store
from tests.central.fleetdata import docked, post

PASSWORD = "correct horse battery"  # a test value, not a secret


@pytest.fixture
def browser(settings):
    """A client on https (session cookies are Secure), with a viewer and a planner account."""
    with central_client(settings, base_url="https://central.test", raise_server_exceptions=False) as c:
        services(c.app).users.add("v.iewer", "viewer", "test", password=PASSWORD)
        services(c.app).users.add("p.lanner", "planner", "test", password=PASSWORD)
        yield c


def log_in(browser, name="v.iewer", password=PASSWORD, next_path="/"):
    """The login page, then its form posted (with the form's CSRF token, as a browser would)."""
    token = login_csrf_of(browser.get("/login").text)
    return browser.post(
        "/login",
        data={"name": name, "password": password, "next": next_path, "csrf_token": token},
        follow_redirects=False,
    )


def login_csrf_of(page_html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page_html).group(1)


def csrf_of(page_html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page_html).group(1)


def test_pages_send_a_stranger_to_the_login_page_and_back(browser):
    r = browser.get("/devices?flag=lost", follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "/login?next=/devices%3Fflag%3Dlost"
    assert browser.get(r.headers["location"]).status_code == 200
    wrong = log_in(browser, password="not the password")
    assert wrong.status_code == 401 and "wrong user name or password" in wrong.text
    ok = log_in(browser, next_path="/devices?flag=lost")
    assert ok.status_code == 303 and ok.headers["location"] == "/devices?flag=lost"
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=lax" in cookie
    assert browser.get("/devices?flag=lost").status_code == 200


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"])
def test_no_open_redirect_after_login(browser, target):
    assert log_in(browser, next_path=target).headers["location"] == "/"


def test_logging_out_needs_the_forms_csrf_token_and_ends_the_session(browser):
    log_in(browser)
    overview = browser.get("/")
    assert browser.post("/logout", data={"csrf_token": "forged"}).status_code == 403
    assert browser.post("/logout", data={}).status_code == 403
    out = browser.post("/logout", data={"csrf_token": csrf_of(overview.text)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert browser.get("/", follow_redirects=False).status_code == 302


def test_a_session_cookie_cannot_change_things_without_the_csrf_header(browser):
    log_in(browser, "p.lanner")
    page = browser.get("/")
    forged = browser.post("/api/v1/rollout/proposals", json={"borough": "Camden", "week": 1, "count": 1})
    assert forged.status_code == 403 and "CSRF" in forged.json()["message"]
    sent = browser.post(
        "/api/v1/rollout/proposals",
        json={"borough": "Camden", "week": 1, "count": 1},
        headers={"X-CSRF-Token": csrf_of(page.text)},
    )
    assert sent.status_code not in (401, 403)
    assert browser.get("/api/v1/devices/").status_code == 200  # reading needs no CSRF token


def test_the_overview_shows_the_fleet(browser):
    browser.post(
        "/api/v1/devices/",
        headers=ADMIN,
        json=[{"serial": f"BWV-{i}", "model": "Axon Body 2", "borough": "Camden"} for i in range(3)],
    )
    post(browser, CAMDEN, [docked("BWV-0", temp=61.0)])
    log_in(browser)
    page = browser.get("/").text
    assert re.search(r'data-state="allocated"><a [^>]+><span class="n">3</span>', page)
    assert re.search(r'data-alert="over_temp">\s*<a [^>]+><span class="n">1</span>', page)
    assert "Camden" in page and "<svg" in page
    # camden has just reported; barnet and kentish never have: one healthy, none stale, two offline
    assert re.findall(r'<span class="n">(\d+)</span>(healthy|stale|offline)', page) == [
        ("1", "healthy"),
        ("0", "stale"),
        ("2", "offline"),
    ]
    devices = browser.get("/devices", params={"flag": "over_temp"}).text
    assert "BWV-0" in devices and "BWV-1" not in devices
    device = browser.get("/devices/BWV-0").text
    assert "Battery health of BWV-0" in device and "over temp" in device
    assert browser.get("/devices/NOPE").status_code == 404
    assert browser.get("/devices", params={"flag": "nonsense"}).status_code == 400


def test_a_viewer_sees_no_footage(browser):
    log_in(browser)
    r = browser.get("/api/v1/clips/")
    assert r.status_code == 403 and "supervisor" in r.json()["message"]


@pytest.fixture
def staffed(browser):
    """A supervisor and an auditor, two officers and three personal-issue cameras in Camden."""
    services(browser.app).users.add("s.uper", "supervisor", "test", password=PASSWORD)
    services(browser.app).users.add("a.uditor", "auditor", "test", password=PASSWORD)
    browser.post(
        "/api/v1/officers/", headers=ADMIN, json=[{"officer_id": f"PC{i}", "borough": "Camden"} for i in (1, 2)]
    )
    browser.post(
        "/api/v1/devices/",
        headers=ADMIN,
        json=[{"serial": f"CAM-{i}", "borough": "Camden", "assignment_mode": "personal"} for i in (1, 2, 3)],
    )
    return browser


def test_a_supervisor_assigns_and_bulk_unassigns_on_the_officers_page(staffed):
    log_in(staffed, "s.uper")
    token = csrf_of(staffed.get("/officers").text)
    assert staffed.post("/officers/assign", data={"device_serial": "CAM-1", "officer_id": "PC1"}).status_code == 403
    done = staffed.post("/officers/assign", data={"device_serial": "CAM-1", "officer_id": "PC1", "csrf_token": token})
    assert done.status_code == 200 and "camera issued" in done.text and "CAM-1" in done.text
    staffed.post("/officers/assign", data={"device_serial": "CAM-2", "officer_id": "PC2", "csrf_token": token})
    refused = staffed.post(
        "/officers/assign", data={"device_serial": "CAM-3", "officer_id": "PC1", "csrf_token": token}
    )
    assert "already holds camera CAM-1" in refused.text  # the service's refusal, shown on the page
    page = staffed.get("/officers").text
    assert 'value="CAM-1" aria-label="select camera CAM-1 of PC1"' in page
    ended = staffed.post(
        "/officers/unassign", data={"device_serial": ["CAM-1", "CAM-2"], "reason": "end of shift", "csrf_token": token}
    )
    assert "assignments ended" in ended.text
    assert staffed.get("/api/v1/assignments?active=true", headers=ADMIN).json() == []


def test_a_search_with_an_ampersand_pages_on_as_the_same_search(browser):
    """The next page's link carries the filters percent-encoded: "Smith & Jones #2" is one value, not
    a search for "Smith " and a stray parameter (nor cut at the "#")."""
    officers = [{"officer_id": f"PC{i:03}", "borough": "Camden", "name": f"Smith & Jones #{i}"} for i in range(60)]
    officers.append({"officer_id": "PC999", "borough": "Camden", "name": "Smith Else"})
    browser.post("/api/v1/officers/", headers=ADMIN, json=officers).raise_for_status()
    log_in(browser)
    first = browser.get("/officers", params={"q": "Smith & Jones #"}).text
    link = html.unescape(re.search(r'<a rel="next" href="([^"]+)"', first).group(1))
    assert link.startswith("/officers?q=Smith+%26+Jones+%23&after=")
    second = browser.get(link).text
    shown = set(re.findall(r">(PC\d{3})<", first)) | set(re.findall(r">(PC\d{3})<", second))
    assert shown == {o["officer_id"] for o in officers[:60]}  # every match over two pages, and nothing else


def test_a_viewer_sees_officers_but_no_assign_form(staffed):
    log_in(staffed)
    page = staffed.get("/officers").text
    assert "PC1" in page and "/officers/assign" not in page
    assert staffed.post("/officers/assign", data={"csrf_token": csrf_of(page)}).status_code == 403


def test_a_clip_is_held_and_categorised_from_its_page_and_the_audit_page_shows_it(staffed):
    from tests.central.evidence.test_clips import upload

    clip_id = upload(staffed, b"footage bytes" * 100)
    log_in(staffed, "s.uper")
    listing = staffed.get("/clips").text
    assert clip_id[:13] in listing
    page = staffed.get(f"/clips/{clip_id}")
    assert page.status_code == 200 and f'src="/api/v1/clips/{clip_id}/content"' in page.text
    token = csrf_of(page.text)
    no_reason = staffed.post(f"/clips/{clip_id}/hold", data={"reason": "", "csrf_token": token})
    assert "say why" in no_reason.text
    held = staffed.post(f"/clips/{clip_id}/hold", data={"reason": "complaint CMP-7", "csrf_token": token})
    assert "held" in held.text and "complaint CMP-7" in held.text
    assert clip_id[:13] in staffed.get("/clips", params={"state": "held"}).text
    categorised = staffed.post(
        f"/clips/{clip_id}/categories", data={"category": "evidential", "reason": "arrest", "csrf_token": token}
    )
    assert "categories set" in categorised.text and '<dd id="categories">evidential</dd>' in categorised.text
    other = upload(staffed, b"other footage" * 100)
    evidential = staffed.get("/clips", params={"category": "evidential"})
    assert evidential.status_code == 200 and clip_id[:13] in evidential.text and other[:13] not in evidential.text
    assert staffed.get("/clips", params={"category": 'x" OR 1'}).status_code == 400
    assert staffed.get(f"/clips/{clip_id}/restore").status_code in (404, 405)  # a form target, not a page
    log_in(staffed, "a.uditor")
    trail = staffed.get("/audit", params={"object_id": clip_id}).text
    assert "complaint CMP-7" in trail and "categorise" in trail
    verified = staffed.post("/audit/verify", data={"csrf_token": csrf_of(trail)})
    assert "chain intact" in verified.text
    assert staffed.get("/clips").status_code == 403  # an auditor reads the trail, not the footage


def test_the_rollout_page_shows_the_verdict_and_a_planner_commits_a_proposal(tmp_path):
    from tests.central.conftest import make_settings

    settings = make_settings(
        tmp_path / "c", rollout={"boroughs": "config/boroughs.toml", "scenario": "config/rollout.toml"}
    )
    with central_client(settings, base_url="https://central.test", raise_server_exceptions=False) as c:
        services(c.app).users.add("p.lanner", "planner", "test", password=PASSWORD)
        c.post(
            "/api/v1/officers/", headers=ADMIN, json=[{"officer_id": "PC1", "borough": "Camden", "role": "response"}]
        )
        c.post("/api/v1/devices/", headers=ADMIN, json=[{"serial": "NEW-1", "model": "Axon Body 2"}])
        proposal = c.post("/api/v1/rollout/proposals", headers=ADMIN, json={"boroughs": ["Camden"]}).json()
        log_in(c, "p.lanner")
        page = c.get("/rollout").text
        assert "not feasible" in page and "deliveries" in page and "<svg" in page
        assert f"Proposal {proposal['id']}" in page
        done = c.post(f"/rollout/proposals/{proposal['id']}/commit", data={"csrf_token": csrf_of(page)})
        assert "proposal committed" in done.text
        assert f"Proposal {proposal['id']}: " in done.text.split('id="committed"')[1]  # no longer to review, but shown
        assert "committed by p.lanner" in done.text
        assert proposal["items"][0]["device_serial"] == "NEW-1"
        assert c.get("/api/v1/devices/NEW-1", headers=ADMIN).json()["device"]["borough"] == "Camden"  # committed


def test_the_stations_page_draws_sync_lag_from_the_health_jobs_samples(browser):
    from datetime import timedelta

    from central.registry.stations import StationHealth
    from fleet.clock import utc_now

    stations = services(browser.app).stations
    now = utc_now()
    for hours_ago, camden_lag, barnet_lag in ((3, 1.5, None), (2, 4.0, 0.5), (1, 0.5, 2.0)):
        stations.record_samples(
            [
                StationHealth(
                    station_id="camden",
                    borough="Camden",
                    last_seen_at=now,
                    stale=False,
                    pending_clips=3,
                    oldest_pending_age_h=camden_lag,
                ),
                StationHealth(
                    station_id="barnet",
                    borough="Barnet",
                    last_seen_at=now,
                    stale=False,
                    pending_clips=2,
                    oldest_pending_age_h=barnet_lag,
                ),
            ],
            now - timedelta(hours=hours_ago),
        )
    force = [s for s in stations.samples(None, now - timedelta(days=1)) if s.at < now - timedelta(minutes=30)]
    assert [(s.pending_clips, s.lag_h) for s in force] == [(5, 1.5), (5, 4.0), (5, 2.0)]  # summed, worst lag
    # The job's start-up run is on a thread of its own: counted once it has recorded its sample.
    deadline = time.monotonic() + 30
    while not any(s.at > now - timedelta(minutes=30) for s in stations.samples("camden", now - timedelta(days=1))):
        assert time.monotonic() < deadline, "the health job's start-up run recorded no sample"
        time.sleep(0.02)
    before = len(stations.samples("camden", now - timedelta(days=1)))  # ours, and the start-up run's
    services(browser.app).health.run(now + timedelta(seconds=1))  # the job adds a sample of its own
    assert len(stations.samples("camden", now - timedelta(days=1))) == before + 1
    log_in(browser)
    page = browser.get("/stations", params={"station": "camden", "days": 1}).text
    lag = re.search(r'<figure id="lag-chart">.*?points="([^"]+)"', page, re.S).group(1)
    assert len(lag.split()) == before + 1 and "Sync lag, station camden" in page
    assert browser.get("/stations", params={"station": "nope"}).status_code == 404


def test_unattributed_clips_are_found_attributed_and_conflicts_resolved_on_their_pages(staffed):
    from tests.central.evidence.test_clips import upload
    from tests.central.fleetdata import back as check_in
    from tests.central.fleetdata import ingested, out

    footage = b"nobody's footage" * 50
    clip = ingested("BWV-000123", 0, clip_id=upload(staffed, footage), data=footage)  # as uploaded
    post(staffed, CAMDEN, [docked("BWV-000123", 6, clips=1), clip], hours=[6, 6])
    # Two cameras out to PC1 at once: the station was offline, central lists the conflict.
    post(
        staffed,
        CAMDEN,
        [
            docked("POOL-1", 6.5),
            docked("POOL-2", 6.5),
            out("POOL-1", "PC1"),
            out("POOL-2", "PC1"),
            check_in("POOL-1", "PC1"),
            check_in("POOL-2", "PC1"),
        ],
        first_seq=3,
        hours=[6.5, 6.5, 7, 7.5, 9, 9],
    )
    log_in(staffed, "s.uper")
    overview = staffed.get("/").text
    assert re.search(
        r'data-alert="unattributed">\s*<a href="/clips\?state=unattributed"><span class="n">1</span>', overview
    )
    listing = staffed.get("/clips", params={"state": "unattributed"}).text
    assert clip.clip_id[:13] in listing
    page = staffed.get(f"/clips/{clip.clip_id}").text
    attributed = staffed.post(
        f"/clips/{clip.clip_id}/attribution",
        data={"officer_id": "PC2", "reason": "incident log", "csrf_token": csrf_of(page)},
    )
    assert "attributed" in attributed.text and "PC2" in re.search(
        r'<dd id="officer">(.*?)</dd>', attributed.text
    ).group(1)
    assert clip.clip_id[:13] not in staffed.get("/clips", params={"state": "unattributed"}).text
    conflicts = staffed.get("/officers/conflicts").text
    [conflict_id] = re.findall(r'action="/officers/conflicts/(\d+)/resolve"', conflicts)
    resolved = staffed.post(
        f"/officers/conflicts/{conflict_id}/resolve",
        data={"resolution": "spare camera, logged", "csrf_token": csrf_of(conflicts)},
    )
    assert "conflict resolved" in resolved.text and "No conflict." in resolved.text


def test_the_login_form_needs_its_csrf_token(browser):
    def post(**fields):
        return browser.post("/login", data={"name": "v.iewer", "password": PASSWORD, **fields}, follow_redirects=False)

    token = login_csrf_of(browser.get("/login").text)
    for refused in (post(), post(csrf_token="forged"), post(csrf_token=token + "x")):
        assert refused.status_code == 400 and "bwv_session" not in refused.headers.get("set-cookie", "")
        assert "This form has expired" in refused.text
    assert login_csrf_of(browser.get("/login").text) == token  # a second tab: the same token
    assert post(csrf_token=token).status_code == 303


def test_a_login_token_from_another_browser_does_not_match(browser):
    from central.access import login_csrf

    theirs = login_csrf.new_token(services(browser.app).login_csrf_key)  # as central gave another browser
    browser.get("/login")
    r = browser.post(
        "/login", data={"name": "v.iewer", "password": PASSWORD, "csrf_token": theirs}, follow_redirects=False
    )
    assert r.status_code == 400


def test_failed_logins_are_throttled_whatever_cookies_are_sent(browser):
    from central.access.login_throttle import ACCOUNT_FREE

    answers = {}
    for name in ("v.iewer", "n.obody"):
        seen = []
        for _ in range(ACCOUNT_FREE + 1):
            browser.cookies.clear()  # a fresh cookie jar every time: the count is kept at central
            seen.append(log_in(browser, name, password="not the password"))
        answers[name] = seen
        assert [r.status_code for r in seen] == [401] * ACCOUNT_FREE + [429]
        locked = seen[-1]
        assert 0 < int(locked.headers["retry-after"]) <= 30
        assert "too many failed logins: try again in 30 seconds" in locked.text

    def same(r, name):
        return re.sub(r'name="csrf_token" value="[^"]+"', "", r.text).replace(name, "X")

    assert same(answers["v.iewer"][-1], "v.iewer") == same(answers["n.obody"][-1], "n.obody")
    browser.cookies.clear()
    assert log_in(browser).status_code == 429  # the right password waits its turn too


@pytest.mark.parametrize(
    "query", ["done=Your+account+is+suspended%2C+call+0800", "error=<b>phish</b>", "done=camera+X+issued"]
)
def test_messages_on_a_page_come_from_a_fixed_list_not_the_url(browser, query):
    log_in(browser)
    page = browser.get("/?" + query).text
    assert 'role="status"' not in page and 'role="alert"' not in page
    assert "0800" not in page and "phish" not in page


def test_the_login_forms_key_is_random_kept_in_the_database_and_not_in_the_config(tmp_path):
    import hashlib
    import hmac

    from central.access import login_csrf
    from tests.central.conftest import make_settings

    settings = make_settings(tmp_path / "a")
    derived = hmac.new(hashlib.sha256(b"admin-test-token").digest(), b"login form csrf", hashlib.sha256).digest()
    first, again, other = (central_store(tmp_path / d) for d in ("a", "a", "b"))
    try:
        key = login_csrf.signing_key(first.writer)
        assert len(key) == 32 and key != derived
        assert settings.admin_token is not None and settings.admin_token not in repr(key)
        assert login_csrf.signing_key(again.writer) == key  # another process on the same database
        assert login_csrf.signing_key(other.writer) != key
    finally:
        for store in (first, again, other):
            store.close()
