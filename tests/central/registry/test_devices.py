"""The device registry: lifecycle rules, battery flags, staleness, borough scoping."""

import itertools
from datetime import timedelta

import pytest

from central.core.providers import services
from fleet.clock import from_iso
from tests.central.conftest import ADMIN, BARNET, CAMDEN
from tests.central.fleetdata import T0, docked, out, post


def register(client, *rows):
    r = client.post("/api/v1/devices/", headers=ADMIN, json=list(rows))
    assert r.status_code == 201, r.text
    return r.json()


def lifecycle(client, serial, state, **extra):
    return client.post(
        f"/api/v1/devices/{serial}/lifecycle", headers=ADMIN, json={"state": state, "reason": "test", **extra}
    )


def test_registration_and_the_lifecycle(client):
    assert register(client, {"serial": "BWV-1"}, {"serial": "BWV-2", "borough": "Camden"}) == {
        "created": ["BWV-1", "BWV-2"],
        "already_registered": [],
    }
    assert register(client, {"serial": "BWV-1"})["already_registered"] == ["BWV-1"]
    r = lifecycle(client, "BWV-1", "allocated")
    assert r.status_code == 409 and "borough" in r.json()["message"]
    assert lifecycle(client, "BWV-1", "allocated", borough="Barnet").json()["borough"] == "Barnet"
    assert lifecycle(client, "BWV-1", "retired").json()["lifecycle"] == "retired"
    r = lifecycle(client, "BWV-1", "in_service")
    assert r.status_code == 409 and "retired" in r.json()["message"]
    history = client.get("/api/v1/devices/BWV-1", headers=ADMIN).json()["lifecycle_history"]
    assert [(h["from_state"], h["to_state"]) for h in history] == [
        ("allocated", "retired"),
        ("in_stock", "allocated"),
        (None, "in_stock"),
    ]


def test_a_camera_that_is_out_cannot_be_retired_but_can_be_lost(client):
    post(client, CAMDEN, [docked("BWV-1", clips=1), out("BWV-1", "PC1")])
    r = lifecycle(client, "BWV-1", "retired")
    assert r.status_code == 409 and "check it in" in r.json()["message"]
    # "stale" too once the fleet-health job's first run (at start-up) has seen its docking, whose
    # date is fixed and so over a week old: whether it ran yet is a race, and not this test's point.
    assert set(lifecycle(client, "BWV-1", "lost").json()["flags"]) - {"stale"} == {"lost"}
    post(client, CAMDEN, [docked("BWV-1", 30, clips=2)], first_seq=3, hours=[30])  # found: it docked
    device = client.get("/api/v1/devices/BWV-1", headers=ADMIN).json()
    assert device["device"]["lifecycle"] == "in_service"
    assert device["lifecycle_history"][0]["reason"] == "found: docked with clips"
    told = [
        c["item"]
        for c in client.get("/api/v1/changes/", headers=CAMDEN).json()["changes"]
        if c["item"]["kind"] == "device"
    ]
    # registered at its first docking; then lost; then found (Camden's desks may hand it out again).
    # The fleet-health job's first run, at start-up, may publish the camera once more (stale: the
    # test's dates are fixed, so over a week old): a repeat of the same lifecycle, not a step.
    steps = [state for state, _ in itertools.groupby(d["lifecycle"] for d in told)]
    assert steps == ["in_service", "lost", "in_service"]


def test_bad_lifecycle_requests_are_4xx(client):
    register(client, {"serial": "BWV-1"})
    assert lifecycle(client, "BWV-1", "on_the_moon").status_code == 400
    assert lifecycle(client, "NOPE", "retired").status_code == 404
    assert client.post("/api/v1/devices/BWV-1/lifecycle", headers=ADMIN, json={"state": "retired"}).status_code == 400
    assert client.post("/api/v1/devices/", headers=ADMIN, json=[{"serial": "bad serial!"}]).status_code == 400


