"""The station's own hot paths never scan a table that grows with its clips and events.

The same check as central's (tests/central/core/test_query_plans.py): every statement a station
runs while ingesting, uploading, sending events and following the feed is checked with
``EXPLAIN QUERY PLAN``. Not checked: migrations, and the status report, whose totals are
counts of every clip by state (one covering-index pass, asked for by people and monitoring,
not per clip).
"""

from datetime import timedelta

import httpx
import pytest

from simulation.camera import SimClip, dock_camera
from station.ingest import Ingestor
from station.sync.changes import FeedFollower
from station.sync.clips import SyncWorker, TusUploader, purge_local_copies
from station.sync.events import EventSender
from tests.central.apps import central_client
from tests.central.conftest import ADMIN, make_settings
from tests.station.conftest import FAST, RECORDED, station_store
from tests.support.query_plans import DML, full_scans, report, trace_every_connection

GROWING = ("clips", "dockings", "outbox", "checkouts", "officers", "devices", "personal_issues", "held_clips")
STATION = {"Authorization": "Bearer camden-test-token"}  # test value, not a secret


@pytest.fixture
def central(tmp_path):
    with central_client(make_settings(tmp_path / "central"), base_url="http://central.local") as client:
        yield client


def test_ingest_upload_events_feed_and_status_read_growing_tables_by_index_only(monkeypatch, tmp_path, central):
    central.post("/api/v1/officers/", headers=ADMIN, json=[{"officer_id": "PC1", "borough": "Camden"}])
    statements = trace_every_connection(monkeypatch, under=tmp_path / "station")
    store = station_store(tmp_path / "station")
    statements.clear()  # the migrations ran once, at opening
    try:
        client = httpx.Client(base_url="http://central.local", transport=central._transport, headers=STATION)
        dock_dir = tmp_path / "dock"
        for n in range(3):
            dock_camera(
                dock_dir,
                f"BWV-{n}",
                [SimClip(2000, RECORDED - timedelta(hours=h), evidential=h == 0) for h in range(2)],
                folder_name=f"cam{n}",
            )
        Ingestor(store, "camden", dock_dir, chunk_bytes=64 * 1024).scan()
        worker = SyncWorker(store, TusUploader(client, store, FAST, chunk_bytes=64 * 1024), FAST)
        assert len(worker.run_once().verified) == 6
        store.queue.next_attempt_at()
        purge_local_copies(store, timedelta(0))
        sender = EventSender(client, store, FAST)
        assert sender.run_once().error is None
        feed = FeedFollower(client, store.mirror, FAST, wait_s=0)
        feed.poll_once()
        feed.poll_once()

        assert len({s for s in statements if DML.match(s)}) > 20  # the trace saw the paths above
        found = full_scans(store.db, statements, GROWING)
        assert not found, report(found)
    finally:
        store.close()
