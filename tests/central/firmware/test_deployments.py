"""Deployments through the real app: created by fleet managers, offered down the changes feed to
each camera's borough, moved by the results stations post as events, pausing themselves when a
phase fails too often; resumed, aborted and rolled back by people, every decision audited."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar.testing import TestClient

from central.core.providers import services
from fleet.clock import to_iso, utc_now
from fleet.errors import FleetError
from fleet.events import CameraUpdateOffered, CameraUpdateResult
from tests.central.apps import central_client
from tests.central.conftest import ADMIN, BARNET, CAMDEN
from tests.central.firmware.conftest import MODEL, firmware_settings, sign
from tests.central.fleetdata import docked, post

URL = "/api/v1/deployments"
CAMDEN_CAMERAS = [f"BWV-C{n:03}" for n in range(20)]
BARNET_CAMERAS = [f"BWV-B{n:03}" for n in range(10)]


class Central(TestClient):
    """Central under the test client, with the vendor's key and each station's last event number."""

    vendor: Ed25519PrivateKey
    seq: dict[str, int]


@contextmanager
def serving(data_dir, vendor: Ed25519PrivateKey | None, **firmware) -> Iterator[Central]:
    settings = firmware_settings(data_dir, vendor, **firmware)
    with central_client(settings, Central, raise_server_exceptions=False) as c:
        c.vendor = vendor or Ed25519PrivateKey.generate()
        c.seq = {"camden": 0, "barnet": 0}
        yield c


@pytest.fixture
def client(tmp_path, vendor):
    with serving(tmp_path / "central", vendor) as c:
        fleet(c)
        yield c


def fleet(c) -> None:
    """30 cameras registered to Camden and Barnet, each docked once at its borough's station (so
    central knows its model and its firmware, 1.4.2)."""
    rows = [{"serial": s, "model": MODEL, "borough": "Camden", "home_station": "camden"} for s in CAMDEN_CAMERAS]
    rows += [{"serial": s, "model": MODEL, "borough": "Barnet", "home_station": "barnet"} for s in BARNET_CAMERAS]
    assert c.post("/api/v1/devices/", headers=ADMIN, json=rows).status_code in (200, 201)
    send(c, "camden", [docked(s, 1) for s in CAMDEN_CAMERAS])
    send(c, "barnet", [docked(s, 1) for s in BARNET_CAMERAS])


def send(c, station: str, events) -> None:
    """Events as a station posts them (then applied, as the projection worker does)."""
    headers = {"camden": CAMDEN, "barnet": BARNET}[station]
    response = post(c, headers, events, first_seq=c.seq[station] + 1, hours=[1.5] * len(events))
    assert response.status_code == 200, response.text
    c.seq[station] += len(events)


def release(c, version: str = "1.5.0") -> int:
    data = os.urandom(2000)
    query = {"model": MODEL, "version": version, "signature": sign(c.vendor, data, version=version)}
    created = c.post("/api/v1/firmware/releases", params=query, content=data, headers=ADMIN)
    assert created.status_code == 201, created.text
    return created.json()["id"]


def create(c, expect: int = 201, **body):
    body.setdefault("reason", "fixes the clock drift")
    answer = c.post(URL, json=body, headers=ADMIN)
    assert answer.status_code == expect, answer.text
    return answer.json()


def decide(c, deployment_id: int, decision: str, expect: int = 200, reason: str = "looked at it"):
    answer = c.post(f"{URL}/{deployment_id}/{decision}", json={"reason": reason}, headers=ADMIN)
    assert answer.status_code == expect, answer.text
    return answer.json()


def show(c, deployment_id: int):
    return c.get(f"{URL}/{deployment_id}", headers=ADMIN).json()


def cameras(c, deployment_id: int, **params) -> dict[str, dict]:
    found: dict[str, dict] = {}
    cursor = None
    while True:
        page = c.get(
            f"{URL}/{deployment_id}/cameras", params={**params, **({"cursor": cursor} if cursor else {})}, headers=ADMIN
        ).json()
        found |= {camera["serial"]: camera for camera in page["items"]}
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def offers(c, headers) -> dict[str, dict]:
    """The station's view: each camera's latest ``camera_update`` item in its feed."""
    page = c.get("/api/v1/changes/", params={"since": 0}, headers=headers).json()
    latest: dict[str, dict] = {}
    for change in page["changes"]:
        if change["item"]["kind"] == "camera_update":
            latest[change["item"]["serial"]] = change["item"]
    return latest


def standing(c, headers) -> set[str]:
    return {serial for serial, item in offers(c, headers).items() if item["active"]}


def of_station(serials, station: str) -> list[str]:
    return [s for s in serials if s.startswith("BWV-C" if station == "camden" else "BWV-B")]


def results(c, deployment_id: int, outcomes: dict[str, bool], attempt: int = 1, version: str | None = "1.5.0") -> None:
    """Each camera's outcome, posted by its own borough's station as it reads the camera's report."""
    for station in ("camden", "barnet"):
        mine = of_station(outcomes, station)
        events: list[CameraUpdateOffered | CameraUpdateResult] = []
        for serial in mine:
            ok = outcomes[serial]
            events.append(CameraUpdateOffered(serial=serial, deployment_id=deployment_id, attempt=attempt))
            events.append(
                CameraUpdateResult(
                    serial=serial,
                    deployment_id=deployment_id,
                    attempt=attempt,
                    ok=ok,
                    version=version if ok else "1.4.2",
                    error=None if ok else "flash verify failed",
                )
            )
        if events:
            send(c, station, events)


