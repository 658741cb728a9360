"""Events: stored by (station, seq), applied once in seq order, acknowledged gap-free."""

import msgspec
import pytest

from central.core.providers import services
from central.events.log import ProjectionWorker
from tests.central.apps import central_client
from tests.central.conftest import ADMIN, BARNET, CAMDEN, KENTISH
from tests.central.fleetdata import at, back, batch, docked, ingested, out, post


def count(client, table: str) -> int:
    with services(client.app).store.writer.read() as db:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_a_batch_is_stored_applied_and_acknowledged(client):
    r = post(client, CAMDEN, [docked("BWV-1", clips=1), ingested("BWV-1", -1)])
    assert r.status_code == 200, r.text
    assert r.json() == {"acked_seq": 2, "stored": 2, "duplicates": 0}
    device = client.get("/api/v1/devices/BWV-1", headers=ADMIN).json()
    assert device["device"]["lifecycle"] == "in_service" and device["device"]["last_station"] == "camden"
    assert device["device"]["borough"] == "Camden" and device["device"]["battery_soh_pct"] == 2900 / 3000 * 100
    assert [p["level_pct"] for p in device["battery"]] == [90]
    assert device["telemetry"]["serial"] == "BWV-1"


def test_a_resent_batch_is_recognised_and_not_applied_twice(client):
    body = batch([docked("BWV-1"), docked("BWV-1", 1)])
    first = client.post("/api/v1/events/", content=body, headers=CAMDEN)
    again = client.post("/api/v1/events/", content=body, headers=CAMDEN)
    assert first.json()["acked_seq"] == again.json()["acked_seq"] == 2
    assert again.json() == {"acked_seq": 2, "stored": 0, "duplicates": 2}
    services(client.app).events.apply_all()  # applying follows acknowledgement (the projection worker)
    assert count(client, "battery_readings") == 2


def test_gaps_hold_the_acknowledgement_until_filled(client):
    assert post(client, CAMDEN, [docked("A"), docked("B")]).json()["acked_seq"] == 2
    assert post(client, CAMDEN, [docked("D"), docked("E")], first_seq=4).json()["acked_seq"] == 2
    assert client.get("/api/v1/devices/D", headers=ADMIN).status_code == 404  # stored, not applied yet
    assert post(client, CAMDEN, [docked("C")], first_seq=3).json()["acked_seq"] == 5
    assert client.get("/api/v1/devices/E", headers=ADMIN).status_code == 200


def test_each_station_has_its_own_sequence(client):
    assert post(client, CAMDEN, [docked("A")]).json()["acked_seq"] == 1
    assert post(client, BARNET, [docked("B")]).json()["acked_seq"] == 1
    events = services(client.app).events
    assert events.events("camden")[0][0] == events.events("barnet")[0][0] == 1


def test_a_reused_seq_with_other_content_is_refused(client):
    post(client, CAMDEN, [docked("A")])
    r = post(client, CAMDEN, [docked("Z")])
    assert r.status_code == 409 and "database replaced" in r.json()["message"]


def test_unknown_event_kinds_are_kept_but_not_applied(client):
    body = (
        b'{"sent_at":"2026-11-20T14:00:00Z","events":[{"seq":1,"at":"2026-11-20T14:00:00Z",'
        b'"event":{"kind":"firmware_flashed","version":"2.0"}}]}'
    )
    r = client.post("/api/v1/events/", content=body, headers=CAMDEN)
    assert r.json()["acked_seq"] == 1
    assert services(client.app).events.events("camden")[0][1] == "firmware_flashed"


@pytest.mark.parametrize("kind", ["x\u0000y", "Firmware Flashed!", "k" * 65])
def test_an_unknown_kind_that_cannot_be_a_kind_is_kept_as_unknown_on_both_engines(client, kind):
    """Kept, acknowledged, not applied, like any unknown kind; stored as "unknown" (its body keeps
    the station's spelling): a NUL there was a 400 at every resend on PostgreSQL."""
    event = msgspec.json.encode({"kind": kind, "version": "2.0"})
    body = b'{"sent_at":"2026-11-20T14:00:00Z","events":[{"seq":1,"at":"2026-11-20T14:00:00Z","event":' + event + b"}]}"
    r = client.post("/api/v1/events/", content=body, headers=CAMDEN)
    assert r.status_code == 200 and r.json()["acked_seq"] == 1
    [(seq, stored_kind, _at, stored_body)] = services(client.app).events.events("camden")
    assert (seq, stored_kind, stored_body) == (1, "unknown", event)


