"""The desk's local HTTP API: the same rules as the CLI, the same error shape as central."""

from types import SimpleNamespace

import pytest
from litestar.testing import TestClient

from fleet.config import StationSettings, settings_from_dict
from fleet.events import Officer, StationPolicy
from station.api import create_desk_app
from station.desk import Desk
from tests.station.test_desk import dock


def desk_settings(data_dir="d", dock_dir="k", **extra) -> StationSettings:
    """A station's settings for its desk's tests (``extra``: the desk's own, checked as at start-up)."""
    return settings_from_dict(
        {
            "station_id": "camden",
            "borough": "Camden",
            "central_url": "http://127.0.0.1:9",
            "token": "t",
            "data_dir": str(data_dir),
            "dock_dir": str(dock_dir),
            **extra,
        },
        StationSettings,
    )


def node(store, dock_dir, **extra):
    settings = desk_settings(store.data_dir, dock_dir, **extra)
    mirror = store.mirror
    mirror.apply([Officer(officer_id="PC1", borough="Camden"), StationPolicy()], cursor=2)
    return SimpleNamespace(settings=settings, store=store, desk=Desk(store, "camden"))


@pytest.fixture
def api(store, dock_dir):
    with TestClient(create_desk_app(node(store, dock_dir)), base_url="http://127.0.0.1") as client:
        yield client


def test_checkout_list_and_checkin(api, store, dock_dir):
    dock(store, dock_dir, "BWV-1")
    r = api.post("/checkouts", json={"device_serial": "BWV-1", "officer_id": "PC1", "by": "sgt"})
    assert r.status_code == 201, r.text
    assert list(r.json()) == ["device_serial", "officer_id", "out_at", "battery_pct", "out_by", "in_at", "in_reason"]
    assert r.json()["out_by"] == "sgt"
    assert [c["device_serial"] for c in api.get("/checkouts").json()] == ["BWV-1"]
    assert api.get("/status").json()["checked_out"] == 1
    assert api.post("/checkins", json={"device_serial": "BWV-1"}).json()["in_reason"] == "manual"
    assert api.get("/checkouts").json() == []
    assert len(api.get("/checkouts", params={"serial": "BWV-1"}).json()) == 1


@pytest.mark.parametrize(
    "body, status, error",
    [
        ({"device_serial": "BWV-1", "officer_id": "NOPE"}, 404, "not_found"),
        ({"device_serial": "BWV-9", "officer_id": "PC1"}, 409, "conflict"),
        ({"device_serial": "bad serial", "officer_id": "PC1"}, 400, "bad_request"),
        ({"device_serial": "BWV-1"}, 400, "bad_request"),
    ],
)
def test_refusals_have_one_error_shape(api, store, dock_dir, body, status, error):
    dock(store, dock_dir, "BWV-1")
    r = api.post("/checkouts", json=body)
    assert r.status_code == status and set(r.json()) >= {"status", "error", "message"}
    assert r.json()["error"] == error


def test_a_token_is_checked_when_configured(store, dock_dir):
    app = create_desk_app(node(store, dock_dir, api_token="desk-api-test-token"))  # test value, not a secret
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/checkouts").status_code == 401
        assert client.get("/checkouts", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/checkouts", headers={"Authorization": "Bearer desk-api-test-token"}).status_code == 200
        assert client.get("/healthz").status_code == 200


def test_a_non_loopback_desk_needs_a_token():
    from fleet.errors import ConfigError

    with pytest.raises(ConfigError, match="api_token"):
        desk_settings(api_host="0.0.0.0", api_port=8101)


def test_the_desks_of_one_process_share_a_loop_and_a_port_in_use_fails_only_its_own(store, dock_dir):
    """A host of many stations serves every desk on one event-loop thread (fewer GIL hand-offs)."""
    import socket
    import threading

    import httpx

    from simulation.local_cluster import free_port
    from station.api import DeskServer

    desk = node(store, dock_dir)
    first, second = DeskServer(desk, "127.0.0.1", free_port()), DeskServer(desk, "127.0.0.1", free_port())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        blocked = DeskServer(desk, "127.0.0.1", taken.getsockname()[1])
        try:
            for server in (first, blocked, second):
                server.start()
            for server in (first, second):
                r = httpx.get(f"http://127.0.0.1:{server.server.config.port}/healthz", timeout=5)
                assert r.status_code == 200
            assert blocked.served.done() and not blocked.server.started
            desk_threads = [t for t in threading.enumerate() if t.name == "desk-api"]
            assert len(desk_threads) == 1
        finally:
            for server in (first, blocked, second):
                server.stop()
    assert first.served.done() and second.served.done()


PORT = 8099
"""The desk's configured port in these tests (nothing listens on it: the client runs the app)."""


@pytest.fixture
def desk(store, dock_dir):
    app = create_desk_app(node(store, dock_dir, api_port=PORT))
    with TestClient(app, base_url=f"http://127.0.0.1:{PORT}") as client:
        yield client


CHECKOUT = {"device_serial": "BWV-1", "officer_id": "PC1"}


@pytest.mark.parametrize(
    "headers, status, says",
    [
        ({"Origin": "https://evil.example"}, 403, "another site"),
        ({"Origin": "null"}, 403, "another site"),
        ({"Host": f"evil.example:{PORT}"}, 403, "Host"),
        ({"Host": "127.0.0.1:1"}, 403, "Host"),
        ({"Content-Type": "text/plain"}, 415, "application/json"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"),
    ],
)
def test_a_web_page_cannot_check_cameras_out(desk, store, dock_dir, headers, status, says):
    import msgspec

    dock(store, dock_dir, "BWV-1")
    r = desk.post(
        "/checkouts", content=msgspec.json.encode(CHECKOUT), headers={"Content-Type": "application/json", **headers}
    )
    assert r.status_code == status and r.json()["status"] == status and says in r.json()["message"], r.text
    assert desk.get("/checkouts").json() == []


def test_a_rebound_name_cannot_read_the_desk_either(desk):
    assert desk.get("/checkouts", headers={"Host": "evil.example"}).status_code == 403
    assert desk.get("/status", headers={"Origin": "https://evil.example"}).status_code == 403


@pytest.mark.parametrize("host", [f"127.0.0.1:{PORT}", f"localhost:{PORT}", f"[::1]:{PORT}"])
def test_the_desk_itself_may_check_out(desk, store, dock_dir, host):
    dock(store, dock_dir, "BWV-1")
    origin = f"http://{host}"
    r = desk.post("/checkouts", json=CHECKOUT, headers={"Host": host, "Origin": origin})
    assert r.status_code == 201, r.text


def test_starting_the_desk_loop_leaves_the_process_logging_alone(monkeypatch):
    """uvicorn's messages go through the station's logging (its format, its level): building the
    shared desk loop must not install uvicorn's own handlers, as a default ``uvicorn.Config`` does."""
    import logging
    import threading

    from station import api as desk_api

    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "handlers", [])
        monkeypatch.setattr(logger, "propagate", True)
        monkeypatch.setattr(logger, "level", logging.NOTSET)
    monkeypatch.setattr(desk_api, "_shared_loop", None)
    before = set(threading.enumerate())
    loop = desk_api._desk_loop()
    try:
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logger = logging.getLogger(name)
            assert (logger.handlers, logger.propagate, logger.level) == ([], True, logging.NOTSET), name
    finally:
        loop.call_soon_threadsafe(loop.stop)
        for thread in set(threading.enumerate()) - before:
            thread.join(timeout=5)
        loop.close()