def audit_trail(c, deployment_id: int) -> list[tuple[str, str]]:
    with services(c.app).store.writer.read() as db:
        rows = db.execute(
            "SELECT action, actor FROM audit WHERE object_type = 'deployment' AND object_id = ? ORDER BY id",
            [str(deployment_id)],
        ).fetchall()
    return [tuple(r) for r in rows]


def refusals(c) -> list[tuple[str, str, str]]:
    with services(c.app).store.writer.read() as db:
        rows = db.execute("SELECT station_id, kind, reason FROM station_refusals ORDER BY id").fetchall()
    return [tuple(r) for r in rows]


# -- creating ----------------------------------------------------------------------------------------


def test_a_deployment_freezes_its_target_and_offers_its_canary_to_each_cameras_borough(client):
    release_id = release(client)
    d = create(client, release_id=release_id, phases=[{"share_pct": 10}, {"share_pct": 100}])
    assert d["state"] == "running" and d["release"]["version"] == "1.5.0"
    canary, rest = d["phases"]
    assert canary["state"] == "open" and canary["figures"]["cameras"] == 3  # 10 % of 30
    assert rest["state"] == "waiting" and rest["figures"]["cameras"] == 27
    offered = set(cameras(client, d["id"], state="offered"))
    assert (
        len(offered) == 3
        and set(cameras(client, d["id"], state="waiting")) == set(CAMDEN_CAMERAS + BARNET_CAMERAS) - offered
    )
    # Each station hears of its own borough's cameras only, and its snapshot agrees with its feed.
    for station, headers in (("camden", CAMDEN), ("barnet", BARNET)):
        assert standing(client, headers) == set(of_station(offered, station))
        snapshot = client.get("/api/v1/changes/snapshot", headers=headers).json()
        assert {u["serial"] for u in snapshot["camera_updates"]} == set(of_station(offered, station))
    item = next(iter(offers(client, CAMDEN).values()), None) or next(iter(offers(client, BARNET).values()))
    assert item["release"]["id"] == release_id and item["release"]["sha256"] and item["release"]["signature"]
    assert item["profile"] is None and item["attempt"] == 1
    assert item["min_charge_pct"] == 50.0 and item["max_temperature_c"] == 40.0
    assert audit_trail(client, d["id"]) == [("deployment-create", "admin"), ("deployment-phase-open", "central")]


def test_the_same_target_is_split_the_same_way_and_a_camera_already_updated_is_not_targeted(client):
    release_id = release(client)
    send(client, "camden", [docked("BWV-C000", 2)])  # still 1.4.2: targeted
    first = create(client, release_id=release_id, target={"boroughs": ["Camden"], "from_versions": ["1.4.2"]})
    assert first["figures"]["cameras"] == 20
    decide(client, first["id"], "abort")
    none_match = create(client, 409, release_id=release_id, target={"from_versions": ["0.9"]})
    assert "no camera matches the target" in none_match["message"]


REFUSED: list[tuple[dict[str, Any], int, str]] = [
    ({"release_id": 999}, 404, "no firmware release 999"),
    ({}, 400, "of a release"),
    ({"release_id": "R", "profiles": True}, 400, "of a release"),
    ({"phases": []}, 400, "at least one phase"),
    ({"phases": [{"share_pct": 10}, {"share_pct": 5}, {"share_pct": 100}]}, 400, "must increase"),
    ({"phases": [{"share_pct": 101}]}, 400, "share_pct"),
    ({"phases": [{"share_pct": 10}, {"share_pct": 50}]}, 400, "make its share 100"),
    ({"phases": [{"share_pct": 10, "boroughs": ["Camden"]}, {"share_pct": 100}]}, 400, "either share_pct"),
    ({"phases": [{"boroughs": ["Camden"]}, {"boroughs": ["Camden"]}]}, 400, "in phase 1 already"),
    ({"target": {"boroughs": ["Camdem"]}}, 400, "Camdem"),
    ({"target": {"stations": ["nowhere"]}}, 400, "no station 'nowhere'"),
    ({"target": {"boroughs": []}}, 400, "boroughs"),
    ({"target": {"models": ["Other"]}}, 400, "may name only that model"),
    ({"reason": " "}, 400, "reason"),
    ({"surprise": 1}, 400, "surprise"),
    ({"policy": {"max_attempts": 0}}, 400, "max_attempts"),
]


