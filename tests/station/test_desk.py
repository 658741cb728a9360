"""The desk decides checkouts from the station's own database: central may be down."""

from datetime import timedelta

import msgspec
import pytest
import sqlite_utils

from fleet.clock import utc_now
from fleet.errors import BadRequest, Conflict, NotFound
from fleet.events import CheckedIn, CheckedOut, DeviceEntry, Event, Officer, PersonalIssue, StationPolicy
from simulation.camera import SimClip, dock_camera
from station.desk import Desk, estimate_charge
from station.ingest import Ingestor
from tests.station.conftest import RECORDED, station_store


@pytest.fixture
def mirror(store):
    m = store.mirror
    m.apply(
        [
            Officer(officer_id="PC1001", borough="Camden", role="response"),
            Officer(officer_id="PC1002", borough="Camden", role="neighbourhood"),
            Officer(officer_id="PC1003", borough="Camden", active=False),
            StationPolicy(min_checkout_pct=80, recharge_hours=9),
        ],
        cursor=4,
    )
    return m


@pytest.fixture
def desk(store, mirror):
    return Desk(store, "camden", "Camden")


def dock(store, dock_dir, serial, battery_pct=95.0, clips=()):
    dock_camera(dock_dir, serial, list(clips), battery_pct=battery_pct, folder_name=f"{serial}-{utc_now().timestamp()}")
    Ingestor(store, "camden", dock_dir).scan()


def outbox_events(store) -> list[Event]:
    return [msgspec.json.decode(body, type=Event) for _, _, _, body in store.outbox.events()]


def test_checkout_then_checkin_record_events_in_the_same_transaction(store, desk, dock_dir):
    dock(store, dock_dir, "BWV-1")
    out = desk.checkout("BWV-1", "PC1001", by="sgt-a")
    assert (out.device_serial, out.officer_id) == ("BWV-1", "PC1001") and out.battery_pct >= 95
    back = desk.checkin("BWV-1", by="sgt-b")
    assert back.in_reason == "manual"
    events = outbox_events(store)
    assert [type(e) for e in events[-2:]] == [CheckedOut, CheckedIn]
    assert events[-2].officer_id == "PC1001" and events[-2].by == "sgt-a" and events[-1].by == "sgt-b"
    assert desk.open_checkouts() == []


def test_docking_checks_a_camera_back_in(store, desk, dock_dir):
    dock(store, dock_dir, "BWV-1")
    desk.checkout("BWV-1", "PC1001", by="sgt")
    dock(store, dock_dir, "BWV-1", battery_pct=20, clips=[SimClip(100, RECORDED)])
    assert desk.open_checkouts() == []
    checked_in = [e for e in outbox_events(store) if isinstance(e, CheckedIn)]
    assert [(e.device_serial, e.officer_id, e.reason) for e in checked_in] == [("BWV-1", "PC1001", "docked")]


