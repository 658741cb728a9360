"""The projection pipelined on PostgreSQL: central's own trouble mid-run (a killed connection, a lock
that does not come) is never a refusal, nothing is applied twice or lost, and the writer's next
transaction runs on a connection out of pipeline mode."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import pq

from central.core import database
from central.core.providers import services
from central.events.projection import Projector
from tests.central.conftest import ADMIN, BARNET, CAMDEN
from tests.central.fleetdata import batch, docked


def _send(client, headers, events, first_seq: int = 1) -> None:
    r = client.post("/api/v1/events/", content=batch(events, first_seq), headers=headers)
    assert r.status_code == 200, r.text


def _refused(client) -> int:
    with services(client.app).store.writer.read() as db:
        return db.execute("SELECT count(*) FROM station_refusals").fetchone()[0]


def _readings(client) -> int:
    with services(client.app).store.writer.read() as db:
        return db.execute("SELECT count(*) FROM battery_readings").fetchone()[0]


@pytest.fixture
def client(applied_by_the_test):
    """The test applies the events itself (``conftest.applied_by_the_test``)."""
    return applied_by_the_test


def _handler_that(monkeypatch, then):
    """The docking handler, ``then(db, run)`` called after it."""
    docked_handler = Projector._handlers[type(docked("X"))]
    assert docked_handler is not None

    def handler(self, db, run):
        docked_handler(self, db, run)
        then(db, run)

    monkeypatch.setitem(Projector._handlers, type(docked("X")), handler)


def _writer_out_of_pipeline(client) -> None:
    writer = services(client.app).store.writer
    with writer.write() as db:
        assert db.raw.pgconn.pipeline_status == pq.PipelineStatus.OFF
        assert db._pipe is None
        db.execute("SELECT 1").fetchone()


@pytest.mark.slow
@pytest.mark.postgresql_only
@pytest.mark.parametrize("where", ["first", "last"])
def test_the_writer_killed_mid_run_refuses_nothing_and_the_next_run_applies_all(client, monkeypatch, where):
    url = services(client.app).store.url
    assert url is not None
    killed: list[int] = []

    def kill(db, run):
        if killed:
            return
        pid = db.raw.info.backend_pid
        with psycopg.connect(url, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [pid])
        killed.append(pid)
        if where == "first":  # statements sent after the kill, unread
            db.execute("UPDATE devices SET firmware = firmware WHERE serial = ?", [run[0].event.device.serial])

    _handler_that(monkeypatch, kill)
    _send(client, CAMDEN, [docked(f"C-{i}", i / 10) for i in range(300)])
    _send(client, BARNET, [docked(f"B-{i}", i / 10) for i in range(300)])
    events = services(client.app).events
    with pytest.raises(Exception) as failed:
        events.apply_pending(limit=600)
    assert database.trouble(failed.value) == "broken", repr(failed.value)
    assert killed and _refused(client) == 0 and _readings(client) == 0
    assert events.apply_all() == 600
    assert _refused(client) == 0 and _readings(client) == 600
    _writer_out_of_pipeline(client)


@pytest.mark.slow
@pytest.mark.postgresql_only
@pytest.mark.parametrize("then", ["nothing", "a python error", "a read"])
def test_a_lock_that_does_not_come_mid_run_refuses_nothing(client, monkeypatch, then):
    url = services(client.app).store.url
    assert url is not None
    _send(client, CAMDEN, [docked("CAM-1")])
    services(client.app).events.apply_all()
    writer = services(client.app).store.writer
    with writer.write() as db:
        db.raw.execute("SET lock_timeout = 200")  # the session's, for the next transactions

    held = [True]

    def waits(db, run):
        if not held:
            return
        db.execute("UPDATE devices SET firmware = firmware WHERE serial = 'CAM-1'")  # locked: times out, unread
        if then == "a python error":
            raise OverflowError("after a statement that fails unread")
        if then == "a read":
            db.execute("SELECT count(*) FROM devices").fetchone()

    _handler_that(monkeypatch, waits)
    _send(client, CAMDEN, [docked("CAM-2", 1), docked("CAM-3", 2)], first_seq=2)
    _send(client, BARNET, [docked("B-1", 1)])
    with psycopg.connect(url, autocommit=True) as other:
        other.execute("BEGIN")
        other.execute("SELECT * FROM devices WHERE serial = 'CAM-1' FOR UPDATE")
        with pytest.raises(Exception) as failed:
            services(client.app).events.apply_pending()
        assert database.trouble(failed.value) == "busy", repr(failed.value)
        other.execute("ROLLBACK")
    assert _refused(client) == 0
    _writer_out_of_pipeline(client)
    held.clear()
    assert services(client.app).events.apply_all() == 3
    assert _refused(client) == 0 and _readings(client) == 4
    with writer.write() as db:
        db.raw.execute("SET lock_timeout = 30000")


@pytest.mark.slow
@pytest.mark.postgresql_only
def test_a_statement_failing_unread_before_the_stations_applied_seq_refuses_only_its_event(client, monkeypatch):
    def last(db, run):
        if any(a.event.device.serial == "POISON" for a in run):
            db.execute("INSERT INTO stations (station_id, borough) VALUES ('camden', 'Camden')")  # there already

    _handler_that(monkeypatch, last)
    _send(client, CAMDEN, [docked("CAM-1"), docked("POISON", 1)])
    _send(client, BARNET, [docked("B-1")])
    assert services(client.app).events.apply_all() == 3
    assert _refused(client) == 1 and _readings(client) == 2
    assert client.get("/api/v1/stations/camden", headers=ADMIN).json()["applied_seq"] == 2
    _writer_out_of_pipeline(client)
