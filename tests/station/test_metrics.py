"""A station's /metrics on its desk API: who may read it, and its queue read from the database
(tests/e2e/test_metrics.py scrapes a real station after real uploads)."""

from types import SimpleNamespace

import httpx
import pytest
from litestar.testing import TestClient

from fleet.metrics import exposition
from simulation.camera import SimClip, dock_camera
from station.api import create_desk_app
from station.ingest import Ingestor
from station.metrics import StationCollector, StationMetrics
from tests.station.conftest import RECORDED
from tests.station.sync.fake_tus import FakeTus
from tests.station.sync.test_clips import dock, worker
from tests.station.test_status import settings_for
from tests.support.promql import samples, scraped

SCRAPER = {"Authorization": "Bearer station-metrics-test-token"}  # test values, not secrets
DESK = {"Authorization": "Bearer desk-api-test-token"}


def desk(store, tmp_path, **extra) -> TestClient:
    settings = settings_for(store, tmp_path, **extra)
    metrics = StationMetrics()
    metrics.registry.register(StationCollector(settings, store))
    node = SimpleNamespace(settings=settings, store=store, metrics=metrics)
    return TestClient(create_desk_app(node), base_url="http://127.0.0.1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("extra", "allowed", "refused"),
    [
        ({}, [{}], []),  # loopback, no token anywhere: as /status
        ({"api_token": "desk-api-test-token"}, [DESK], [{}, SCRAPER]),
        (
            {"api_token": "desk-api-test-token", "metrics": {"token": "station-metrics-test-token"}},
            [SCRAPER],
            [{}, DESK],
        ),
    ],
)
def test_the_metrics_token_or_else_whoever_may_read_status(store, tmp_path, extra, allowed, refused):
    with desk(store, tmp_path, **extra) as client:
        for headers in allowed:
            assert client.get("/metrics", headers=headers).status_code == 200, headers
        for headers in refused:
            assert client.get("/metrics", headers=headers).status_code == 401, headers


def test_the_queue_its_depth_and_the_age_of_its_oldest_clip(store, tmp_path):
    with desk(store, tmp_path) as client:
        empty = scraped(client.get("/metrics"))
        assert empty[("fleet_station_pending_clips", ())] == 0
        assert not any(name == "fleet_station_oldest_pending_clip_age_seconds" for name, _ in empty)
        assert empty[("fleet_station_metrics_database_up", ())] == 1
        assert empty[("fleet_station_info", (("borough", "Camden"), ("station", "camden")))] == 1
        dock_camera(tmp_path / "dock", "BWV-000001", [SimClip(1000, RECORDED), SimClip(2000, RECORDED)])
        Ingestor(store, "camden", tmp_path / "dock").scan()
        queued = scraped(client.get("/metrics"))
    assert queued[("fleet_station_pending_clips", ())] == 2
    assert queued[("fleet_station_pending_bytes", ())] == 3000
    assert queued[("fleet_station_clips", (("state", "queued"),))] == 2
    assert queued[("fleet_station_oldest_pending_clip_age_seconds", ())] > 3600  # RECORDED is long past
    assert queued[("fleet_station_pending_events", ())] >= 1  # the docking and the ingests


def test_a_closed_database_is_a_gauge_not_a_failed_scrape(store, tmp_path):
    with desk(store, tmp_path) as client:
        store.close()
        down = scraped(client.get("/metrics"))
    assert down[("fleet_station_metrics_database_up", ())] == 0
    assert down[("fleet_station_data_dir_free_bytes", ())] > 0


def test_uploads_refusals_and_retries_are_counted(store, dock_dir):

    dock(store, dock_dir, [SimClip(1000, RECORDED)])
    server = FakeTus()
    server.fault = lambda request: (
        httpx.Response(460, json={"message": "checksum mismatch"}) if request.method == "PATCH" else None
    )
    sync = worker(store, server, concurrency=1)
    sync.metrics = metrics = StationMetrics()
    assert sync.run_once().waiting
    store.db.execute("UPDATE clips SET next_attempt_at = ?", ["2000-01-01T00:00:00Z"])
    server.fault = None
    assert sync.run_once().verified
    figures = samples(exposition(metrics.registry).decode())
    assert figures[("fleet_station_upload_verification_failures_total", ())] == 1
    assert figures[("fleet_station_upload_failures_total", (("outcome", "retried"),))] == 1
    assert figures[("fleet_station_upload_failures_total", (("outcome", "refused"),))] == 0
    assert figures[("fleet_station_uploads_verified_total", ())] == 1
    assert figures[("fleet_station_upload_verified_bytes_total", ())] == 1000