@pytest.mark.parametrize(
    "case, message",
    [
        ("unknown officer", "not on this station's list"),
        ("inactive officer", "inactive"),
        ("never docked", "dock it first"),
        ("low charge", "pool checkouts need at least 80%"),
        ("camera taken", "already checked out to officer PC1001"),
        ("officer holds one", "already has camera BWV-1"),
        ("personal issue", "personally issued to officer PC1002"),
        ("officer has personal camera", "has personal-issue camera BWV-9"),
        ("device in repair", "in repair"),
        ("personal-mode device", "for personal issue"),
        ("officer moved borough", "now belongs to Barnet"),
        ("bad serial", "not a valid camera serial"),
    ],
)
def test_checkout_refusals_say_why(store, desk, mirror, dock_dir, case, message):
    dock(store, dock_dir, "BWV-1")
    dock(store, dock_dir, "BWV-2")
    serial, officer = "BWV-2", "PC1002"
    if case == "unknown officer":
        officer = "PC9999"
    elif case == "inactive officer":
        officer = "PC1003"
    elif case == "never docked":
        serial = "BWV-3"
    elif case == "low charge":
        dock(store, dock_dir, "BWV-2", battery_pct=40)
    elif case == "camera taken":
        desk.checkout("BWV-2", "PC1001", by="x")
    elif case == "officer holds one":
        desk.checkout("BWV-1", "PC1002", by="x")
    elif case == "personal issue":
        mirror.apply([PersonalIssue(device_serial="BWV-2", officer_id="PC1002", since=RECORDED)], cursor=5)
        officer = "PC1001"
    elif case == "officer has personal camera":
        mirror.apply([PersonalIssue(device_serial="BWV-9", officer_id="PC1002", since=RECORDED)], cursor=5)
    elif case == "device in repair":
        mirror.apply([DeviceEntry(serial="BWV-2", lifecycle="repair", borough="Camden")], cursor=5)
    elif case == "officer moved borough":
        mirror.apply([Officer(officer_id="PC1002", borough="Barnet")], cursor=5)
    elif case == "bad serial":
        serial = "BWV 2\n"
    elif case == "personal-mode device":
        mirror.apply([DeviceEntry(serial="BWV-2", lifecycle="in_service", assignment_mode="personal")], cursor=5)
    before = store.outbox.last_seq()
    with pytest.raises((BadRequest, Conflict, NotFound), match=message):
        desk.checkout(serial, officer, by="x")
    assert store.outbox.last_seq() == before  # a refusal writes nothing


def test_charge_grows_while_docked():
    policy = StationPolicy(recharge_hours=10)
    docked = RECORDED
    assert estimate_charge(30, docked, docked, policy) == 30
    assert estimate_charge(30, docked, docked + timedelta(hours=5), policy) == pytest.approx(80)
    assert estimate_charge(30, docked, docked + timedelta(hours=20), policy) == 100
    assert estimate_charge(None, docked, docked, policy) is None


def test_a_low_camera_becomes_available_after_charging(store, desk, dock_dir):
    dock(store, dock_dir, "BWV-1", battery_pct=35)
    with pytest.raises(Conflict, match="charged to about 35%"):
        desk.checkout("BWV-1", "PC1001", by="x")
    later = utc_now() + timedelta(hours=5)  # 35% + 5h × 100/9 %/h ≈ 90%
    assert desk.checkout("BWV-1", "PC1001", by="x", now=later).battery_pct == pytest.approx(90.6, abs=0.5)


def test_checkin_of_a_camera_not_out_is_refused(desk):
    with pytest.raises(NotFound, match="not checked out"):
        desk.checkin("BWV-1", by="x")


def test_camera_must_dock_again_after_a_manual_checkin(store, desk, dock_dir):
    dock(store, dock_dir, "BWV-1")
    desk.checkout("BWV-1", "PC1001", by="x")
    desk.checkin("BWV-1", by="x")
    with pytest.raises(Conflict, match="dock it first"):
        desk.checkout("BWV-1", "PC1002", by="x")


def test_status_reports_checkouts_events_and_the_mirror(store, desk, dock_dir):
    from fleet.config import StationSettings, settings_from_dict
    from station.status import station_status

    dock(store, dock_dir, "BWV-1")
    desk.checkout("BWV-1", "PC1001", by="x")
    settings = settings_from_dict(
        {
            "station_id": "camden",
            "borough": "Camden",
            "central_url": "http://127.0.0.1:9",
            "token": "t",
            "data_dir": str(store.data_dir),
            "dock_dir": str(dock_dir),
        },
        StationSettings,
    )
    status = station_status(settings, store)
    assert status.checked_out == 1 and status.pending_events == 2 and status.acked_event_seq == 0
    assert status.feed_cursor == 4 and status.mirrored == {"officers": 3, "devices": 0, "personal_issues": 0}


def test_ids_typed_with_spaces_are_trimmed_everywhere(store, desk, dock_dir):
    dock(store, dock_dir, "BWV-1")
    desk.checkout(" BWV-1 ", " PC1001\n", by="x")
    back = desk.checkin("BWV-1 \n", by="x")
    assert back.device_serial == "BWV-1" and desk.open_checkouts() == []
    assert {
        (e.device_serial, e.officer_id) for e in outbox_events(store) if isinstance(e, (CheckedOut, CheckedIn))
    } == {("BWV-1", "PC1001")}


