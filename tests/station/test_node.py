import logging
import sqlite3

from fleet.config import StationSettings, settings_from_dict
from station.node import StationNode


def test_a_job_meeting_an_unwritable_database_logs_one_line_not_a_traceback_each_run(tmp_path, caplog):
    settings = settings_from_dict({"station_id": "camden", "borough": "Camden", "central_url": "http://c",
                                   "token": "t", "data_dir": str(tmp_path / "data"),
                                   "dock_dir": str(tmp_path / "dock")}, StationSettings)
    node = StationNode(settings)
    try:
        node.store.db.execute("PRAGMA query_only = ON")  # SQLite's "attempt to write a readonly database"
        with caplog.at_level(logging.INFO):
            node.recover()  # at start-up: a readonly database must not stop the process
            for _ in range(3):
                node.guarded("sync", node.store.recover_interrupted)()
        lines = [r for r in caplog.records if "readonly" in r.getMessage()]
        assert len(lines) == 2 and all(r.exc_info is None for r in lines)  # one for start-up, one for the job
        assert all("station database cannot be written" in r.getMessage() for r in lines)
    finally:
        node.store.db.execute("PRAGMA query_only = OFF")
        node.client.close()
        node.feed_client.close()
        node.store.close()
