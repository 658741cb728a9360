import errno
from datetime import UTC

import msgspec

from fleet.config import StationSettings, settings_from_dict
from simulation.camera import SimClip, dock_camera
from station.ingest import Ingestor, _os_reason
from station.status import render_status, station_status
from tests.station.conftest import RECORDED


def settings_for(store, tmp_path, **extra):
    return settings_from_dict(
        {
            "station_id": "camden",
            "borough": "Camden",
            "central_url": "http://127.0.0.1:9",
            "token": "t",
            "data_dir": str(store.data_dir),
            "dock_dir": str(tmp_path / "dock"),
            **extra,
        },
        StationSettings,
    )


def test_a_database_that_cannot_be_written_is_in_the_json_and_the_table(store, tmp_path, capsys):
    store.db.execute("PRAGMA query_only = ON")
    try:
        status = station_status(settings_for(store, tmp_path, min_free_bytes=0), store)
    finally:
        store.db.execute("PRAGMA query_only = OFF")
    as_json = msgspec.json.decode(msgspec.json.encode(status))
    assert list(as_json)[-5:] == [
        "problems",
        "upload_window",
        "upload_window_open",
        "bandwidth_limit_mbps",
        "firmware",
    ]  # new keys go last (docs/contracts.md §4)
    assert as_json["problems"] == ["station database cannot be written: attempt to write a readonly database"]
    render_status(status)
    assert "station database cannot be written" in capsys.readouterr().out


def test_a_disk_below_its_reserve_is_low_not_full_and_a_healthy_station_has_no_problem(store, tmp_path):
    huge = 1 << 60
    [line] = station_status(settings_for(store, tmp_path, min_free_bytes=huge), store).problems
    assert line.startswith("disk low: ") and line.endswith(
        f"free in {store.data_dir}, below the reserve of 1048576 TiB (min_free_bytes); "
        "docked cameras keep their clips until there is room"
    )
    assert station_status(settings_for(store, tmp_path, min_free_bytes=0), store).problems == []
    # the probe's write is rolled back: nothing is left behind
    assert store.db.execute("SELECT COUNT(*) FROM meta WHERE key = 'write_probe'").fetchone()[0] == 0


def test_folders_kept_back_for_the_reserve_wait_on_a_low_disk_and_a_failed_write_is_a_full_one(store, tmp_path):
    settings = settings_for(store, tmp_path, min_free_bytes=1 << 60)
    kept_back = dock_camera(tmp_path / "dock", "BWV-000001", [SimClip(1000, RECORDED)])
    Ingestor(store, "camden", tmp_path / "dock", reserve_bytes=settings.min_free_bytes).scan()
    problems = station_status(settings, store).problems
    assert [p.split(":")[0] for p in problems] == ["disk low", "disk low"]
    assert problems[1] == f"disk low: 1 docked folder(s) wait for room: {kept_back.name}"
    # what ingest records when a write meets a full disk
    full = _os_reason(OSError(errno.ENOSPC, "No space left on device", str(store.tmp_dir / "x.part")))
    store.queue.record_bad_folder("BWV-000002-1", full, "sig", transient=True)
    problems = station_status(settings, store).problems
    assert [p.split(":")[0] for p in problems] == ["disk full", "disk full"]
    assert problems[1] == f"disk full: 2 docked folder(s) wait for room: {kept_back.name}, BWV-000002-1"


def test_names_from_the_dock_and_errors_from_central_are_shown_as_text_not_console_markup(store, tmp_path, capsys):
    from datetime import datetime

    from fleet.protocol import ClipTransfer, FailedFolder, StationStatus

    now = datetime(2026, 11, 20, tzinfo=UTC)
    status = StationStatus(
        station_id="camden",
        borough="Camden",
        pending_clips=0,
        pending_bytes=0,
        verified_clips=0,
        last_sync_ok_at=None,
        problems=["disk full: 1 docked folder(s) wait for room: cam[/]"],
        failed_folders=[
            FailedFolder(
                folder="cam[/]", reason="clips/[bold red]x[/].json is missing", first_seen_at=now, last_seen_at=now
            )
        ],
        waiting_clips=[
            ClipTransfer(
                clip_id="c1",
                state="waiting",
                size=1,
                evidential=False,
                recorded_at=now,
                last_error="central said [/link] 503",
            )
        ],
    )
    render_status(status)
    out = capsys.readouterr().out
    for text in ("cam[/]", "[bold red]x[/].json", "[/link] 503"):
        assert text in out
