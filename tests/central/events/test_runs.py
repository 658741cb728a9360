"""A run of events of one kind is applied as a whole (a few statements, not a few per event), with
the effects of applying its events one by one in seq order."""

import uuid

from central.core.providers import services
from central.evidence import audit
from central.registry import attribution, devices, docking
from fleet.clock import to_iso
from tests.central.conftest import ADMIN, CAMDEN, central_store
from tests.central.fleetdata import at, back, docked, ingested, out, post


def read(client, sql, params=()):
    with services(client.app).store.writer.read() as db:
        return [tuple(r) for r in db.execute(sql, list(params)).fetchall()]


def owner(client, clip_id):
    return client.get(f"/api/v1/clips/{clip_id}/attribution", headers=ADMIN).json()["officer_id"]


def test_a_run_of_clips_is_attributed_to_each_holder_and_moves_each_cameras_latest_clip_to_its_max(client):
    post(client, CAMDEN, [docked("A"), docked("B"), out("A", "PC1"), back("A", "PC1")], hours=[0, 0, 1, 3])
    a_hours = [2.5, 1.5, 7.5, 0.5, 3.5, 2]  # out of order: the latest is in the middle of the run
    a_clips = [ingested("A", h) for h in a_hours]
    b_clips = [ingested("B", h) for h in (6, 4)]
    post(
        client,
        CAMDEN,
        [docked("A", 8, clips=6), docked("B", 8, clips=2), *a_clips, *b_clips],
        first_seq=5,
        hours=[8] * 10,
    )
    assert [owner(client, c.clip_id) for c in a_clips] == ["PC1", "PC1", None, None, None, "PC1"]
    assert [owner(client, c.clip_id) for c in b_clips] == [None, None]
    latest = dict(read(client, "SELECT serial, last_clip_at FROM devices ORDER BY serial"))
    assert latest == {"A": to_iso(at(7.5)), "B": to_iso(at(6))}

    # Earlier clips, and one reported again, never move a camera's latest clip back or its owner.
    post(client, CAMDEN, [ingested("A", 1), ingested("A", 2.5, clip_id=a_clips[2].clip_id)], first_seq=15, hours=[9, 9])
    assert dict(read(client, "SELECT serial, last_clip_at FROM devices"))["A"] == to_iso(at(7.5))
    assert read(client, "SELECT recorded_at FROM attributions WHERE clip_id = ?", [a_clips[2].clip_id]) == [
        (to_iso(at(7.5)),)
    ]
    assert read(client, "SELECT count(*) FROM attributions") == [(9,)]


def test_a_run_of_dockings_registers_finds_and_audits_each_camera_in_order(client):
    client.post("/api/v1/devices/", headers=ADMIN, json=[{"serial": "LOST", "borough": "Camden"}])
    client.post("/api/v1/devices/LOST/lifecycle", headers=ADMIN, json={"state": "lost", "reason": "test"})
    client.post("/api/v1/devices/", headers=ADMIN, json=[{"serial": "ALLOC", "borough": "Camden"}])
    post(
        client,
        CAMDEN,
        [docked("NEW-2"), docked("LOST", clips=1), docked("NEW-1", clips=1), docked("ALLOC", clips=1)],
    )
    history = read(
        client,
        "SELECT serial, from_state, to_state, reason FROM device_history WHERE actor = 'dock:camden' ORDER BY id",
    )
    assert history == [
        ("NEW-2", None, "issued", "first seen docked"),
        ("NEW-1", None, "in_service", "first seen docked"),
        ("ALLOC", "allocated", "in_service", "docked with clips"),  # by serial, as found
        ("LOST", "lost", "in_service", "found: docked with clips"),
    ]
    trail = read(client, "SELECT action, object_id, detail FROM audit WHERE actor = 'dock:camden' ORDER BY id")
    assert trail == [
        ("register", "NEW-2", "issued, borough Camden: first seen docked"),
        ("register", "NEW-1", "in_service, borough Camden: first seen docked"),
        ("lifecycle", "ALLOC", "allocated → in_service: docked with clips"),
        ("lifecycle", "LOST", "lost → in_service: found: docked with clips"),
    ]
    told = [
        (c["item"]["serial"], c["item"]["lifecycle"])
        for c in client.get("/api/v1/changes/", headers=CAMDEN).json()["changes"]
        if c["item"]["kind"] == "device"
    ]
    assert told[-4:] == [("NEW-2", "issued"), ("NEW-1", "in_service"), ("ALLOC", "in_service"), ("LOST", "in_service")]
    assert audit.verify_database(services(client.app).store.writer).intact


