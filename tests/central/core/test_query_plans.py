"""Central's hot paths never scan a table that grows with the force.

Each statement central runs while stations upload, send events and follow the changes feed
is checked with ``EXPLAIN QUERY PLAN``: none may read a whole growing table. At test sizes
a scan costs nothing, so only the plan can show it; at a month of the Met it is what made
central slower with every clip (``fleet simulate`` found two: clips looked up by an
unindexed ``upload_id``, and ``MIN`` with ``MAX`` of the changes feed in one SELECT).

SQLite's plans only (``sqlite_only``): PostgreSQL's planner chooses by the tables' statistics,
so a plan on a test's few rows says nothing about the Met's; its speed is measured at scale
(``make bench``).
"""

import hashlib
import re
import uuid
from datetime import timedelta

import pytest

from central.core.providers import services
from central.web.evidence_pages import search_clips
from fleet.clock import utc_now
from fleet.events import CameraUpdateOffered, CameraUpdateResult
from tests.central.apps import central_client
from tests.central.conftest import ADMIN, CAMDEN, TUS, checksum, metadata, patch
from tests.central.fleetdata import docked, ingested, out, post
from tests.support.query_plans import DML, full_scans, report, trace_every_connection

GROWING = (
    "clips",
    "uploads",
    "events",
    "changes",
    "devices",
    "battery_readings",
    "audit",
    "attributions",
    "assignments",
    "device_history",
    "holds",
    "case_clips",
    "conflicts",
    "deployment_cameras",
    "firmware_seen",
    "camera_settings",
)
"""Tables with rows per clip, event, camera or change: tens of thousands to millions at the Met."""


@pytest.fixture
def traced(monkeypatch, settings):
    """Central under the test client, with every statement on every connection recorded."""
    statements = trace_every_connection(monkeypatch)
    with central_client(settings, raise_server_exceptions=False) as client:
        statements.clear()  # start-up's own work (recovery, adopting retention rules) runs once, not per clip
        yield client, statements


def upload_whole(client, data: bytes) -> None:
    response = client.post(
        "/api/v1/uploads/",
        content=data,
        headers={
            **CAMDEN,
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": metadata(data),
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": checksum(data),
        },
    )
    assert response.status_code == 201 and response.headers["Fleet-Clip-State"] == "verified", response.text