def test_a_deployment_out_of_shape_is_refused_in_the_one_error_shape(client):
    release_id = release(client)
    for body, status, message in REFUSED:
        if body.get("release_id") == "R":
            body = {**body, "release_id": release_id}
        elif body and "release_id" not in body:
            body = {"release_id": release_id, **body}
        answer = create(client, status, **body)
        assert answer["error"] and message in answer["message"] + str(answer.get("extra", "")), (body, answer)
    assert client.get(URL, headers=ADMIN).json() == []


def test_a_withdrawn_release_and_a_second_deployment_of_a_model_are_conflicts(client):
    first = release(client)
    withdrawn = release(client, "1.6.0")
    client.post(f"/api/v1/firmware/releases/{withdrawn}/withdraw", json={"reason": "bricks"}, headers=ADMIN)
    assert "withdrawn" in create(client, 409, release_id=withdrawn)["message"]
    running = create(client, release_id=first)
    second = create(client, 409, release_id=first, target={"boroughs": ["Barnet"]})
    assert f"deployment {running['id']} of model {MODEL} is running" in second["message"]
    decide(client, running["id"], "pause")
    assert "is paused" in create(client, 409, release_id=first)["message"]
    assert create(client, profiles=True)["kind"] == "profiles"  # the profiles are not a model's


def test_only_fleet_managers_create_and_decide_and_stations_never(client):
    release_id = release(client)
    body = {"release_id": release_id, "reason": "x"}
    assert client.post(URL, json=body, headers=CAMDEN).status_code == 403
    assert client.get(URL, headers=CAMDEN).status_code == 403
    assert client.post(URL, json=body).status_code == 401
    d = create(client, release_id=release_id)
    assert client.post(f"{URL}/{d['id']}/pause", json={"reason": "x"}, headers=CAMDEN).status_code == 403
    assert client.get(f"{URL}/{d['id']}/cameras", headers=BARNET).status_code == 403
    assert client.get(f"{URL}/999", headers=ADMIN).status_code == 404
    assert client.post(f"{URL}/999/pause", json={"reason": "x"}, headers=ADMIN).status_code == 404


# -- the phase rules, moved by the results stations post ------------------------------------------


def test_a_canary_that_fails_too_often_pauses_before_its_next_phase_and_a_person_resumes(client):
    release_id = release(client)
    d = create(
        client,
        release_id=release_id,
        phases=[{"share_pct": 20, "max_failure_pct": 20, "min_results": 3}, {"share_pct": 100}],
    )
    canary = sorted(cameras(client, d["id"], state="offered"))
    assert len(canary) == 6
    # Two results in: below min_results, nothing decided, however bad.
    results(client, d["id"], {canary[0]: False, canary[1]: False})
    d = show(client, d["id"])
    assert d["state"] == "running" and d["phases"][0]["figures"]["failed"] == 2
    assert {canary[0], canary[1]} <= standing(client, CAMDEN) | standing(client, BARNET)  # offered again
    again = {**offers(client, CAMDEN), **offers(client, BARNET)}[canary[0]]
    assert again["attempt"] == 2 and again["active"]
    # A third result: 2 failures of 3 cameras with a result, over 20 %: paused by itself.
    results(client, d["id"], {canary[2]: True})
    d = show(client, d["id"])
    assert d["state"] == "paused" and d["decided_by"] == "central" and "paused by itself: phase 1" in d["decision"]
    assert d["phases"][1]["state"] == "waiting" and d["phases"][1]["figures"]["outstanding"] == 24
    assert standing(client, CAMDEN) | standing(client, BARNET) == set()  # every offer withdrawn (active: false)
    assert client.get("/api/v1/changes/snapshot", headers=CAMDEN).json()["camera_updates"] == []
    assert audit_trail(client, d["id"])[-1] == ("deployment-pause", "central")
    decide(client, d["id"], "pause", 409)
    # Results still count while paused (a camera handed its update before the pause reports it).
    results(client, d["id"], {canary[3]: True})
    assert show(client, d["id"])["phases"][0]["figures"]["updated"] == 2
    # Resumed: the outstanding cameras are offered again, and only what comes after is judged.
    d = decide(client, d["id"], "resume", reason="a bad batch of docks, replaced")
    assert d["state"] == "running"
    assert standing(client, CAMDEN) | standing(client, BARNET) == {canary[0], canary[1], canary[4], canary[5]}
    results(client, d["id"], {canary[0]: True, canary[1]: True}, attempt=2)
    results(client, d["id"], {canary[4]: True}, attempt=1)  # offered its first attempt only
    d = show(client, d["id"])
    assert d["phases"][0]["figures"]["updated"] == 5 and d["phases"][1]["state"] == "waiting"  # 5 of 6 final
    results(client, d["id"], {canary[5]: True}, attempt=1)
    d = show(client, d["id"])
    assert d["phases"][0]["state"] == "done" and d["phases"][1]["state"] == "open"
    assert len(standing(client, CAMDEN) | standing(client, BARNET)) == 24
    assert [a for a, _ in audit_trail(client, d["id"])] == [
        "deployment-create",
        "deployment-phase-open",
        "deployment-pause",
        "deployment-resume",
        "deployment-phase-open",
    ]


