"""/metrics on a real central and a real station: the figures move with real uploads and events, and
every metric the alert rules and the dashboard in deploy/ name is one they serve."""

from __future__ import annotations

import random
import re
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from simulation.camera import dock_camera, random_shift
from simulation.local_cluster import free_port
from tests.e2e.harness import wait_until
from tests.support.promql import exposed_names, metric_names
from tests.test_deploy import alert_rules, dashboard_queries

ROOT = Path(__file__).parents[2]
CENTRAL_SCRAPER = "central-metrics-test-token"  # test values, not secrets
STATION_SCRAPER = "station-metrics-test-token"


def scrape(url: str, token: str) -> str:
    response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10.0)
    assert response.status_code == 200, response.text
    return response.text


def value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_real_processes_count_what_they_did_and_serve_every_metric_deploy_names(make_cluster):
    desk_port = free_port()
    cluster = make_cluster(
        central_tables={"metrics": {"token": CENTRAL_SCRAPER}},
        station_settings={"api_port": desk_port},
        station_tables={"metrics": {"token": STATION_SCRAPER}},
    )
    cluster.start_central()
    cluster.start_station("camden")
    desk = f"http://127.0.0.1:{desk_port}"
    wait_until(lambda: _answers(desk), 30, "the station's desk API", check=cluster.check_alive)

    assert httpx.get(f"{cluster.url}/metrics").status_code == 401
    assert httpx.get(f"{desk}/metrics").status_code == 401
    assert httpx.get(f"{desk}/metrics", headers={"Authorization": f"Bearer {CENTRAL_SCRAPER}"}).status_code == 401

    shift = random_shift(random.Random(5), 3, min_size=1000, max_size=300_000)
    dock_camera(cluster.dock_dir("camden"), "BWV-000001", shift)
    wait_until(
        lambda: cluster.verified([c.clip_id for c in shift]), 60, "the clips verified", check=cluster.check_alive
    )
    size = sum(c.size for c in shift)

    central = wait_until(
        lambda: (
            (t := scrape(cluster.url, CENTRAL_SCRAPER))
            and value(t, "fleet_central_events_applied_total") >= 1
            and value(t, "fleet_central_station_pending_clips", station="camden") == 0
            and t
        ),
        30,
        "central applied the station's events and heard its queue is empty",
        check=cluster.check_alive,
    )
    assert value(central, "fleet_central_uploads_verified_total") == 3
    assert value(central, "fleet_central_upload_verified_bytes_total") == size
    assert value(central, "fleet_central_upload_received_bytes_total") == size
    assert value(central, "fleet_central_events_acknowledged_total") >= 1
    assert value(central, "fleet_central_leader") == 1
    assert value(central, "fleet_central_devices", borough="Camden") == 1
    assert value(central, "fleet_central_station_last_seen_timestamp_seconds", station="camden", borough="Camden") > 0
    assert (
        value(central, "fleet_central_http_requests_total", method="PATCH", route="/api/v1/uploads/{upload_id}")
        + value(central, "fleet_central_http_requests_total", method="POST", route="/api/v1/uploads")
        >= 3
    )
    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", central), "a clip id in a label"
    assert "BWV-000001" not in central, "a serial in a label"

    station = wait_until(
        lambda: (t := scrape(desk, STATION_SCRAPER)) and value(t, "fleet_station_pending_events") == 0 and t,
        30,
        "the station's events acknowledged",
        check=cluster.check_alive,
    )
    assert value(station, "fleet_station_uploads_verified_total") == 3
    assert value(station, "fleet_station_upload_verified_bytes_total") == size
    assert value(station, "fleet_station_clips", state="verified") == 3
    assert value(station, "fleet_station_pending_clips") == 0
    assert value(station, "fleet_station_events_acknowledged_total") >= 1
    assert value(station, "fleet_station_info", station="camden", borough="Camden") == 1
    assert value(station, "fleet_station_data_dir_free_bytes") > 0

    served = exposed_names(central) | exposed_names(station) | {"up"}
    for expr in [rule["expr"] for rule in alert_rules()] + dashboard_queries():
        assert metric_names(expr) <= served, (expr, metric_names(expr) - served)
    documented = set(re.findall(r"`(fleet_\w+)`", (ROOT / "docs" / "metrics.md").read_text()))
    undocumented = {n for n in served if n.startswith("fleet_") and not n.endswith(("_bucket", "_count", "_sum"))}
    assert undocumented <= documented, sorted(undocumented - documented)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def test_each_replica_is_scraped_on_its_own_one_leads_and_the_database_figures_agree(make_cluster):
    cluster = make_cluster(replicas=2, database="postgresql", central_tables={"metrics": {"token": CENTRAL_SCRAPER}})
    cluster.start_central()
    cluster.start_station("camden")
    shift = random_shift(random.Random(6), 2, min_size=1000, max_size=50_000)
    dock_camera(cluster.dock_dir("camden"), "BWV-000002", shift)
    wait_until(
        lambda: cluster.verified([c.clip_id for c in shift]), 60, "the clips verified", check=cluster.check_alive
    )
    urls = [cluster.replica_url(n) for n in (1, 2)]

    def agreed() -> list[str] | None:
        texts = [scrape(url, CENTRAL_SCRAPER) for url in urls]
        leaders = [value(t, "fleet_central_leader") for t in texts]
        seen = [value(t, "fleet_central_devices", borough="Camden") for t in texts]
        return texts if sorted(leaders) == [0, 1] and seen == [1, 1] else None

    texts = wait_until(agreed, 30, "one leader, and both replicas reading the same camera", check=cluster.check_alive)
    # Each replica counts what it received itself: together, every clip once.
    assert sum(value(t, "fleet_central_uploads_verified_total") for t in texts) == 2
    [leader] = [t for t in texts if value(t, "fleet_central_leader") == 1]
    assert value(leader, "fleet_central_events_applied_total") >= 1  # the projection runs on the leader alone