def test_bad_batches_are_refused_clearly(client):
    for body, fragment in [
        (b"not json", "event batch"),
        (b'{"sent_at":"2026-11-20T14:00:00Z","events":[{"seq":0,"at":"2026-11-20T14:00:00Z","event":{}}]}', ">= 1"),
        (batch([docked("A"), docked("B")])[:-3] + b"}]}", "event batch"),
        (
            b'{"sent_at":"2026-11-20T14:00:00Z","events":[{"seq":1,"at":"2026-11-20T14:00:00Z",'
            b'"event":{"kind":"checked_out","device_serial":"A"}}]}',
            "officer_id",
        ),
    ]:
        r = client.post("/api/v1/events/", content=body, headers=CAMDEN)
        assert r.status_code == 400, (body, r.text)
        assert fragment in r.json()["message"]
    out_of_order = msgspec.json.decode(batch([docked("A"), docked("B")]))
    out_of_order["events"].reverse()
    r = client.post("/api/v1/events/", content=msgspec.json.encode(out_of_order), headers=CAMDEN)
    assert r.status_code == 400 and "seq order" in r.json()["message"]


def test_only_stations_send_events(client):
    assert post(client, ADMIN, [docked("A")]).status_code == 403


def test_a_heartbeat_reports_the_backlog(client):
    body = msgspec.json.encode(
        {
            "sent_at": "2026-11-20T14:00:00Z",
            "events": [],
            "backlog": {
                "pending_clips": 7,
                "pending_bytes": 7000,
                "oldest_pending_recorded_at": "2026-11-20T10:00:00Z",
            },
        }
    )
    assert client.post("/api/v1/events/", content=body, headers=CAMDEN).json()["acked_seq"] == 0
    camden = client.get("/api/v1/stations/camden", headers=ADMIN).json()
    assert camden["pending_clips"] == 7 and camden["last_seen_at"] is not None and not camden["stale"]
    assert camden["oldest_pending_recorded_at"].startswith("2026-11-20T10:00")
    assert client.get("/api/v1/stations/barnet", headers=ADMIN).json()["stale"]  # never heard from


def test_officer_with_two_cameras_at_two_stations_is_a_conflict(client):
    post(client, CAMDEN, [docked("A"), out("A", "PC1")])
    post(client, BARNET, [docked("B"), out("B", "PC1")])
    conflicts = client.get("/api/v1/conflicts", headers=ADMIN).json()
    assert [c["kind"] for c in conflicts] == ["officer_two_cameras"]
    assert "PC1" in conflicts[0]["detail"] and "barnet" in conflicts[0]["detail"]
    held = client.get("/api/v1/assignments", params={"officer_id": "PC1", "active": True}, headers=ADMIN).json()
    assert {a["device_serial"] for a in held} == {"A", "B"}  # both kept: nothing silently dropped
    resolved = client.post(
        f"/api/v1/conflicts/{conflicts[0]['id']}/resolve", headers=ADMIN, json={"resolution": "B was a spare, returned"}
    )
    assert resolved.json()["resolved_by"] == "admin"
    assert client.get("/api/v1/conflicts", headers=ADMIN).json() == []


def test_docking_ends_a_pool_checkout_even_at_another_station(client):
    post(client, CAMDEN, [docked("A"), out("A", "PC1")], hours=[0, 1])
    post(client, KENTISH, [docked("A", 9)], hours=[9])
    [a] = client.get("/api/v1/assignments", params={"device_serial": "A"}, headers=ADMIN).json()
    assert a["ended_at"].startswith(at(9).isoformat()[:16]) and a["end_reason"] == "docked"


def test_checkin_closes_the_checkout_with_the_station_time(client):
    post(client, CAMDEN, [docked("A"), out("A", "PC1"), back("A", "PC1")], hours=[0, 1, 8])
    [a] = client.get("/api/v1/assignments", params={"device_serial": "A"}, headers=ADMIN).json()
    assert a["started_at"].startswith("2026-11-20T15:00") and a["ended_at"].startswith("2026-11-20T22:00")
    trail = client.get("/api/v1/devices/A", headers=ADMIN).json()["audit"]
    assert [t["action"] for t in trail] == ["check-in", "check-out", "register"] and trail[0]["place"] == "camden"


def test_acknowledged_events_are_applied_after_a_crash_before_projection(settings):
    """Acknowledged means stored: if central dies before applying, the restart applies them."""

    from tests.central.fleetdata import batch

    with central_client(settings) as client, pytest.MonkeyPatch.context() as patch:
        services(client.app).events.pending.clear()
        patch.setattr(services(client.app).events, "apply_pending", lambda limit=2000: 0)  # the projection never runs
        r = client.post("/api/v1/events/", content=batch([docked("A"), docked("B")]), headers=CAMDEN)
        assert r.json()["acked_seq"] == 2
        assert client.get("/api/v1/devices/A", headers=ADMIN).status_code == 404
    with central_client(settings) as client:  # the restart
        from tests.e2e.harness import wait_until

        wait_until(
            lambda: client.get("/api/v1/devices/B", headers=ADMIN).status_code == 200,
            10,
            "the projection worker catching up",
        )
        assert client.get("/api/v1/stations/camden", headers=ADMIN).json()["applied_seq"] == 2


