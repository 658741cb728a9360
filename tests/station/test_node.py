import logging
import sqlite3

import pytest

from fleet import sqlite as fleet_sqlite
from fleet.config import StationSettings, settings_from_dict
from fleet.errors import FleetError
from fleet.lockfile import FileClaim
from station.node import StationNode
from station.store import StationStore
from station.store.schema import MIGRATIONS
from tests.station.conftest import key_file


def camden(tmp_path, data=None) -> StationSettings:
    """A station whose central is out of reach (port 9), its data in ``data`` or ``tmp_path/data``."""
    return settings_from_dict(
        {
            "station_id": "camden",
            "borough": "Camden",
            "central_url": "http://127.0.0.1:9",
            "token": "t",
            "data_dir": str(data or tmp_path / "data"),
            "dock_dir": str(tmp_path / "dock"),
            "station_key": {"file": key_file(tmp_path)},
        },
        StationSettings,
    )


def test_a_job_meeting_an_unwritable_database_logs_one_line_not_a_traceback_each_run(tmp_path, caplog):
    settings = camden(tmp_path)
    node = StationNode(settings)
    try:
        node.store.db.execute("PRAGMA query_only = ON")  # SQLite's "attempt to write a readonly database"
        with caplog.at_level(logging.INFO):
            node.recover()  # at start-up: a readonly database must not stop the process
            for _ in range(3):
                node.guarded("sync", node.store.queue.recover_interrupted)()
        lines = [r for r in caplog.records if "readonly" in r.getMessage()]
        assert len(lines) == 2 and all(r.exc_info is None for r in lines)  # one for start-up, one for the job
        assert all("station database cannot be written" in r.getMessage() for r in lines)
    finally:
        node.store.db.execute("PRAGMA query_only = OFF")
        node.stop()


def test_a_full_disk_at_start_up_does_not_stop_the_station_a_read_only_database_does(tmp_path, monkeypatch):
    settings = camden(tmp_path)

    def refuse(name, message):
        def probe_write(self):
            exc = sqlite3.OperationalError(message)
            exc.sqlite_errorname = name
            raise exc

        monkeypatch.setattr(StationStore, "probe_write", probe_write)

    refuse("SQLITE_FULL", "database or disk is full")  # purging verified copies makes room: it must run to do so
    StationNode(settings).stop()
    refuse("SQLITE_READONLY", "attempt to write a readonly database")
    with pytest.raises(FleetError, match="station camden not started: station database cannot be written: attempt"):
        StationNode(settings)


def test_a_second_station_process_on_the_same_data_folder_is_refused_until_the_first_stops(tmp_path):
    settings = camden(tmp_path)
    first = StationNode(settings)
    try:
        with pytest.raises(FleetError, match=r"another station process \(.+:\d+\) is running on data folder .*data"):
            StationNode(settings)
        assert first.store.write_problem() is None  # the first is untouched by the refusal
    finally:
        first.stop()
    StationNode(settings).stop()  # once the first has stopped, the folder is free again


def test_a_refused_second_station_leaves_the_running_ones_database_as_it_was(tmp_path):
    """Found by the attack review: the lock was taken after the store had migrated the database."""
    data = tmp_path / "data"
    data.mkdir()
    db = sqlite3.connect(data / "station.db", isolation_level=None)
    fleet_sqlite.migrate(db, MIGRATIONS[:-1])  # the running (older) station's schema
    db.close()
    running = FileClaim(data / "station.lock")
    assert running.try_take("old-station:1")
    settings = camden(tmp_path, data)
    with pytest.raises(FleetError, match=r"another station process \(old-station:1\)"):
        StationNode(settings)
    check = sqlite3.connect(data / "station.db")
    assert check.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) - 1
    check.close()
    running.let_go()