def test_the_next_phase_opens_at_ninety_percent_and_the_deployment_completes_when_every_camera_is_final(client):
    release_id = release(client)
    d = create(client, release_id=release_id, phases=[{"boroughs": ["Camden"]}, {"boroughs": ["Barnet"]}])
    assert [p["figures"]["cameras"] for p in d["phases"]] == [20, 10]
    assert standing(client, BARNET) == set() and len(standing(client, CAMDEN)) == 20
    results(client, d["id"], dict.fromkeys(CAMDEN_CAMERAS[:17], True))
    assert show(client, d["id"])["phases"][1]["state"] == "waiting"  # 85 %
    results(client, d["id"], {CAMDEN_CAMERAS[17]: True})  # 90 %: Barnet's wave opens; two stragglers stay offered
    d = show(client, d["id"])
    assert d["phases"][1]["state"] == "open" and d["phases"][0]["state"] == "open"
    assert standing(client, CAMDEN) == set(CAMDEN_CAMERAS[18:]) and standing(client, BARNET) == set(BARNET_CAMERAS)
    results(client, d["id"], dict.fromkeys(BARNET_CAMERAS, True))
    assert show(client, d["id"])["state"] == "running"  # two Camden cameras never docked yet
    results(client, d["id"], dict.fromkeys(CAMDEN_CAMERAS[18:], True))
    d = show(client, d["id"])
    assert d["state"] == "completed" and d["figures"]["updated"] == 30 and d["figures"]["outstanding"] == 0
    assert standing(client, CAMDEN) | standing(client, BARNET) == set()
    send(client, "camden", [docked(s, 2, firmware="1.5.0") for s in CAMDEN_CAMERAS])  # what they run now
    send(client, "barnet", [docked(s, 2, firmware="1.5.0") for s in BARNET_CAMERAS])
    assert create(client, release_id=release_id, expect=409)["message"].startswith("no camera matches")


def hours_ago(c, deployment_id: int, column: str, hours: float) -> None:
    """Move a phase's opening (or its last resume) back in time: the soak ends with the clock."""
    with services(c.app).store.writer.write() as db:
        db.execute(
            f"UPDATE deployment_phases SET {column} = ? WHERE deployment_id = ? AND {column} IS NOT NULL",
            [to_iso(utc_now() - timedelta(hours=hours)), deployment_id],
        )


def advance(c) -> int:
    """What the elected ``deployment-phases`` job does every ``phase_check_seconds``: how many
    deployments it judged (those whose newest phase's soak has ended, a phase still waiting)."""
    return services(c.app).deployments.advance_running()


def test_a_phase_that_soaked_with_enough_good_results_opens_the_next_without_waiting_for_its_stragglers(client):
    release_id = release(client)
    d = create(
        client,
        release_id=release_id,
        phases=[{"share_pct": 50, "min_results": 3, "soak_hours": 72}, {"share_pct": 100}],
    )
    assert d["phases"][0]["soak_hours"] == 72 and d["phases"][1]["soak_hours"] == 72  # the default
    canary = sorted(cameras(client, d["id"], state="offered"))
    assert len(canary) == 15
    results(client, d["id"], dict.fromkeys(canary[:3], True))
    assert advance(client) == 0  # nothing the clock can change yet: not even read
    assert show(client, d["id"])["phases"][1]["state"] == "waiting"  # three results, but not three days yet
    hours_ago(client, d["id"], "opened_at", 73)
    assert advance(client) == 1
    assert advance(client) == 0  # the last phase is open: the clock has nothing left to open
    d = show(client, d["id"])
    assert d["phases"][1]["state"] == "open" and d["phases"][0]["state"] == "open"  # its stragglers stay offered
    assert "phase 2 (100 %) opened after phase 1: soaked 72 h with 3 result(s), 0 with a failure" in d["decision"]
    assert len(standing(client, CAMDEN) | standing(client, BARNET)) == 30 - 3
    # The canary's late results are still judged: failures found after the soak pause everything.
    results(client, d["id"], dict.fromkeys(canary[3:6], False))
    d = show(client, d["id"])
    assert d["state"] == "paused" and "phase 1" in d["decision"]
    assert standing(client, CAMDEN) | standing(client, BARNET) == set()


