"""Central's /metrics: who may scrape it, and the figures moving with real uploads, events and holds
(the app in-process, on each test database; tests/e2e/test_metrics.py scrapes real processes)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from litestar.testing import TestClient

from central.core.app import create_app
from central.core.providers import services
from tests.central.conftest import ADMIN, CAMDEN, create, make_settings, patch
from tests.central.fleetdata import docked, post
from tests.support.promql import scraped

ROOT = Path(__file__).parents[3]
SCRAPER = {"Authorization": "Bearer metrics-test-token"}  # test value, not a secret


def scrape(client, headers=SCRAPER) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return scraped(client.get("/metrics", headers=headers))


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def client(tmp_path):
    settings = make_settings(tmp_path / "central", metrics={"token": "metrics-test-token"})
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def test_the_scraper_token_and_a_force_wide_admin_read_it_nobody_else(client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers=CAMDEN).status_code == 403  # a station's token is no scraper's
    users = services(client.app).users
    users.add("sup", "supervisor", "test")
    users.add("viewer", "viewer", "test")
    for name in ("sup", "viewer"):
        token = users.create_token(name, "t", "test").token
        assert client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 403, name
    assert client.get("/metrics", headers=ADMIN).status_code == 200
    assert client.get("/metrics", headers=SCRAPER).status_code == 200
    # ... and that token opens nothing else
    for path in ("/api/v1/devices", "/api/v1/clips", "/api/v1/stations"):
        assert client.get(path, headers=SCRAPER).status_code == 401, path
    page = client.get("/", headers=SCRAPER, follow_redirects=False)
    assert page.status_code == 302 and page.headers["location"].startswith("/login")


@pytest.mark.slow  # an app of its own: the whole suite, not test-fast
def test_without_a_token_configured_only_an_admin_scrapes(tmp_path):
    with TestClient(create_app(make_settings(tmp_path / "c")), raise_server_exceptions=False) as client:
        assert client.get("/metrics", headers=SCRAPER).status_code == 401
        assert client.get("/metrics", headers=ADMIN).status_code == 200


def test_uploads_bytes_and_checksum_refusals_are_counted(client):
    data = b"x" * 5000
    before = scrape(client)
    location = create(client, data).headers["Location"]
    refused = patch(client, location, 0, data[:1000], **{"Upload-Checksum": "sha256 " + "A" * 43 + "="})
    assert refused.status_code == 460
    assert patch(client, location, 0, data[:1000]).status_code == 204
    assert patch(client, location, 1000, data[1000:]).status_code == 204
    wrong = b"y" * 300
    other = create(client, b"z" * 300).headers["Location"]  # declared as z's: y's SHA-256 cannot match
    assert patch(client, other, 0, wrong).status_code == 460
    after = scrape(client)
    assert (
        value(after, "fleet_central_uploads_verified_total") - value(before, "fleet_central_uploads_verified_total")
        == 1
    )
    assert value(after, "fleet_central_upload_verified_bytes_total") == 5000
    assert value(after, "fleet_central_upload_received_bytes_total") == 5000  # the refused chunk counted nothing
    assert value(after, "fleet_central_upload_verification_failures_total", check="chunk") == 1
    assert value(after, "fleet_central_upload_verification_failures_total", check="file") == 1
    assert value(after, "fleet_central_uploads_in_progress") == 1  # the one reset to 0


def test_routes_are_labelled_by_their_template_never_the_raw_path(client):
    client.get("/api/v1/clips/9b1f0b1e-0000-4000-8000-00000000beef", headers=ADMIN)
    client.get("/api/v1/devices/BWV-SECRET-SERIAL", headers=ADMIN)
    text = client.get("/metrics", headers=SCRAPER).text
    assert "beef" not in text and "SECRET" not in text
    samples = scrape(client)
    assert (
        value(samples, "fleet_central_http_requests_total", method="GET", route="/api/v1/clips/{clip_id}", code="404")
        == 1
    )
    assert (
        value(
            samples,
            "fleet_central_http_request_duration_seconds_count",
            method="GET",
            route="/api/v1/devices/{serial}",
        )
        == 1
    )


def test_events_received_acknowledged_and_applied_and_the_station_seen(client):
    assert post(client, CAMDEN, [docked("BWV-1"), docked("BWV-2", 1)]).status_code == 200
    assert post(client, CAMDEN, [docked("BWV-1"), docked("BWV-2", 1)]).status_code == 200  # the same again
    samples = scrape(client)
    assert value(samples, "fleet_central_events_received_total", outcome="stored") == 2
    assert value(samples, "fleet_central_events_received_total", outcome="duplicate") == 2
    assert value(samples, "fleet_central_events_acknowledged_total") == 2
    assert value(samples, "fleet_central_events_applied_total") == 2
    assert value(samples, "fleet_central_station_last_seen_timestamp_seconds", station="camden", borough="Camden") > 0
    assert value(samples, "fleet_central_station_last_seen_timestamp_seconds", station="barnet", borough="Barnet") == 0
    assert value(samples, "fleet_central_station_events_unapplied", station="camden", borough="Camden") == 0
    assert value(samples, "fleet_central_devices", borough="Camden") == 2
    # Docked at the test data's fixed date, long ago: stale once the health job has looked (it also
    # runs by itself at start-up, so only its result after a run of our own is certain).
    services(client.app).health.run()
    assert value(scrape(client), "fleet_central_devices_flagged", borough="Camden", flag="stale") == 2


@pytest.mark.slow  # an app of its own: the whole suite, not test-fast
def test_battery_flags_are_counted_by_borough(client):
    post(client, CAMDEN, [docked("BWV-1", temp=60.0), docked("BWV-2", 1)])
    services(client.app).health.run()
    samples = scrape(client)
    assert value(samples, "fleet_central_devices_flagged", borough="Camden", flag="over_temp") == 1
    assert value(samples, "fleet_central_devices_flagged", borough="Camden", flag="short_shift") == 0


@pytest.mark.slow  # an app of its own: the whole suite, not test-fast
def test_holds_in_force_by_kind(client):
    for ref in ("OP-1", "OP-2"):
        held = client.post("/api/v1/holds", headers=ADMIN, json={"kind": "case", "case_ref": ref, "reason": "op"})
        assert held.status_code == 201, held.text
    samples = scrape(client)
    assert value(samples, "fleet_central_holds_active", kind="case") == 2
    assert ("fleet_central_holds_active", (("kind", "clip"),)) in samples


def test_jobs_retention_and_the_audit_chain_once_they_run(client):
    app_services = services(client.app)
    scheduler = app_services.scheduler
    for job in ("retention", "verify-audit-chain"):
        scheduler.get_job(job).func()  # as the scheduler calls it, on this thread
    samples = scrape(client)
    assert value(samples, "fleet_central_leader") == 1
    assert value(samples, "fleet_central_job_runs_total", task="retention", outcome="ok") == 1
    assert value(samples, "fleet_central_job_last_success_timestamp_seconds", task="retention") > 0
    assert value(samples, "fleet_central_job_runs_total", task="expire-uploads", outcome="ok") == 0  # declared at 0
    assert value(samples, "fleet_central_audit_chain_intact") == 1
    assert value(samples, "fleet_central_audit_chain_records") > 0
    assert ("fleet_central_retention_deleted_clips_total", (("stage", "purged"),)) in samples
    # every metric central serves is in docs/metrics.md
    documented = set(re.findall(r"`(fleet_central_\w+)`", (ROOT / "docs" / "metrics.md").read_text()))
    exposed = {
        line.split()[2]
        for line in client.get("/metrics", headers=SCRAPER).text.splitlines()
        if line.startswith("# TYPE")
    }
    assert exposed <= documented, sorted(exposed - documented)
    # Prometheus gives every series of a target ``job`` and ``instance``: a metric's own would be renamed
    reserved = [(name, labels) for name, labels in samples if {k for k, _ in labels} & {"job", "instance"}]
    assert not reserved, reserved


@pytest.mark.slow  # an app of its own: the whole suite, not test-fast
def test_refusals_are_counted_by_code_and_lane(tmp_path):
    settings = make_settings(
        tmp_path / "central", metrics={"token": "metrics-test-token"}, limits={"per_client_in_flight": 1}
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        admission = services(client.app).admission
        admission.per_client["other", _client_key(CAMDEN)] = 1  # this station has one request in flight already
        assert client.get("/api/v1/devices", headers=CAMDEN).status_code == 429
        samples = scrape(client)
        assert value(samples, "fleet_central_http_refusals_total", code="429", lane="other") == 1


def _client_key(headers) -> str:
    from central.core.admission import client_of

    return client_of({"headers": [(b"authorization", headers["Authorization"].encode())]})  # type: ignore[arg-type]


@pytest.mark.slow  # an app of its own: the whole suite, not test-fast
def test_a_database_that_does_not_answer_is_a_gauge_not_a_failed_scrape(client):
    store = services(client.app).store
    store.writer.read = _refuse  # type: ignore[method-assign]
    samples = scrape(client)
    assert value(samples, "fleet_central_metrics_database_up") == 0
    assert value(samples, "fleet_central_leader") == 1


def _refuse():
    raise OSError("the database is away")


def test_a_jobs_last_success_is_the_databases_so_a_restart_or_another_replica_forgets_nothing(tmp_path):
    """Before its first run a job reports when it was first scheduled (a fresh install is no alert,
    and one that never succeeds becomes one); after a run, every later process reports that run."""
    settings = make_settings(tmp_path / "central", metrics={"token": "metrics-test-token"})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        first = scrape(client)
        scheduled = value(first, "fleet_central_job_last_success_timestamp_seconds", task="retention")
        assert scheduled > 0
        services(client.app).scheduler.get_job("retention").func()
        ran = value(scrape(client), "fleet_central_job_last_success_timestamp_seconds", task="retention")
        assert ran >= scheduled
        with services(client.app).store.writer.read() as db:
            (replica,) = db.execute("SELECT last_replica FROM job_runs WHERE task = 'retention'").fetchone()
        assert replica == services(client.app).leadership.name
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:  # restarted
        again = scrape(client)
        assert value(again, "fleet_central_job_last_success_timestamp_seconds", task="retention") == ran
        assert value(again, "fleet_central_job_runs_total", task="retention", outcome="ok") == 0  # this process's own


def test_a_failed_run_is_kept_with_its_error_and_leaves_the_last_success_alone(client):
    app_services = services(client.app)
    job = app_services.scheduler.get_job("publish-anchors")
    deadline = time.monotonic() + 30  # the scheduler publishes once at start-up: let that run end first
    while time.monotonic() < deadline:
        with app_services.store.writer.read() as db:
            if db.execute("SELECT last_success_at FROM job_runs WHERE task = 'publish-anchors'").fetchone()[0]:
                break
        time.sleep(0.05)
    else:
        raise AssertionError("the start-up's publishing of the anchors never ended")
    before = value(scrape(client), "fleet_central_job_last_success_timestamp_seconds", task="publish-anchors")
    anchors = Path(app_services.settings.anchors_file)
    anchors.unlink(missing_ok=True)
    (anchors / "in the way").mkdir(parents=True)  # a folder where the file goes: not even root writes it
    with pytest.raises(OSError):
        job.func()
    with app_services.store.writer.read() as db:
        failed_at, error = db.execute(
            "SELECT last_failure_at, last_error FROM job_runs WHERE task = 'publish-anchors'"
        ).fetchone()
    assert failed_at and error
    assert value(scrape(client), "fleet_central_job_last_success_timestamp_seconds", task="publish-anchors") == before
    assert value(scrape(client), "fleet_central_job_runs_total", task="publish-anchors", outcome="failed") == 1  # ours