def test_numbers_beyond_sqlite_integers_are_refused_not_crashed_on(client):
    body = (
        b'{"sent_at":"2026-11-20T14:00:00Z","events":[{"seq":99999999999999999999999,'
        b'"at":"2026-11-20T14:00:00Z","event":{"kind":"bad_folder","folder":"a","reason":"b"}}]}'
    )
    assert client.post("/api/v1/events/", content=body, headers=CAMDEN).status_code == 400
    r = client.post("/api/v1/conflicts/99999999999999999999999/resolve", headers=ADMIN, json={"resolution": "x"})
    assert r.status_code == 400
    assert client.post("/api/v1/devices/", headers=ADMIN, json=[{"serial": "A", "borough": ""}]).status_code == 400


@pytest.mark.parametrize("a_first", [True, False])
@pytest.mark.parametrize("b_hours, expected", [((9, 17), ["officer_two_cameras"]), ((14, 18), [])])
def test_conflicts_are_judged_on_intervals_whatever_order_stations_report(client, a_first, b_hours, expected):
    def a():
        post(client, CAMDEN, [docked("A"), out("A", "PC1"), back("A", "PC1")], hours=[0, 8, 12 if not expected else 18])

    def b():
        post(client, BARNET, [docked("B"), out("B", "PC1"), back("B", "PC1")], hours=[0, *b_hours])

    for report in (a, b) if a_first else (b, a):
        report()
    assert [c["kind"] for c in client.get("/api/v1/conflicts", headers=ADMIN).json()] == expected


def test_a_checkout_reported_after_a_later_docking_is_closed_by_it(client):
    post(client, CAMDEN, [docked("A", 0.5)], hours=[0.5])
    post(client, KENTISH, [docked("A", 6)], hours=[6])
    post(client, CAMDEN, [out("A", "PC1")], first_seq=2, hours=[1])  # camden was offline; A docked at kentish since
    [a] = client.get("/api/v1/assignments", params={"device_serial": "A"}, headers=ADMIN).json()
    assert a["end_reason"] == "docked" and a["ended_at"].startswith(at(6).isoformat()[:16])
    assert client.get("/api/v1/devices/A", headers=ADMIN).json()["device"]["holder"] is None


def test_a_camera_clock_in_the_future_does_not_freeze_its_telemetry(client):
    wrong = docked("A", 24 * 365, full=2950)  # the camera thinks it is next year
    post(client, CAMDEN, [wrong], hours=[0])
    post(client, KENTISH, [docked("A", 5, full=2650, temp=31)], first_seq=1, hours=[5])
    device = client.get("/api/v1/devices/A", headers=ADMIN).json()["device"]
    assert device["last_station"] == "kentish" and device["battery_soh_pct"] == pytest.approx(2650 / 30)


def test_a_camera_held_twice_is_listed_once_with_its_latest_holder(client):
    post(client, CAMDEN, [docked("A"), out("A", "PC1")], hours=[0, 1])
    post(client, KENTISH, [docked("A", 0.5), out("A", "PC2")], hours=[0.5, 2])  # kentish's clock, an hour slow
    [conflict] = client.get("/api/v1/conflicts", headers=ADMIN).json()
    assert conflict["kind"] == "camera_two_officers"
    items = client.get("/api/v1/devices/", headers=ADMIN).json()["items"]
    assert [(d["serial"], d["holder"]) for d in items] == [("A", "PC2")]
    r = client.post(f"/api/v1/conflicts/{conflict['id']}/resolve", headers=ADMIN, json={"resolution": "swapped"})
    assert r.status_code == 200 and r.json()["resolution"] == "swapped"


def test_oversized_backlog_numbers_are_a_400(client):
    body = b'{"sent_at":"2026-11-20T14:00:00Z","events":[],"backlog":{"pending_bytes":99999999999999999999}}'
    assert client.post("/api/v1/events/", content=body, headers=CAMDEN).status_code == 400


def test_a_station_goes_stale_after_its_hours_of_silence(client):
    from datetime import timedelta

    from fleet.clock import utc_now

    body = msgspec.json.encode({"sent_at": "2026-11-20T14:00:00Z", "events": []})
    assert client.post("/api/v1/events/", content=body, headers=CAMDEN).status_code == 200
    hours = services(client.app).settings.fleet.stale_station_hours
    health = services(client.app).health

    def stale_at(moment) -> list[str]:
        stale = health.run(now=moment).stale_stations
        assert stale is not None
        return stale

    now = utc_now()
    assert "camden" not in stale_at(now + timedelta(hours=hours - 0.1))
    assert "camden" in stale_at(now + timedelta(hours=hours + 0.1))
    assert "barnet" in stale_at(now)  # never heard from
    stations = {s.station_id: s for s in services(client.app).stations.all(now + timedelta(hours=hours + 0.1))}
    assert stations["camden"].stale and stations["camden"].last_seen_at is not None


