"""The changes feed: a station sees its borough's changes after its cursor; old cursors resync."""

import threading

import pytest

from central.core.providers import services
from fleet.clock import utc_now
from tests.central.apps import central_client
from tests.central.conftest import ADMIN, BARNET, CAMDEN, central_store, make_settings


def officers(client, *rows):
    r = client.post("/api/v1/officers/", headers=ADMIN, json=list(rows))
    assert r.status_code == 200, r.text
    return r.json()


def feed(client, headers, since=0, **params):
    r = client.get("/api/v1/changes/", params={"since": since, **params}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


KEYS = {"officer": "officer_id", "device": "serial", "personal_issue": "device_serial"}


def kinds(page):
    return [(c["item"]["kind"], c["item"].get(KEYS.get(c["item"]["kind"], ""), "")) for c in page["changes"]]


def test_a_station_sees_its_own_borough_only(client):
    officers(
        client,
        {"officer_id": "PC1", "borough": "Camden", "role": "response"},
        {"officer_id": "PC2", "borough": "Barnet"},
    )
    camden = feed(client, CAMDEN)
    assert ("officer", "PC1") in kinds(camden) and ("officer", "PC2") not in kinds(camden)
    assert ("policy", "") in kinds(camden)  # the borough's station policy, published at start-up
    assert ("officer", "PC2") in kinds(feed(client, BARNET))
    assert feed(client, CAMDEN, since=camden["cursor"])["changes"] == []
    assert client.get("/api/v1/changes/", params={"borough": "Barnet"}, headers=CAMDEN).status_code == 403


def test_an_officer_moving_borough_is_told_to_both(client):
    officers(client, {"officer_id": "PC1", "borough": "Camden"})
    cursor = feed(client, BARNET)["cursor"]
    officers(client, {"officer_id": "PC1", "borough": "Barnet"})
    assert kinds(feed(client, BARNET, since=cursor)) == [("officer", "PC1")]
    latest = feed(client, CAMDEN)["changes"][-1]["item"]
    assert latest["borough"] == "Barnet"  # Camden's mirror learns the officer left


def test_unchanged_officers_make_no_changes(client):
    row = {"officer_id": "PC1", "borough": "Camden"}
    assert officers(client, row)["created"] == 1
    cursor = feed(client, CAMDEN)["cursor"]
    assert officers(client, row) == {"created": 0, "updated": 0, "unchanged": 1}
    assert feed(client, CAMDEN, since=cursor)["changes"] == []


def test_personal_issue_reaches_the_officers_station(client):
    client.post(
        "/api/v1/devices/",
        headers=ADMIN,
        json=[{"serial": "BWV-1", "borough": "Camden", "assignment_mode": "personal"}],
    )
    officers(client, {"officer_id": "PC1", "borough": "Camden"})
    r = client.post("/api/v1/assignments", headers=ADMIN, json={"device_serial": "BWV-1", "officer_id": "PC1"})
    assert r.status_code == 201, r.text
    page = feed(client, CAMDEN)
    assert ("device", "BWV-1") in kinds(page) and ("personal_issue", "BWV-1") in kinds(page)
    ended = client.post("/api/v1/assignments/BWV-1/end", headers=ADMIN, json={"reason": "leaver"})
    assert ended.status_code == 200 and ended.json()["ended_by"] == "admin"
    last = feed(client, CAMDEN, since=page["cursor"])["changes"][-1]["item"]
    assert last == {**last, "kind": "personal_issue", "officer_id": None}


def test_a_cursor_outside_the_history_asks_for_the_snapshot(tmp_path):

    settings = make_settings(tmp_path / "c", fleet={"change_history": 100})
    with central_client(settings, raise_server_exceptions=False) as client:
        officers(client, *({"officer_id": f"PC{i}", "borough": "Camden"} for i in range(300)))
        services(client.app).changes.trim()
        r = client.get("/api/v1/changes/", params={"since": 5}, headers=CAMDEN)
        assert r.status_code == 410 and r.json()["error"] == "cursor_expired"
        assert client.get("/api/v1/changes/", params={"since": 10**9}, headers=CAMDEN).status_code == 410
        snapshot = client.get("/api/v1/changes/snapshot", headers=CAMDEN).json()
        assert len(snapshot["officers"]) == 300 and snapshot["policy"]["assignment_mode"] == "pool"
        assert feed(client, CAMDEN, since=snapshot["cursor"])["changes"] == []


def test_pages_are_bounded_and_say_there_is_more(client):
    officers(client, *({"officer_id": f"PC{i:04d}", "borough": "Camden"} for i in range(2500)))
    seen, cursor, pages = [], 0, 0
    while True:
        page = feed(client, CAMDEN, since=cursor)
        seen += [c["item"].get("officer_id") for c in page["changes"] if c["item"]["kind"] == "officer"]
        cursor, pages = page["cursor"], pages + 1
        if not page["more"]:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 2500


@pytest.mark.slow  # 1-2 s: the whole suite runs it, the quick lane stays under 2 minutes
def test_a_long_poll_returns_when_a_change_arrives(client):
    cursor = feed(client, CAMDEN)["cursor"]
    result = {}

    def wait():
        result["page"] = feed(client, CAMDEN, since=cursor, wait=20)
        result["returned"] = utc_now()

    waiter = threading.Thread(target=wait)
    waiter.start()
    officers(client, {"officer_id": "PC1", "borough": "Camden"})
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert kinds(result["page"]) == [("officer", "PC1")]


@pytest.mark.sqlite_only  # SQLite's plan (EXPLAIN QUERY PLAN); PostgreSQL's answers MIN and MAX from the key's ends
def test_every_long_poll_reads_the_history_bounds_without_scanning_the_feed(tmp_path):
    """``MIN`` and ``MAX`` in one SELECT scan every change (16 ms at 100,000, per poll)."""
    from central.events.changes import HISTORY_SQL

    store = central_store(tmp_path)
    try:
        with store.writer.read() as db:
            plan = [row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + HISTORY_SQL).fetchall()]
    finally:
        store.close()
    assert plan and not any(step.startswith("SCAN changes") for step in plan), plan
