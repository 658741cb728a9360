import sqlite3

import pytest

from fleet import sqlite
from fleet.errors import FleetError
from station.store import StationStore
from station.store.schema import MIGRATIONS


def test_a_command_that_only_reads_never_upgrades_the_database_under_the_running_station(tmp_path):
    """`fleet station status` of a newer program must not migrate the file its older station runs on."""
    data = tmp_path / "data"
    data.mkdir()
    db = sqlite.open_database(data / "station.db")
    sqlite.migrate(db, MIGRATIONS[:-1])  # the running station is one version behind this program
    db.close()

    with pytest.raises(FleetError, match=rf"at schema v{len(MIGRATIONS) - 1}, this program reads v{len(MIGRATIONS)}"):
        StationStore.for_reading(data)

    check = sqlite3.connect(data / "station.db")
    assert check.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) - 1
    check.close()
    assert sorted(p.name for p in data.iterdir()) == ["station.db"]  # no folder created, nothing left open


def test_a_reading_command_still_sees_whether_the_station_could_write(tmp_path):
    StationStore(tmp_path / "data").close()
    store = StationStore.for_reading(tmp_path / "data")
    try:
        assert store.write_problem() is None
        assert store.queue.summary()["failed_clips"] == []
    finally:
        store.close()