@pytest.mark.slow  # waits out a soak of a second and the job's interval
def test_the_scheduled_job_opens_the_next_phase_once_the_soak_has_ended(tmp_path, vendor):
    """Through the app's own scheduler and leadership: no result arrives after the soak ends."""
    with serving(tmp_path / "central", vendor, phase_check_seconds=1) as c:
        fleet(c)
        d = create(
            c,
            release_id=release(c),
            phases=[{"share_pct": 50, "min_results": 3, "soak_hours": 1 / 3600}, {"share_pct": 100}],
        )
        canary = sorted(cameras(c, d["id"], state="offered"))
        results(c, d["id"], dict.fromkeys(canary[:3], True))
        deadline = time.monotonic() + 30
        while show(c, d["id"])["phases"][1]["state"] != "open":
            assert time.monotonic() < deadline, "the job never opened phase 2"
            time.sleep(0.1)
        assert "soaked" in show(c, d["id"])["decision"]


def test_one_deployment_that_cannot_be_judged_does_not_hold_the_others_back(client, monkeypatch):
    from central.firmware import deployments

    soaked = [{"share_pct": 50, "min_results": 3, "soak_hours": 1}, {"share_pct": 100}]
    broken = create(client, release_id=release(client), phases=soaked)
    fine = create(client, profiles=True, phases=soaked)
    for d in (broken, fine):
        hours_ago(client, d["id"], "opened_at", 2)
    results(
        client, fine["id"], dict.fromkeys(sorted(cameras(client, fine["id"], state="offered"))[:3], True), version=None
    )
    judge = deployments._advance

    def failing(db, feed, deployment_id, now):
        if deployment_id == broken["id"]:
            raise RuntimeError("a fault in one deployment")
        judge(db, feed, deployment_id, now)

    monkeypatch.setattr(deployments, "_advance", failing)
    with pytest.raises(FleetError, match=f"deployment\\(s\\) {broken['id']} failed"):
        services(client.app).deployments.advance_running()
    assert show(client, fine["id"])["phases"][1]["state"] == "open"


def test_a_resume_restarts_the_soak_and_only_results_after_it_count(client):
    release_id = release(client)
    d = create(
        client,
        release_id=release_id,
        phases=[{"share_pct": 50, "min_results": 3, "soak_hours": 24}, {"share_pct": 100}],
    )
    canary = sorted(cameras(client, d["id"], state="offered"))
    results(client, d["id"], dict.fromkeys(canary[:3], True))
    decide(client, d["id"], "pause", reason="a complaint about the new firmware's clock")
    hours_ago(client, d["id"], "opened_at", 100)
    decide(client, d["id"], "resume", reason="the complaint was about something else")
    results(client, d["id"], dict.fromkeys(canary[3:6], True))
    advance(client)
    assert show(client, d["id"])["phases"][1]["state"] == "waiting"  # resumed just now
    hours_ago(client, d["id"], "resumed_at", 25)
    advance(client)
    d = show(client, d["id"])
    assert d["phases"][1]["state"] == "open" and "soaked 24 h with 3 result(s)" in d["decision"]


def test_the_job_leaves_a_paused_deployment_and_one_made_before_soaks_as_they_are(client):
    d = create(client, release_id=release(client), phases=[{"share_pct": 50, "soak_hours": 1}, {"share_pct": 100}])
    canary = sorted(cameras(client, d["id"], state="offered"))
    results(client, d["id"], dict.fromkeys(canary[:3], True))
    decide(client, d["id"], "pause", reason="a complaint")
    hours_ago(client, d["id"], "opened_at", 100)
    advance(client)
    assert show(client, d["id"])["state"] == "paused" and show(client, d["id"])["phases"][1]["state"] == "waiting"
    with services(client.app).store.writer.write() as db:  # as v28 left a deployment made before it
        db.execute("UPDATE deployment_phases SET soak_hours = NULL WHERE deployment_id = ?", [d["id"]])
    decide(client, d["id"], "resume", reason="the complaint was about something else")
    results(client, d["id"], dict.fromkeys(canary[3:6], True))
    hours_ago(client, d["id"], "resumed_at", 100)
    advance(client)
    shown = show(client, d["id"])
    assert shown["phases"][1]["state"] == "waiting" and shown["phases"][0]["soak_hours"] is None


