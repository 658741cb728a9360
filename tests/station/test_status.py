import msgspec

from fleet.config import StationSettings, settings_from_dict
from station.status import render_status, station_status


def settings_for(store, tmp_path, **extra):
    return settings_from_dict({"station_id": "camden", "borough": "Camden", "central_url": "http://c", "token": "t",
                               "data_dir": str(store.data_dir), "dock_dir": str(tmp_path / "dock"), **extra},
                              StationSettings)


def test_a_database_that_cannot_be_written_is_in_the_json_and_the_table(store, tmp_path, capsys):
    store.db.execute("PRAGMA query_only = ON")
    try:
        status = station_status(settings_for(store, tmp_path, min_free_bytes=0), store)
    finally:
        store.db.execute("PRAGMA query_only = OFF")
    as_json = msgspec.json.decode(msgspec.json.encode(status))
    assert list(as_json)[-1] == "problems"  # a new key goes last (contract §4)
    assert as_json["problems"] == ["station database cannot be written: attempt to write a readonly database"]
    render_status(status)
    assert "station database cannot be written" in capsys.readouterr().out


def test_a_disk_below_its_reserve_is_a_problem_and_a_healthy_station_has_none(store, tmp_path):
    huge = 1 << 60
    [line] = station_status(settings_for(store, tmp_path, min_free_bytes=huge), store).problems
    assert line.startswith("disk full: ") and "kept in reserve" in line
    assert station_status(settings_for(store, tmp_path, min_free_bytes=0), store).problems == []
    # the probe's write is rolled back: nothing is left behind
    assert store.db.execute("SELECT COUNT(*) FROM meta WHERE key = 'write_probe'").fetchone()[0] == 0