def test_a_run_of_uploads_reported_moves_each_cameras_last_upload_to_its_latest(tmp_path):
    store = central_store(tmp_path / "central")
    clip = {serial: [str(uuid.uuid4()) for _ in range(3)] for serial in ("A", "B")}
    try:
        with store.writer.write() as db:
            docking.record(db, [_docking(serial) for serial in ("A", "B")], [])
            attribution.record_ingested(
                db,
                [
                    {"clip": c, "serial": serial, "at": "2026-01-01T00:00:00.000000Z", "station": "camden"}
                    for serial, clips in clip.items()
                    for c in clips
                ],
            )
            devices.record_uploads(
                db,
                [
                    {"clip": clip["A"][0], "at": "2026-01-02T10:00:00.000000Z"},
                    {"clip": clip["A"][1], "at": "2026-01-02T12:00:00.000000Z"},
                    {"clip": clip["B"][0], "at": "2026-01-02T09:00:00.000000Z"},
                    {"clip": clip["A"][2], "at": "2026-01-02T11:00:00.000000Z"},
                    {"clip": str(uuid.uuid4()), "at": "2026-01-03T00:00:00.000000Z"},  # no such clip: nothing
                ],
            )
            devices.record_uploads(db, [{"clip": clip["B"][1], "at": "2026-01-02T08:00:00.000000Z"}])  # never back
        with store.writer.read() as db:
            seen = dict(db.execute("SELECT serial, last_upload_at FROM devices").fetchall())
        assert seen == {"A": "2026-01-02T12:00:00.000000Z", "B": "2026-01-02T09:00:00.000000Z"}
    finally:
        store.close()


def _docking(serial: str) -> docking.Docking:
    return {
        "serial": serial,
        "model": "Axon Body 2",
        "firmware": "1.0",
        "borough": "Camden",
        "station": "camden",
        "by": "dock:camden",
        "now": "2026-01-01T00:00:00.000000Z",
        "docked_at": "2026-01-01T00:00:00.000000Z",
        "clips": 0,
        "telemetry": "{}",
        "soh": None,
        "cycles": None,
        "temp": None,
        "level": None,
        "short": 0,
        "hot": 0,
        "drop": 5.0,
    }


def test_dockings_of_one_camera_in_one_call_keep_the_latest_telemetry_whatever_their_order(tmp_path):
    """One statement may not meet a camera twice: a camera that comes again is in the next one."""
    store = central_store(tmp_path / "central")
    times = ["2026-01-01T02:00:00.000000Z", "2026-01-01T01:00:00.000000Z", "2026-01-01T03:00:00.000000Z"]
    dockings = [_docking("A") for _ in times]
    for i, (d, t) in enumerate(zip(dockings, times, strict=True)):
        d["docked_at"], d["telemetry"], d["level"] = t, t, float(i)
    try:
        with store.writer.write() as db:
            assert docking.record(db, [dockings[0], _docking("B"), *dockings[1:]], []) == ["A", "B"]
        with store.writer.read() as db:
            row = db.execute("SELECT last_docked_at, telemetry, battery_level FROM devices WHERE serial = 'A'")
            assert tuple(row.fetchone()) == (times[2], times[2], 2.0)
    finally:
        store.close()