def test_a_camera_that_keeps_failing_gives_up_and_a_repeated_result_counts_once(client):
    release_id = release(client)
    d = create(
        client,
        release_id=release_id,
        target={"serials": ["BWV-C001", "BWV-C002", "BWV-C003"]},
        phases=[{"share_pct": 100, "max_failure_pct": 100}],
        policy={"max_attempts": 2},
    )
    results(client, d["id"], {"BWV-C001": False})
    results(client, d["id"], {"BWV-C001": False})  # the same attempt again: a repeat
    camera = cameras(client, d["id"])["BWV-C001"]
    assert camera["state"] == "failed" and camera["failures"] == 1 and camera["attempt"] == 2
    assert camera["error"] == "flash verify failed"
    results(client, d["id"], {"BWV-C001": False}, attempt=2)
    assert cameras(client, d["id"])["BWV-C001"]["state"] == "gave_up"
    assert "BWV-C001" not in standing(client, CAMDEN)
    # A camera that says it succeeded but reports another version has failed.
    results(client, d["id"], {"BWV-C002": True}, version="1.4.9")
    assert "runs 1.4.9, not 1.5.0" in cameras(client, d["id"])["BWV-C002"]["error"]
    figures = show(client, d["id"])["figures"]
    assert figures == {"cameras": 3, "updated": 0, "failed": 2, "gave_up": 1, "cancelled": 0, "outstanding": 2}


def test_a_station_reports_only_about_its_own_boroughs_cameras_in_deployments_that_offered_them(client):
    release_id = release(client)
    d = create(client, release_id=release_id, phases=[{"boroughs": ["Camden"]}, {"boroughs": ["Barnet"]}])
    result = CameraUpdateResult(serial="BWV-C001", deployment_id=d["id"], attempt=1, ok=True, version="1.5.0")
    send(client, "barnet", [result])  # Camden's camera, claimed by Barnet
    send(client, "barnet", [CameraUpdateResult(serial="BWV-B001", deployment_id=d["id"], attempt=1, ok=False)])
    send(client, "camden", [CameraUpdateResult(serial="BWV-C001", deployment_id=999, attempt=1, ok=True)])
    assert [(s, k) for s, k, _ in refusals(client)] == [
        ("barnet", "camera_update_result"),
        ("barnet", "camera_update_result"),
        ("camden", "camera_update_result"),
    ]
    reasons = [r for _, _, r in refusals(client)]
    assert "registered to Camden, not to Barnet" in reasons[0]
    assert "has not offered camera BWV-B001 yet" in reasons[1] and "not in deployment 999" in reasons[2]
    assert show(client, d["id"])["figures"]["updated"] == 0


# -- people's decisions ------------------------------------------------------------------------------


def test_abort_cancels_every_outstanding_camera_and_withdraws_the_offers(client):
    release_id = release(client)
    d = create(client, release_id=release_id, phases=[{"share_pct": 50}, {"share_pct": 100}])
    offered = set(cameras(client, d["id"], state="offered"))
    results(client, d["id"], dict.fromkeys(sorted(offered)[:3], True))
    d = decide(client, d["id"], "abort", reason="wrong build")
    assert d["state"] == "aborted" and d["figures"]["updated"] == 3 and d["figures"]["cancelled"] == 27
    assert standing(client, CAMDEN) | standing(client, BARNET) == set()
    decide(client, d["id"], "abort", 409)
    decide(client, d["id"], "resume", 409)
    assert c_decided(client, d["id"]) == "aborted: wrong build"
    assert create(client, release_id=release_id)["state"] == "running"  # the model is free again


def c_decided(c, deployment_id: int) -> str:
    return show(c, deployment_id)["decision"]


def test_rollback_deploys_the_release_the_updated_cameras_came_from(client):
    release_id = release(client)
    d = create(client, release_id=release_id, phases=[{"share_pct": 100, "max_failure_pct": 100}])
    results(client, d["id"], {"BWV-C001": True, "BWV-B002": True, "BWV-C003": False})
    decide(client, d["id"], "rollback", 409)  # running: pause or abort first
    decide(client, d["id"], "pause")
    missing = decide(client, d["id"], "rollback", 409)
    assert "no release of Axon Body 2 1.4.2" in missing["message"]
    previous = release(client, "1.4.2")
    send(client, "camden", [docked("BWV-C001", 2, firmware="1.5.0")])  # central hears what it runs now
    back = decide(client, d["id"], "rollback", 201, reason="users report dropped frames")
    assert back["release"] == {"id": previous, "model": MODEL, "version": "1.4.2"} and back["state"] == "running"
    assert back["rollback_of"] == d["id"] and back["target"] == {"serials": ["BWV-B002", "BWV-C001"]}
    assert show(client, d["id"])["state"] == "rolled_back"
    assert [a for a, _ in audit_trail(client, d["id"])][-1] == "deployment-rollback"
    # BWV-B002 has not docked since (central last heard 1.4.2): its result said it runs 1.5.0, and counts
    assert set(cameras(client, back["id"], state="offered")) == {"BWV-B002", "BWV-C001"}
    assert offers(client, CAMDEN) and offers(client, CAMDEN)["BWV-C003"]["active"] is False