def test_a_clip_id_too_long_to_index_is_refused_at_the_door_and_stops_no_other_station(client):
    """PostgreSQL cannot index a key of kilobytes; a bounded clip id is refused with its batch (400),
    and another station's events are applied as ever."""
    long_id = "x" * 4000
    r = post(client, CAMDEN, [docked("BWV-1"), ingested("BWV-1", -1, clip_id=long_id)])
    assert r.status_code == 400 and "clip_id" in r.json()["message"]
    assert post(client, BARNET, [docked("BWV-2")]).status_code == 200
    services(client.app).events.apply_all()
    assert client.get("/api/v1/devices/BWV-2", headers=ADMIN).json()["device"]["last_docked_at"]


def test_the_projection_sizes_its_transactions_by_their_time():
    """Twice as many events while a full transaction is quick, half when one is slow, within bounds."""
    worker, quick, slow = ProjectionWorker, ProjectionWorker.TRANSACTION_S / 2, ProjectionWorker.TRANSACTION_S * 3
    assert worker.next_batch(400, 400, quick) == 800
    assert worker.next_batch(400, 100, quick) == 400  # the backlog ran out: says nothing of a larger one
    assert worker.next_batch(400, 400, worker.TRANSACTION_S * 1.5) == 400  # about right
    assert worker.next_batch(400, 400, slow) == worker.next_batch(400, 10, slow) == 200
    assert worker.next_batch(worker.BATCH_MAX, worker.BATCH_MAX, quick) == worker.BATCH_MAX
    assert worker.next_batch(worker.BATCH_MIN, worker.BATCH_MIN, slow) == worker.BATCH_MIN
    # Once stations are quiet, longer transactions: sized against their own aim.
    assert worker.next_batch(400, 400, slow, worker.QUIET_TRANSACTION_S) == 800


@pytest.mark.slow
def test_batches_sent_at_once_are_each_acknowledged_gap_free_and_applied_once(settings):
    """Stations send at once, each station's batches racing their own resends, while the projection
    worker applies: every event is acknowledged gap-free, applied exactly once, none refused."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.e2e.harness import wait_until

    boroughs, batches, size = {"camden": "Camden", "kentish": "Camden", "barnet": "Barnet"}, 20, 10
    bodies = {
        station: [
            batch([docked(f"{station}-{first + n}", (first + n) / 100) for n in range(size)], first)
            for first in range(1, batches * size, size)
        ]
        for station in boroughs
    }
    total = batches * size
    with central_client(settings) as client:
        events = services(client.app).events

        def send_all(station: str) -> list[int]:
            return [events.ingest(station, boroughs[station], body).acked_seq for body in bodies[station]]

        with ThreadPoolExecutor(2 * len(boroughs)) as pool:
            acks = list(pool.map(send_all, [*boroughs, *boroughs]))  # each station's batches twice, at once
        for acked in acks:
            assert acked == sorted(acked) and acked[-1] == total  # never back, and to the last seq
        wait_until(
            lambda: all(s["applied_seq"] == total for s in client.get("/api/v1/stations/", headers=ADMIN).json()),
            60,
            "the projection worker applying every station's events",
        )
        assert count(client, "events") == count(client, "battery_readings") == total * len(boroughs)
        assert count(client, "station_refusals") == 0
        stations = {s["station_id"]: s for s in client.get("/api/v1/stations/", headers=ADMIN).json()}
        assert all(stations[station]["acked_seq"] == total for station in boroughs)


@pytest.mark.slow
@pytest.mark.postgresql_only
def test_a_batch_is_acknowledged_while_another_replica_holds_the_write_lock(client):
    """An acknowledgement writes only its station's row and events: it does not wait for central's
    serialised writes (the projection, the audit chain), on this replica or another."""
    import psycopg

    from central.core import database

    url = services(client.app).store.url
    assert url is not None
    with psycopg.connect(url, autocommit=True) as other:
        other.execute("BEGIN")
        other.execute("SELECT pg_advisory_xact_lock(%s)", [database.WRITE_LOCK])
        r = client.post("/api/v1/events/", content=batch([docked("A"), docked("B")]), headers=CAMDEN)
        assert r.status_code == 200 and r.json()["acked_seq"] == 2, r.text  # else 503 after lock_timeout
        other.execute("COMMIT")
    services(client.app).events.apply_all()
    assert client.get("/api/v1/stations/camden", headers=ADMIN).json()["applied_seq"] == 2