def test_a_borough_with_a_line_break_is_refused_in_words(client):
    refused = client.post("/api/v1/devices/", headers=ADMIN, json=[{"serial": "BWV-1", "borough": "Camden\n"}])
    assert refused.status_code == 400
    message = refused.json()["message"]
    assert "printable name" in message and "regex" not in message, message


def test_battery_flags_from_dock_telemetry(client):
    post(
        client,
        CAMDEN,
        [
            docked("OK"),
            docked("WEAK", full=2400),  # SoH 80% → 9.6 h < a 10 h shift
            docked("HOT", temp=52),
            docked("DROP", full=2900),
            docked("DROP", 24, full=2600),  # 96.7% → 86.7%
        ],
    )
    flagged = {
        flag: [
            d["serial"] for d in client.get("/api/v1/devices/", params={"flag": flag}, headers=ADMIN).json()["items"]
        ]
        for flag in ("short_shift", "over_temp", "capacity_drop")
    }
    assert flagged == {"short_shift": ["WEAK"], "over_temp": ["HOT"], "capacity_drop": ["DROP"]}


def test_the_health_job_forecasts_replacement_and_lists_stale_cameras(client):
    days = range(300, -1, -10)  # SoH 80% → 95% over 300 days, docked every 10 days until T0
    fading = [docked("OLD", -24 * d, full=int(3000 * (0.95 - 0.0005 * d))) for d in days]
    post(client, CAMDEN, fading, hours=[-24 * d for d in days])
    post(client, BARNET, [docked("GONE", -24 * 20, clips=1)], hours=[-24 * 20])
    report = services(client.app).health.run(now=T0)  # the test data's "now"
    assert report.forecasts == 2 and report.stale_devices == 1
    old = client.get("/api/v1/devices/OLD", headers=ADMIN).json()["device"]
    assert old["battery_soh_pct"] == pytest.approx(95, abs=0.1) and "stale" not in old["flags"]
    assert old["replace_by"] is None  # improving, not fading: no replacement date
    stale = client.get("/api/v1/devices/", params={"flag": "stale"}, headers=ADMIN).json()["items"]
    assert [d["serial"] for d in stale] == ["GONE"]
    assert services(client.app).health.run(now=T0 + timedelta(days=30)).stale_devices == 2


def test_a_fading_battery_gets_a_replacement_date(client):
    days = range(300, -1, -10)  # 95% → 80% over 300 days: crosses 80% at T0
    post(
        client,
        CAMDEN,
        [docked("OLD", -24 * d, full=int(3000 * (0.80 + 0.0005 * d))) for d in days],
        hours=[-24 * d for d in days],
    )
    services(client.app).health.run(now=T0)
    replace_by = from_iso(client.get("/api/v1/devices/OLD", headers=ADMIN).json()["device"]["replace_by"])
    assert abs(replace_by - T0) < timedelta(days=5)


def test_stations_see_only_their_borough(client):
    post(client, CAMDEN, [docked("C1")])
    post(client, BARNET, [docked("B1")])
    assert [d["serial"] for d in client.get("/api/v1/devices/", headers=CAMDEN).json()["items"]] == ["C1"]
    assert client.get("/api/v1/devices/", params={"borough": "Barnet"}, headers=CAMDEN).status_code == 403
    assert client.get("/api/v1/devices/B1", headers=CAMDEN).status_code == 403
    assert client.get("/api/v1/devices/C1", headers=CAMDEN).status_code == 200
    assert client.post("/api/v1/devices/", headers=CAMDEN, json=[{"serial": "X"}]).status_code == 403
    assert client.get("/api/v1/stations/", headers=CAMDEN).status_code == 403
    assert len(client.get("/api/v1/devices/", headers=ADMIN).json()["items"]) == 2