def test_a_profile_deployment_offers_each_cameras_whole_effective_profile(client):
    client.put("/api/v1/profiles/borough:Camden", json={"mount": "head", "pre_record_s": 60}, headers=ADMIN)
    d = create(client, profiles=True, target={"serials": ["BWV-C001", "BWV-B001"]}, phases=[{"share_pct": 100}])
    assert d["kind"] == "profiles" and d["release"] is None
    camden = offers(client, CAMDEN)["BWV-C001"]
    barnet = offers(client, BARNET)["BWV-B001"]
    assert camden["release"] is None and camden["profile"]["mount"] == "head" and camden["profile"]["audio"] is True
    assert barnet["profile"]["mount"] == "shoulder" and barnet["profile"]["pre_record_s"] == 30
    results(client, d["id"], {"BWV-C001": True, "BWV-B001": True}, version=None)
    assert show(client, d["id"])["state"] == "completed"
    assert decide(client, d["id"], "rollback", 409)["message"]


def test_a_camera_offered_by_two_deployments_gets_the_other_offer_back_when_one_ends(client):
    release_id = release(client)
    firmware = create(client, release_id=release_id, target={"serials": ["BWV-C001"]}, phases=[{"share_pct": 100}])
    profiles = create(client, profiles=True, target={"serials": ["BWV-C001"]}, phases=[{"share_pct": 100}])
    assert offers(client, CAMDEN)["BWV-C001"]["deployment_id"] == profiles["id"]  # the newer one replaced it
    decide(client, profiles["id"], "pause")
    item = offers(client, CAMDEN)["BWV-C001"]
    assert item["deployment_id"] == firmware["id"] and item["active"]
    snapshot = client.get("/api/v1/changes/snapshot", headers=CAMDEN).json()["camera_updates"]
    assert [(u["serial"], u["deployment_id"]) for u in snapshot] == [("BWV-C001", firmware["id"])]


def test_cameras_are_listed_a_page_at_a_time(client):
    release_id = release(client)
    d = create(client, release_id=release_id)
    first = client.get(f"{URL}/{d['id']}/cameras", params={"limit": 7}, headers=ADMIN).json()
    assert len(first["items"]) == 7 and first["next_cursor"] == first["items"][-1]["serial"]
    assert len(cameras(client, d["id"], limit=7)) == 30
    assert client.get(f"{URL}/{d['id']}/cameras", params={"limit": 0}, headers=ADMIN).status_code == 400
    assert client.get(f"{URL}/{d['id']}/cameras", params={"state": "x"}, headers=ADMIN).status_code == 400
    assert client.get(f"{URL}/{d['id']}/cameras", params={"cursor": "a\x00"}, headers=ADMIN).status_code == 400
    assert [x["id"] for x in client.get(URL, params={"state": "running"}, headers=ADMIN).json()] == [d["id"]]
    assert client.get(URL, params={"state": "completed"}, headers=ADMIN).json() == []


def test_a_camera_lost_before_its_phase_opens_is_cancelled_not_offered(client):
    release_id = release(client)
    d = create(client, release_id=release_id, phases=[{"boroughs": ["Barnet"]}, {"boroughs": ["Camden"]}])
    lost = client.post(
        "/api/v1/devices/BWV-C005/lifecycle", headers=ADMIN, json={"state": "lost", "reason": "left on a bus"}
    )
    assert lost.status_code == 200, lost.text
    results(client, d["id"], dict.fromkeys(BARNET_CAMERAS, True))
    camera = cameras(client, d["id"])["BWV-C005"]
    assert camera["state"] == "cancelled" and "lost" in camera["error"]
    assert "BWV-C005" not in standing(client, CAMDEN) and len(standing(client, CAMDEN)) == 19


def test_a_vendor_key_is_needed_only_to_add_releases(tmp_path):
    """Profiles deploy with no release key configured."""
    with serving(tmp_path / "c", None) as c:
        fleet(c)
        assert create(c, profiles=True)["figures"]["cameras"] == 30


# -- what other changes end: a release withdrawn, a camera out of service ----------------------------


@pytest.mark.parametrize("paused", [False, True], ids=["running", "paused"])
def test_withdrawing_a_release_aborts_its_deployments_in_the_same_transaction(client, paused):
    release_id = release(client)
    d = create(client, release_id=release_id, phases=[{"share_pct": 50}, {"share_pct": 100}])
    offered = set(cameras(client, d["id"], state="offered"))
    results(client, d["id"], dict.fromkeys(sorted(offered)[:2], True))
    if paused:
        decide(client, d["id"], "pause", reason="looking at the canary")
    assert (standing(client, CAMDEN) | standing(client, BARNET)) == (
        set() if paused else offered - set(sorted(offered)[:2])
    )
    withdrawn = client.post(
        f"/api/v1/firmware/releases/{release_id}/withdraw", json={"reason": "bricks on a cold dock"}, headers=ADMIN
    )
    assert withdrawn.status_code == 200, withdrawn.text
    d = show(client, d["id"])
    assert d["state"] == "aborted" and d["figures"]["updated"] == 2 and d["figures"]["cancelled"] == 28
    assert d["decision"] == f"aborted: release {release_id} withdrawn: bricks on a cold dock"
    assert standing(client, CAMDEN) | standing(client, BARNET) == set()  # no station hands over a 410
    assert audit_trail(client, d["id"])[-1] == ("deployment-abort", "admin")
    camera = next(iter(cameras(client, d["id"], state="cancelled").values()))
    assert camera["error"] == f"aborted: release {release_id} withdrawn: bricks on a cold dock"
    # A result already on its way still counts (a rollback needs to know), and the model is free again.
    late = sorted(offered)[2]
    results(client, d["id"], {late: True})
    assert cameras(client, d["id"])[late]["state"] == "updated"
    assert create(client, release_id=release(client, "1.5.1"))["state"] == "running"