def test_a_station_clock_stepping_back_does_not_hide_a_fresh_docking(store, desk, dock_dir):
    dock(store, dock_dir, "BWV-1")
    ahead = utc_now() + timedelta(hours=3)  # the clock was fast, then corrected
    desk.checkout("BWV-1", "PC1001", by="x", now=ahead)
    dock(store, dock_dir, "BWV-1")  # docked back (and checked in) at the corrected, earlier time
    assert desk.charge("BWV-1") is not None
    assert desk.checkout("BWV-1", "PC1002", by="x").officer_id == "PC1002"
    desk.checkin("BWV-1", by="x")
    with pytest.raises(Conflict, match="dock it first"):  # still: out since its last docking
        desk.checkout("BWV-1", "PC1001", by="x", now=utc_now() - timedelta(hours=5))


def test_checkouts_made_before_v4_learn_the_docking_they_came_from(tmp_path):
    from fleet import sqlite
    from station.store.schema import MIGRATIONS

    (tmp_path / "data").mkdir()
    db = sqlite.open_database(tmp_path / "data" / "station.db")
    sqlite.migrate(db, MIGRATIONS[:3])
    for row_id, at in ((1, "2026-11-20T08:00:00Z"), (2, "2026-11-20T12:00:00Z")):
        sqlite_utils.Database(db)["dockings"].insert(
            {
                "id": row_id,
                "folder": f"f{row_id}",
                "device_serial": "BWV-1",
                "ingested_at": at,
                "clip_count": 0,
                "device_json": "{}",
            }
        )
    sqlite_utils.Database(db)["checkouts"].insert(
        {
            "device_serial": "BWV-1",
            "officer_id": "PC1",
            "out_at": "2026-11-20T09:00:00Z",
            "out_by": "x",
            "in_at": "2026-11-20T11:00:00Z",
        }
    )
    db.close()
    store = station_store(tmp_path / "data")
    try:
        with store.writer.read() as conn:
            assert conn.execute("SELECT docking_id FROM checkouts").fetchall() == [(1,)]
        assert Desk(store, "camden").charge("BWV-1").docking_id == 2  # docked since
    finally:
        store.close()


def dock_pack(store, dock_dir, serial, *, full=2900, design=3000, temp=30.0, level=95.0):
    from fleet.protocol import Battery

    pack = Battery(level_pct=level, full_charge_mah=full, design_mah=design, temperature_c=temp)
    dock_camera(dock_dir, serial, [], battery=pack, folder_name=f"{serial}-{utc_now().timestamp()}")
    Ingestor(store, "camden", dock_dir).scan()


@pytest.mark.parametrize(
    "pack, why",
    [
        ({"full": 2400}, "will not last a 10-hour shift (about 9.6 h on a full charge)"),
        ({"full": 2300}, "due for replacement (77% of design capacity, below 80%)"),
        ({"temp": 52.0}, "over temperature when docked (52 °C, above 45 °C)"),
    ],
)
def test_the_battery_gate_refuses_an_unfit_pack_and_names_one_that_is_ready(store, desk, dock_dir, pack, why):
    dock_pack(store, dock_dir, "BWV-READY")
    dock_pack(store, dock_dir, "BWV-WORN", **pack)
    with pytest.raises(Conflict) as refused:
        desk.checkout("BWV-WORN", "PC1001", by="sgt")
    message = str(refused.value)
    assert why in message
    assert "take another camera instead (ready now: BWV-READY)" in message
    assert "a supervisor may hand this one out with a reason" in message
    assert desk.open_checkouts() == [] and not [e for e in outbox_events(store) if isinstance(e, CheckedOut)]