def upload_in_chunks(client, data: bytes) -> None:
    created = client.post(
        "/api/v1/uploads/",
        headers={**CAMDEN, **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": metadata(data)},
    )
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    half = len(data) // 2
    assert patch(client, location, 0, data[:half]).status_code == 204
    assert client.head(location, headers={**CAMDEN, **TUS}).headers["Upload-Offset"] == str(half)
    assert patch(client, location, half, data[half:]).headers["Fleet-Clip-State"] == "verified"


@pytest.mark.sqlite_only
def test_uploads_events_and_the_feed_read_growing_tables_by_index_only(traced):
    client, statements = traced
    client.post("/api/v1/officers/", headers=ADMIN, json=[{"officer_id": "PC1", "borough": "Camden"}])
    for n in range(3):  # several of everything, so that "the row before" exists for each kind
        upload_whole(client, f"small clip {n}".encode())
        upload_in_chunks(client, hashlib.sha256(str(n).encode()).digest() * 64)
    post(
        client,
        CAMDEN,
        [
            docked("BWV-1", clips=1),
            ingested("BWV-1", -1, str(uuid.uuid4())),
            out("BWV-1", "PC1"),
            docked("BWV-1", 1, clips=0),
            docked("BWV-2", 2),
        ],
    )
    post(client, CAMDEN, [docked("BWV-1", 3, clips=1), ingested("BWV-1", 2.5)], first_seq=6)
    page = client.get("/api/v1/changes/", params={"since": 0}, headers=CAMDEN).json()
    client.get("/api/v1/changes/", params={"since": page["cursor"]}, headers=CAMDEN)

    assert len({s for s in statements if DML.match(s)}) > 30  # the trace saw the paths above
    with services(client.app).store.writer.read() as db:
        found = full_scans(db, statements, GROWING)
    assert not found, report(found)


@pytest.mark.sqlite_only
def test_the_retention_job_deletes_and_purges_a_batch_by_its_index_not_by_scanning(traced):
    """Each batch's UPDATEs and purge list are bounded by the batch's keys along the index that
    listed it. (They once named the batch's ids instead, which SQLite looked up by key but
    PostgreSQL met with a scan of every clip, once a batch: that is measured by ``make bench``,
    ``bench retention``; here, that SQLite reads these statements' rows by index too.)"""
    client, statements = traced
    for n in range(4):
        upload_whole(client, f"clip to expire {n}".encode())
    retention = services(client.app).retention
    later = utc_now() + timedelta(days=400)
    assert retention.run(later).soft_deleted == 4
    assert retention.run(later + timedelta(days=retention.rules().recovery_days + 1)).purged == 4

    batch_writes = [
        s
        for s in statements
        if re.match(
            r"\s*(UPDATE clip_retention (INDEXED BY \w+ )?SET (deleted|purged)_at|INSERT INTO purge_pending)", s
        )
    ]
    assert len(batch_writes) == 3  # the soft deletion's UPDATE, the purge's list and its UPDATE
    with services(client.app).store.writer.write() as db:  # the connection with the job's temporary held_now
        found = full_scans(db, batch_writes, (*GROWING, "clip_retention"))
    assert not found, report(found)


@pytest.mark.sqlite_only
def test_deployment_results_and_offers_read_growing_tables_by_index_only(traced):
    """A station's reports of updates, the phase rules they set off, and the snapshot's offers."""
    client, statements = traced
    serials = [f"BWV-{n}" for n in range(6)]
    post(client, CAMDEN, [docked(s) for s in serials])
    created = client.post(
        "/api/v1/deployments/",
        headers=ADMIN,
        json={"profiles": True, "reason": "plans", "phases": [{"share_pct": 50}, {"share_pct": 100}]},
    )
    assert created.status_code == 201, created.text
    deployment = created.json()["id"]
    offered = [
        c["serial"]
        for c in client.get(
            f"/api/v1/deployments/{deployment}/cameras", params={"state": "offered"}, headers=ADMIN
        ).json()["items"]
    ]
    statements.clear()
    reports: list[CameraUpdateOffered | CameraUpdateResult] = []
    for serial in offered:
        reports.append(CameraUpdateOffered(serial=serial, deployment_id=deployment, attempt=1))
        reports.append(CameraUpdateResult(serial=serial, deployment_id=deployment, attempt=1, ok=True))
    post(client, CAMDEN, reports, first_seq=7)
    assert client.get(f"/api/v1/deployments/{deployment}", headers=ADMIN).json()["phases"][1]["state"] == "open"
    assert client.get("/api/v1/changes/snapshot", headers=CAMDEN).json()["camera_updates"]

    assert len({s for s in statements if DML.match(s)}) > 10
    with services(client.app).store.writer.read() as db:
        found = full_scans(db, statements, GROWING)
    assert not found, report(found)


@pytest.mark.sqlite_only
def test_a_scrape_of_metrics_reads_no_growing_table_but_the_cameras(traced):
    """A scrape every 15 s on every replica: its queries use partial indexes or small tables; the
    one pass it makes is over the cameras (tens of thousands for the Met, never its clips)."""
    client, statements = traced
    client.post("/api/v1/holds", headers=ADMIN, json={"kind": "case", "case_ref": "OP-1", "reason": "op"})
    post(client, CAMDEN, [docked("BWV-1")])
    statements.clear()
    assert client.get("/metrics", headers=ADMIN).status_code == 200
    assert statements, "the trace saw the scrape"
    with services(client.app).store.writer.read() as db:
        found = full_scans(db, statements, [t for t in GROWING if t != "devices"])
    assert not found, report(found)


@pytest.mark.sqlite_only
@pytest.mark.parametrize("within", [None, "Camden"])
def test_the_held_clips_page_reads_growing_tables_by_index_only(traced, within):
    """Every branch of the held set probes by index from its few holds and open requests. The
    branches of the public's open requests once met SQLite's planner scanning every clip by
    station to find the requests (none): 47 ms of the page's 89 at 1,000,000 clips."""
    client, statements = traced
    client.post("/api/v1/holds", headers=ADMIN, json={"kind": "officer", "officer_id": "PC1", "reason": "op"})
    upload_whole(client, b"a clip on the page")
    statements.clear()
    filters = dict.fromkeys(("officer", "device", "recorded_from", "recorded_to", "category"), "")
    search_clips(services(client.app).store, {**filters, "state": "held"}, within, None)

    assert any("keep_requests" in s for s in statements), "the trace saw the held set"
    with services(client.app).store.writer.read() as db:
        found = full_scans(db, statements, GROWING)
    assert not found, report(found)
