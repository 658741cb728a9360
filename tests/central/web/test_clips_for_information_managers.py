"""An information manager finds a clip from a complaint by its record (officer and time), holds it
and prints its chain of custody, in their own borough, never seeing the footage itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from central.core.providers import services
from fleet.clock import to_iso
from tests.central.conftest import ADMIN, BARNET
from tests.central.evidence.test_clips import upload
from tests.central.web.test_dashboard import PASSWORD, browser, csrf_of, log_in  # noqa: F401 (fixture)
from tests.station.conftest import RECORDED


@pytest.fixture
def complaint(browser):  # noqa: F811
    """Two clips PC3's camera recorded in Camden on 20 November, at 14:00 and 16:00, and one in
    Barnet at 14:00; a Camden information manager."""
    client = browser
    services(client.app).users.add("i.manager", "information_manager", "test", password=PASSWORD, borough="Camden")
    client.post(
        "/api/v1/devices/",
        headers=ADMIN,
        json=[{"serial": "BWV-000123", "borough": "Camden"}, {"serial": "BWV-B1", "borough": "Barnet"}],
    ).raise_for_status()
    client.post(
        "/api/v1/officers/", headers=ADMIN, json=[{"officer_id": "PC3", "borough": "Camden"}]
    ).raise_for_status()
    at_two, at_four = upload(client, b"two o'clock" * 100), upload(client, b"four o'clock" * 100, hours=2)
    with services(client.app).store.writer.write() as db:  # as the station's ingest reports attribute them
        for clip_id, hours in ((at_two, 0), (at_four, 2)):
            db.execute(
                "INSERT INTO attributions (clip_id, device_serial, recorded_at, station_id, officer_id) "
                "VALUES (?, 'BWV-000123', ?, 'camden', 'PC3')",
                [clip_id, to_iso(RECORDED + timedelta(hours=hours))],
            )
    barnet = upload(client, b"barnet footage" * 100, headers=BARNET, serial="BWV-B1")
    log_in(client, "i.manager")
    return client, at_two, at_four, barnet


def test_the_complaints_clip_is_found_by_officer_and_time(complaint):
    client, at_two, at_four, barnet = complaint
    page = client.get(
        "/clips", params={"officer": "PC3", "recorded_from": "2026-11-20T13:30", "recorded_to": "2026-11-20T14:30"}
    )
    assert page.status_code == 200
    assert at_two[:13] in page.text and at_four[:13] not in page.text and barnet[:13] not in page.text
    assert 'type="datetime-local" name="recorded_from" value="2026-11-20T13:30"' in page.text
    whole_day = client.get("/clips", params={"officer": "PC3", "recorded_from": "2026-11-20"}).text
    assert at_two[:13] in whole_day and at_four[:13] in whole_day  # a day alone still works
    assert 'value="2026-11-20T00:00"' in whole_day
    assert ">Clips</a>" in whole_day  # in the navigation


@pytest.mark.parametrize("moment", ["14:00", "2026-11-20T25:00", "2026-11-20 14:00", "2026-11-20T14:00+01:00"])
def test_a_time_that_is_no_time_is_a_clear_400(complaint, moment):
    client, *_ = complaint
    refused = client.get("/clips", params={"recorded_from": moment})
    assert refused.status_code == 400
    assert "is not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM)" in refused.text


def test_the_clips_page_holds_it_and_links_its_custody_but_never_plays_it(complaint):
    client, at_two, *_ = complaint
    page = client.get(f"/clips/{at_two}").text
    assert "<video" not in page and f"/api/v1/clips/{at_two}/content" not in page
    assert "/categories" not in page and "/attribution" not in page  # a supervisor's decisions
    assert f'action="/clips/{at_two}/hold"' in page and f"/api/v1/clips/{at_two}/custody.html" in page
    held = client.post(f"/clips/{at_two}/hold", data={"reason": "complaint CMP-9", "csrf_token": csrf_of(page)})
    assert held.status_code == 200 and "complaint CMP-9" in held.text
    assert f"/clips/{at_two}/release/" not in held.text  # releasing is a supervisor's
    hold_ids = client.get(f"/api/v1/clips/{at_two}/retention", headers=ADMIN).json()["held_by"]
    holds = {h["id"]: h for h in client.get("/api/v1/holds", headers=ADMIN).json()}
    assert [(holds[i]["reason"], holds[i]["created_by"]) for i in hold_ids] == [("complaint CMP-9", "i.manager")]
    report = client.get(f"/api/v1/clips/{at_two}/custody.html")
    sha256 = client.get(f"/api/v1/clips/{at_two}", headers=ADMIN).json()["sha256"]
    assert report.status_code == 200 and sha256 in report.text and "complaint CMP-9" in report.text
    assert client.get(f"/api/v1/clips/{at_two}/content").status_code == 403  # the footage stays the supervisors'


def test_another_boroughs_clip_is_out_of_reach(complaint):
    client, at_two, _at_four, barnet = complaint
    token = csrf_of(client.get(f"/clips/{at_two}").text)
    assert client.get(f"/clips/{barnet}").status_code == 403
    assert client.post(f"/clips/{barnet}/hold", data={"reason": "complaint", "csrf_token": token}).status_code == 403
    assert client.get(f"/api/v1/clips/{barnet}/custody.html").status_code == 403
    assert barnet[:13] not in client.get("/clips").text


def test_naming_another_boroughs_camera_or_a_borough_finds_nothing_of_it(complaint):
    """The filters narrow within the borough, never widen it: naming Barnet's camera, or every
    state, time and page key, still lists only Camden's cameras' clips."""
    client, *_, barnet = complaint
    for params in (
        {"device": "BWV-B1"},
        {"device": "BWV-B1", "state": "kept", "recorded_from": "2000-01-01", "recorded_to": "2100-01-01"},
        {"before": "9999-12-31T00:00:00Z|z"},
    ):
        found = client.get("/clips", params=params)
        assert found.status_code == 200 and barnet[:13] not in found.text, params
    assert client.get("/api/v1/devices/export.csv", params={"borough": "Barnet"}).status_code == 403
    assert "BWV-B1" not in client.get("/api/v1/devices/export.csv").text


def test_a_summer_complaints_time_is_searched_and_shown_in_london_time(complaint):
    """A complaint of "about half past two" on 1 July is 13:30 UTC: the search reads London time, as
    the public's form does, and the page names the zone."""
    client, *_ = complaint
    summer = datetime(2026, 7, 1, 13, 20, tzinfo=UTC)  # 14:20 BST
    clip_id = upload(client, b"july" * 100, hours=(summer - RECORDED).total_seconds() / 3600)
    found = client.get("/clips", params={"recorded_from": "2026-07-01T14:00", "recorded_to": "2026-07-01T15:00"}).text
    assert clip_id[:13] in found and "2026-07-01 14:20 BST" in found
    earlier = client.get("/clips", params={"recorded_from": "2026-07-01T13:00", "recorded_to": "2026-07-01T14:00"})
    assert clip_id[:13] not in earlier.text  # 13:20 UTC is not "about ten past one"
    assert "Recorded from (London time)" in found
    assert "2026-07-01 14:20:00 BST" in client.get(f"/clips/{clip_id}").text