def test_device_list_paginates_and_filters(client):
    register(client, *({"serial": f"BWV-{i:03d}", "borough": "Camden" if i % 2 else "Barnet"} for i in range(25)))
    seen, cursor = [], None
    while True:
        page = client.get(
            "/api/v1/devices/",
            params={"borough": "Camden", "limit": 5, **({"cursor": cursor} if cursor else {})},
            headers=ADMIN,
        ).json()
        seen += [d["serial"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"BWV-{i:03d}" for i in range(25) if i % 2]
    assert (
        client.get("/api/v1/devices/", params={"lifecycle": "allocated", "q": "BWV-02"}, headers=ADMIN).json()["items"][
            0
        ]["serial"]
        == "BWV-020"
    )
    either_case = client.get("/api/v1/devices/", params={"q": "bwv-02"}, headers=ADMIN).json()["items"]
    assert [d["serial"] for d in either_case] == [f"BWV-{i:03d}" for i in range(20, 25)]  # as SQLite's LIKE matches
    assert client.get("/api/v1/devices/", params={"flag": "nonsense"}, headers=ADMIN).status_code == 400


@pytest.mark.parametrize("mode, status", [("pool", 409), ("personal", 201)])
def test_personal_issue_follows_the_policy(client, mode, status):
    register(client, {"serial": "BWV-1", "borough": "Camden", "assignment_mode": mode})
    client.post("/api/v1/officers/", headers=ADMIN, json=[{"officer_id": "PC1", "borough": "Camden"}])
    r = client.post("/api/v1/assignments", headers=ADMIN, json={"device_serial": "BWV-1", "officer_id": "PC1"})
    assert r.status_code == status, r.text


def test_an_exact_capacity_drop_is_flagged_as_fleet_battery_judges_it(client):
    from central.registry import battery

    before, after = battery.state_of_health(2000, 3000), battery.state_of_health(1850, 3000)  # 66.67 → 61.67%
    assert battery.sudden_drop(before, after, battery.HealthPolicy(sudden_drop_pct=5))
    post(client, CAMDEN, [docked("EXACT", full=2000), docked("EXACT", 24, full=1850)], hours=[0, 24])
    flags = client.get("/api/v1/devices/EXACT", headers=ADMIN).json()["device"]["flags"]
    assert "capacity_drop" in flags


def test_a_camera_first_seen_at_a_dock_is_registered_with_history_audit_and_a_feed_entry(client):
    post(client, CAMDEN, [docked("NEW-1"), docked("NEW-1", 2, clips=1)], hours=[0, 2])
    detail = client.get("/api/v1/devices/NEW-1", headers=ADMIN).json()
    assert [(h["from_state"], h["to_state"], h["actor"], h["place"]) for h in detail["lifecycle_history"]] == [
        ("issued", "in_service", "dock:camden", "camden"),
        (None, "issued", "dock:camden", "camden"),
    ]
    assert [(t["action"], t["actor"], t["place"]) for t in detail["audit"]] == [
        ("lifecycle", "dock:camden", "camden"),
        ("register", "dock:camden", "camden"),
    ]
    told = [
        c["item"]
        for c in client.get("/api/v1/changes/", headers=CAMDEN).json()["changes"]
        if c["item"]["kind"] == "device"
    ]
    assert [(d["serial"], d["lifecycle"], d["borough"], d["home_station"]) for d in told] == [
        ("NEW-1", "issued", "Camden", "camden"),
        ("NEW-1", "in_service", "Camden", "camden"),
    ]
    assert not [
        c for c in client.get("/api/v1/changes/", headers=BARNET).json()["changes"] if c["item"]["kind"] == "device"
    ]


def test_a_registered_camera_docking_with_clips_is_audited(client):
    register(client, {"serial": "BWV-1", "borough": "Camden"})
    post(client, CAMDEN, [docked("BWV-1", clips=1)])
    trail = client.get("/api/v1/devices/BWV-1", headers=ADMIN).json()["audit"]
    assert [(t["action"], t["actor"], t["place"]) for t in trail] == [
        ("lifecycle", "dock:camden", "camden"),
        ("register", "admin", "central"),
    ]
    assert "allocated → in_service" in trail[0]["detail"]