def test_a_supervisor_overrides_the_battery_gate_with_a_reason_that_goes_to_central(store, desk, dock_dir):
    dock_pack(store, dock_dir, "BWV-WORN", full=2000)
    with pytest.raises(Conflict, match="no other camera here is ready now"):
        desk.checkout("BWV-WORN", "PC1001", by="sgt")
    with pytest.raises(Conflict):  # a blank reason is no reason
        desk.checkout("BWV-WORN", "PC1001", by="sgt", override="   ")
    desk.checkout("BWV-WORN", "PC1001", by="sgt", override="last camera left; spare battery issued")
    [sent] = [e for e in outbox_events(store) if isinstance(e, CheckedOut)]
    assert sent.override == "last camera left; spare battery issued"
    dock_pack(store, dock_dir, "BWV-FIT")
    desk.checkout("BWV-FIT", "PC1002", by="sgt", override="not needed")  # a fit camera carries no override
    assert [e.override for e in outbox_events(store) if isinstance(e, CheckedOut)] == [sent.override, None]


def test_the_gate_never_overrides_the_charge(store, desk, dock_dir):
    dock_pack(store, dock_dir, "BWV-FLAT", level=30.0)
    with pytest.raises(Conflict, match="charged to about 30%"):
        desk.checkout("BWV-FLAT", "PC1001", by="sgt", override="urgent")


def test_the_gate_uses_centrals_thresholds(store, desk, mirror, dock_dir):
    dock_pack(store, dock_dir, "BWV-1", full=2400)  # 9.6 h: short of a 10-hour shift
    mirror.apply([StationPolicy(min_checkout_pct=80, shift_hours=8, replace_below_soh_pct=70)], cursor=5)
    assert desk.checkout("BWV-1", "PC1001", by="sgt").device_serial == "BWV-1"


def test_the_rack_is_the_checkouts_rules_camera_by_camera(store, desk, mirror, dock_dir):
    """Each pool camera docked here as ``checkout`` would judge it now; personal-issue ones are not the pool's."""
    for serial in ("BWV-OUT", "BWV-BACK", "BWV-REPAIR", "BWV-MINE", "BWV-FREE"):
        dock(store, dock_dir, serial)
    desk.checkout("BWV-OUT", "PC1001", by="sgt")
    desk.checkout("BWV-BACK", "PC1002", by="sgt")
    desk.checkin("BWV-BACK", by="sgt")
    mirror.apply(
        [
            DeviceEntry(serial="BWV-REPAIR", lifecycle="repair", borough="Camden"),
            PersonalIssue(device_serial="BWV-MINE", officer_id="PC1002", since=RECORDED),
        ],
        cursor=5,
    )
    rack = {s.serial: (s.state, s.officer_id) for s in desk.rack()}
    assert rack == {
        "BWV-FREE": ("available", None),
        "BWV-REPAIR": ("unavailable", None),
        "BWV-BACK": ("undocked", None),
        "BWV-OUT": ("out", "PC1001"),
    }
    assert desk.ready() == ["BWV-FREE"]


@pytest.mark.slow  # the command line opens the station's store as an operator's run does
def test_the_command_line_names_its_flag_for_the_override(tmp_path, capsys):
    from fleet.cli import main
    from tests.station.conftest import key_file

    (tmp_path / "dock").mkdir()
    config = tmp_path / "station.toml"
    config.write_text(
        'station_id = "camden"\nborough = "Camden"\ncentral_url = "http://127.0.0.1:9"\ntoken = "t"\n'
        f'data_dir = "data"\ndock_dir = "dock"\n[station_key]\nfile = "{key_file(tmp_path)}"\n'
    )
    store = station_store(tmp_path / "data")
    try:
        store.mirror.apply([Officer(officer_id="PC1001", borough="Camden"), StationPolicy()], cursor=1)
        dock_pack(store, tmp_path / "dock", "BWV-WORN", full=2300)
    finally:
        store.close()
    assert main(["station", "checkout", "BWV-WORN", "PC1001", "--config", str(config)]) == 2
    assert (
        capsys.readouterr()
        .err.rstrip()
        .endswith("a supervisor may hand this one out with a reason (--override-reason)")
    )