def test_withdrawing_a_release_leaves_other_models_and_finished_deployments_alone(client):
    first = release(client)
    d = create(client, release_id=first, target={"serials": CAMDEN_CAMERAS[:2]}, phases=[{"share_pct": 100}])
    results(client, d["id"], dict.fromkeys(CAMDEN_CAMERAS[:2], True))
    assert show(client, d["id"])["state"] == "completed"
    profiles = create(client, profiles=True, target={"serials": BARNET_CAMERAS[:3]}, phases=[{"share_pct": 100}])
    assert client.post(f"/api/v1/firmware/releases/{first}/withdraw", json={"reason": "x"}, headers=ADMIN).is_success
    assert show(client, d["id"])["state"] == "completed"
    assert show(client, profiles["id"])["state"] == "running" and len(standing(client, BARNET)) == 3


def lifecycle(c, serial: str, state: str, reason: str = "handed in") -> None:
    answer = c.post(f"/api/v1/devices/{serial}/lifecycle", headers=ADMIN, json={"state": state, "reason": reason})
    assert answer.status_code == 200, answer.text


def test_a_camera_lost_retired_or_sent_to_repair_leaves_its_deployments_at_once(client):
    release_id = release(client)
    d = create(client, release_id=release_id, phases=[{"share_pct": 10}, {"share_pct": 100}])
    canary = sorted(cameras(client, d["id"], state="offered"))
    assert len(canary) == 3
    waiting = sorted(cameras(client, d["id"], state="waiting"))
    results(client, d["id"], dict.fromkeys(canary[:2], True))
    assert show(client, d["id"])["phases"][1]["state"] == "waiting"  # 2 of 3: the canary is still open
    lifecycle(client, canary[2], "lost", "left on a bus")
    camera = cameras(client, d["id"])[canary[2]]
    assert camera["state"] == "cancelled" and camera["error"] == "left the target: lost"
    assert canary[2] not in standing(client, CAMDEN) | standing(client, BARNET)
    # Its phase has every camera final now: the next one opened in the same transaction.
    after = show(client, d["id"])
    assert [p["state"] for p in after["phases"]] == ["done", "open"]
    assert ("deployment-camera-cancelled", "admin") in audit_trail(client, d["id"])
    # A camera of the open phase retired, one sent to repair: each out, its offer withdrawn.
    lifecycle(client, waiting[0], "retired")
    lifecycle(client, waiting[1], "repair", "cracked lens")
    states = cameras(client, d["id"])
    assert states[waiting[0]]["error"] == "left the target: retired"
    assert states[waiting[1]]["error"] == "left the target: repair"
    assert not {waiting[0], waiting[1]} & (standing(client, CAMDEN) | standing(client, BARNET))
    assert show(client, d["id"])["figures"]["cancelled"] == 3


def test_a_camera_leaving_a_paused_deployment_is_cancelled_and_nothing_is_offered(client):
    release_id = release(client)
    d = create(client, release_id=release_id, phases=[{"share_pct": 50}, {"share_pct": 100}])
    decide(client, d["id"], "pause", reason="night shift")
    waiting = sorted(cameras(client, d["id"], state="waiting"))[0]
    lifecycle(client, waiting, "repair", "cracked lens")
    assert cameras(client, d["id"])[waiting]["state"] == "cancelled"
    assert show(client, d["id"])["state"] == "paused"
    assert standing(client, CAMDEN) | standing(client, BARNET) == set()
    lifecycle(
        client, sorted(cameras(client, d["id"], state="offered"))[0], "in_stock", "back to stores"
    )  # eligible: stays
    assert show(client, d["id"])["figures"]["cancelled"] == 1


def test_every_lifecycle_state_is_either_eligible_or_departed():
    from central.firmware.deployments import DEPARTED, ELIGIBLE
    from central.registry.lifecycle import LIFECYCLE_STATES

    assert sorted(ELIGIBLE + DEPARTED) == sorted(LIFECYCLE_STATES) and not set(ELIGIBLE) & set(DEPARTED)
