"""A run of events of one kind is applied as a whole (a few statements, not a few per event), with
the effects of applying its events one by one in seq order."""

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central.core.providers import services
from central.events.projection import Applied, in_runs
from central.evidence import audit
from central.registry import attribution, devices, docking
from fleet.clock import to_iso
from fleet.events import CameraDocked
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


def test_a_cameras_latest_clip_moves_once_a_transaction_as_its_runs_would_move_it(client):
    # Clips of a camera central has not heard of move no camera's latest clip (there is none); its
    # first docking registers it, and only the clips after that count. Each camera's latest clip
    # is moved at the end of the transaction, as the runs one by one would have left it.
    post(
        client,
        CAMDEN,
        [ingested("NEW", 5), docked("NEW", 6, clips=1), ingested("NEW", 1.5), docked("OLD", 6, clips=2)],
        hours=[6, 6, 6, 6],
    )
    later = [ingested("OLD", 2), docked("OLD", 7, clips=1), ingested("OLD", 4)]
    post(client, CAMDEN, later, first_seq=5, hours=[7] * 3)
    latest = dict(read(client, "SELECT serial, last_clip_at FROM devices ORDER BY serial"))
    assert latest == {"NEW": to_iso(at(1.5)), "OLD": to_iso(at(4))}
    assert read(client, "SELECT count(*) FROM attributions") == [(4,)]


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


SETUP = {
    "camden": [(0, docked("A1", 0)), (0, docked("A2", 0))],
    "kentish": [(0, docked("K1", 0))],
    "barnet": [(0, docked("B1", 0))],
}
"""Cameras registered before the events below, so that whose each camera is does not depend on
which station is applied first. (Where two stations claim the same, the first applied has it: any
order of the stations is right, so below the first claim comes first either way.)"""
STATIONS_EVENTS = {
    "barnet": [
        (1, docked("X", 1)),  # Camden's station docks it too, in the same run: the first applied registers it
        (2, docked("B1", 2, clips=2)),
        (2.1, ingested("B1", 0.5, "b1-one")),
        (2.2, ingested("A1", 0.6, "barnet-says-a1")),  # Camden's camera: refused (applied first of barnet's)
        (2.3, ingested("B1", 1.5, "b1-two")),
    ],
    "camden": [
        (1, out("A1", "PC1")),
        (1.5, docked("X", 1.5)),
        (3, docked("A1", 3, clips=2)),  # ends PC1's checkout
        (3.1, ingested("A1", 2.0, "a1-during")),
        (3.2, ingested("A1", 3.5, "a1-after")),
        (3.3, ingested("A2", 2.5, "reported-twice")),
        (3.4, docked("A2", 3.4, clips=1, level=40)),
        (0.5, docked("A2", 0.5, level=10)),  # back-dated by hours: refused by the station's clock
        (3.5, ingested("A2", 3.2, "a2-one")),
    ],
    "kentish": [
        (1, docked("K1", 1, clips=1)),
        (1.1, ingested("K1", 0.5, "k1-one")),
        (2, out("K1", "PC1")),  # PC1 holds A1 at camden then: a conflict
        (4, docked("A1", 4)),  # a camera docks at another station of its borough
        (4.1, ingested("A2", 2.5, "reported-twice")),  # camden reported it before: refused
        (5, back("K1", "PC1")),
    ],
}


def _final_state(data_dir, limit: int, stations_events=STATIONS_EVENTS) -> dict[str, list]:
    """Central's state after SETUP, then ``stations_events``, each applied ``limit`` events a transaction."""
    import msgspec

    from central.events.changes import ChangeLog
    from central.events.log import EventLog
    from central.events.projection import Projector
    from fleet.events import EventBatch, EventEnvelope
    from tests.central.conftest import make_settings
    from tests.support.databases import BACKEND

    settings = make_settings(data_dir)
    store = central_store(data_dir)
    try:
        log = EventLog(store.writer, Projector(settings.fleet, ChangeLog(store.writer, settings)))
        seqs = dict.fromkeys(SETUP, 0)
        for events in (SETUP, stations_events):
            for station, evs in events.items():
                if not evs:
                    continue
                envelopes = [EventEnvelope(seq=seqs[station] + i, at=at(h), event=e) for i, (h, e) in enumerate(evs, 1)]
                seqs[station] += len(evs)
                sent = max(e.at for e in envelopes)
                borough = "Barnet" if station == "barnet" else "Camden"
                log.ingest(station, borough, msgspec.json.encode(EventBatch(sent_at=sent, events=envelopes)))
            while log.apply_pending(limit=limit):
                pass
        tables = {
            "devices": "SELECT serial, model, firmware, lifecycle, borough, home_station, registered_by, "
            "last_docked_at, last_station, last_clip_at, telemetry, battery_soh, battery_level, flag_short_shift, "
            "flag_capacity_drop FROM devices ORDER BY serial",
            "battery_readings": "SELECT serial, at, station_id, level_pct FROM battery_readings "
            "ORDER BY serial, at, station_id",
            "attributions": "SELECT clip_id, device_serial, recorded_at, station_id, officer_id FROM attributions "
            "ORDER BY clip_id",
            "ingest_claims": "SELECT clip_id, station_id, claim_seq, claim_station_at, claim_size, claim_sha256 "
            "FROM attributions WHERE claim_seq IS NOT NULL ORDER BY clip_id",
            "assignments": "SELECT device_serial, officer_id, mode, started_at, ended_at, station_id, ended_by, "
            "end_reason FROM assignments ORDER BY device_serial, started_at",
            "conflicts": "SELECT kind, borough, device_serial, officer_id, detail FROM conflicts ORDER BY detail",
            "refusals": "SELECT station_id, seq, kind, subject, reason, station_at FROM station_refusals "
            "ORDER BY station_id, seq",
            "stations": "SELECT station_id, acked_seq, applied_seq, latest_at FROM stations ORDER BY station_id",
            # Each record's place in its object's own history (the stations' records interleave).
            "history": "SELECT serial, actor, place, from_state, to_state, reason FROM device_history ORDER BY id",
            "audit": "SELECT object_id, actor, place, action, detail FROM audit ORDER BY id",
            "changes": "SELECT key, borough, kind, body FROM changes ORDER BY cursor",
        }
        with store.writer.read() as db:
            state = {name: [tuple(r) for r in db.execute(sql).fetchall()] for name, sql in tables.items()}
        assert audit.verify_database(store.writer).intact
    finally:
        store.close()
        BACKEND.release(data_dir)
    for name in ("history", "audit", "changes"):  # by object, each in its own order
        state[name] = sorted(state[name], key=lambda r: r[0])  # a stable sort keeps each object's order
    return state


def test_stations_applied_together_end_as_applied_one_event_at_a_time(tmp_path):
    """A transaction applies every station's events together (``projection.merged_runs``): the
    state is the one of applying them one event a transaction, station after station."""
    together = _final_state(tmp_path / "together", limit=10_000)
    one_by_one = _final_state(tmp_path / "one", limit=1)
    assert together == one_by_one
    refused = {(r[0], r[1]) for r in together["refusals"]}
    assert refused == {("barnet", 5), ("camden", 4), ("camden", 10), ("kentish", 6)}, together["refusals"]
    assert [c[0] for c in together["conflicts"]] == ["officer_two_cameras"]


def test_a_camera_new_to_central_docked_at_two_boroughs_in_one_run_is_the_first_ones():
    """Two stations' dockings of a camera never heard of, in one statement: the first registers it,
    the other borough's is refused, as when applied one after the other."""
    import tempfile
    from pathlib import Path

    both = {"barnet": [(1, docked("NEW", 1))], "camden": [(1, docked("NEW", 1)), (1.1, docked("A1", 1.1))]}
    with tempfile.TemporaryDirectory() as tmp:
        together = _final_state(Path(tmp) / "together", 10_000, both)
        one_by_one = _final_state(Path(tmp) / "one", 1, both)
    assert together == one_by_one
    assert [r[:4] for r in together["refusals"]] == [("camden", 3, "camera_docked", "NEW")]


def test_two_runs_in_one_transaction_naming_the_same_clip_attribute_it_once(tmp_path):
    """The insert skips a clip its transaction's earlier statements attributed, and says which rows it made."""
    store = central_store(tmp_path / "central")
    clip = str(uuid.uuid4())
    row = {"clip": clip, "serial": "A", "at": "2026-01-01T00:00:00.000000Z", "station": "camden"}
    try:
        with store.writer.write() as db:
            docking.record(db, [_docking("A")], [])
            assert attribution.attribute_ingested(db, [row]) == {clip}
            other = str(uuid.uuid4())
            again = attribution.attribute_ingested(db, [{**row, "station": "barnet"}, {**row, "clip": other}])
            assert again == {other}
            found = db.execute("SELECT station_id FROM attributions WHERE clip_id = ?", [clip]).fetchall()
            assert [r[0] for r in found] == ["camden"]
            assert db.execute("SELECT count(*) FROM attributions").fetchone()[0] == 2
    finally:
        store.close()


def test_a_backlog_of_dockings_hours_apart_is_judged_in_the_stations_order(client):
    # A station's backlog after an outage: A docks at 1 h and again at 3 h, then B first docks at
    # 5 h. Put in runs, A's second docking must not be judged after B's (the station's clock
    # would take 5 h, then 3 h, for a back-dated event and refuse A's docking).
    post(client, CAMDEN, [docked("A", 1), docked("A", 3), docked("B", 5)], hours=[1, 3, 5])
    post(
        client,
        CAMDEN,
        [docked("C", 7), ingested("C", 7.5), docked("C", 9), docked("D", 10)],
        first_seq=4,
        hours=[7, 8, 9, 10],
    )
    assert read(client, "SELECT count(*) FROM station_refusals") == [(0,)]
    readings = read(client, "SELECT serial, count(*) FROM battery_readings GROUP BY serial ORDER BY serial")
    assert readings == [("A", 2), ("B", 1), ("C", 2), ("D", 1)]


@pytest.mark.sqlite_only  # no database
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ABC"), st.booleans()), max_size=30))
def test_runs_keep_each_cameras_order_and_the_dockings_order(events):
    applied = [
        Applied(
            station="camden",
            borough="Camden",
            seq=seq,
            at=to_iso(at(seq)),
            event=docked(serial, seq) if is_docking else ingested(serial, seq),
        )
        for seq, (serial, is_docking) in enumerate(events, start=1)
    ]
    ordered = in_runs(applied)
    assert sorted(a.seq for a in ordered) == [a.seq for a in applied]
    docking_seqs = [a.seq for a in ordered if isinstance(a.event, CameraDocked)]
    assert docking_seqs == sorted(docking_seqs)
    for camera in "ABC":
        own = [
            a.seq
            for a in ordered
            if getattr(a.event, "device_serial", None) == camera
            or (isinstance(a.event, CameraDocked) and a.event.device.serial == camera)
        ]
        assert own == sorted(own)
