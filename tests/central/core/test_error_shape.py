"""Every error central answers has one JSON shape: status, error, message, details."""

import os
import sqlite3

import msgspec
import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from central.events.log import EventLog
from fleet.protocol import ErrorBody
from tests.central.conftest import ADMIN, CAMDEN, TUS, create, metadata, patch


def assert_shape(response, status):
    assert response.status_code == status, response.text
    body = msgspec.json.decode(response.content, type=ErrorBody)
    assert body.status == status and body.message and body.error
    assert response.headers["content-type"].startswith("application/json")


def test_error_shape_across_kinds(client):
    data = os.urandom(100)
    location = create(client, data).headers["Location"]
    assert_shape(client.get("/api/v1/clips"), 401)
    assert_shape(client.get("/api/v1/clips", headers=CAMDEN), 403)
    assert_shape(client.get("/api/v1/clips/nope", headers=ADMIN), 404)
    assert_shape(client.get("/no/such/route", headers=ADMIN), 404)
    assert_shape(client.put("/api/v1/clips", headers=ADMIN), 405)
    assert_shape(client.get("/api/v1/clips", params={"limit": "x"}, headers=ADMIN), 400)
    assert_shape(patch(client, location, 3, data), 409)
    assert_shape(patch(client, location, 0, data, **{"Content-Type": "text/plain"}), 415)
    assert_shape(patch(client, location, 0, data, **{"Upload-Checksum": "sha256 " + "A" * 43 + "="}), 460)
    assert_shape(client.post("/api/v1/uploads/", headers={**CAMDEN, "Upload-Length": "1"}), 412)


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


@hsettings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    length=header_text,
    meta=header_text,
    offset=header_text,
    checksum=header_text,
    content_type=header_text,
    body=st.binary(max_size=64),
)
def test_random_headers_never_cause_a_server_error(client, length, meta, offset, checksum, content_type, body):
    created = client.post(
        "/api/v1/uploads/", headers={**CAMDEN, **TUS, "Upload-Length": length, "Upload-Metadata": meta}
    )
    assert created.status_code < 500, created.text
    location = create(client, b"x" * 64).headers["Location"]
    r = client.patch(
        location,
        content=body,
        headers={**CAMDEN, **TUS, "Upload-Offset": offset, "Upload-Checksum": checksum, "Content-Type": content_type},
    )
    assert r.status_code < 500, r.text
    r = client.patch(
        location,
        content=body,
        headers={
            **CAMDEN,
            **TUS,
            "Upload-Offset": "0",
            "Upload-Checksum": checksum,
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert r.status_code < 500, r.text


def database_error(database, condition: str) -> Exception:
    """What the engine in use raises when it is ``full`` (its disk), ``busy`` (a wait ran out),
    ``failing`` (SQLite's file; PostgreSQL out of reach), or the statement is at ``fault`` (a bug)."""
    if database.postgres:
        return {
            "full": psycopg.errors.DiskFull("could not extend file: No space left on device"),
            "busy": psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"),
            "failing": psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
            "fault": psycopg.errors.UndefinedColumn('column "x" does not exist'),
        }[condition]
    code, message = {
        "full": (sqlite3.SQLITE_FULL, "database or disk is full"),
        "busy": (sqlite3.SQLITE_BUSY, "database is locked"),
        "failing": (sqlite3.SQLITE_IOERR, "disk I/O error"),
        "fault": (sqlite3.SQLITE_ERROR, "no such column: x"),
    }[condition]
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


def failing_ingest(monkeypatch, error: Exception) -> None:
    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(EventLog, "ingest", failing)


def post_events(client):
    return client.post("/api/v1/events/", headers=CAMDEN, content=b'{"sent_at": "2026-11-20T14:00:00Z", "events": []}')


@pytest.mark.parametrize("condition, status", [("full", 507), ("busy", 503)])
def test_a_full_or_busy_database_is_later_not_a_server_error(client, monkeypatch, database, condition, status):
    failing_ingest(monkeypatch, database_error(database, condition))
    response = post_events(client)
    assert_shape(response, status)
    assert int(response.headers["Retry-After"]) > 0


def test_other_database_errors_are_still_500(client, monkeypatch, database):
    """A statement at fault is central's bug, and so is SQLite's own file failing; PostgreSQL out of
    reach (a server restarting, the network) is "later", as a busy database is."""
    failing_ingest(monkeypatch, database_error(database, "fault"))
    assert_shape(post_events(client), 500)
    failing_ingest(monkeypatch, database_error(database, "failing"))
    response = post_events(client)
    assert_shape(response, 503 if database.postgres else 500)
    if database.postgres:
        assert int(response.headers["Retry-After"]) > 0


def test_insufficient_storage_carries_the_configured_retry_after(tmp_path, monkeypatch):
    from litestar.testing import TestClient

    from central.core.app import create_app
    from fleet.errors import InsufficientStorage
    from tests.central.conftest import make_settings

    def full(*args, **kwargs):
        raise InsufficientStorage("central's storage is full; try again later")

    monkeypatch.setattr(EventLog, "ingest", full)
    app = create_app(make_settings(tmp_path / "central", limits={"storage_full_retry_after_s": 7}))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(
            "/api/v1/events/", headers=CAMDEN, content=b'{"sent_at": "2026-11-20T14:00:00Z", "events": []}'
        )
    assert_shape(response, 507)
    assert response.headers["Retry-After"] == "7"


@pytest.mark.parametrize("path, headers", [("/api/v1/events/", CAMDEN), ("/api/v1/officers/", ADMIN)])
def test_json_nested_thousands_deep_is_a_400(client, path, headers):
    for deep in (b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000):
        assert_shape(client.post(path, content=deep, headers={**headers, "Content-Type": "application/json"}), 400)


def test_a_tus_creation_with_more_body_than_its_upload_length_is_refused(client):
    data = b"x" * 10
    r = client.post(
        "/api/v1/uploads/",
        content=b"y" * 100,
        headers={
            **CAMDEN,
            **TUS,
            "Upload-Length": "10",
            "Upload-Metadata": metadata(data),
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert_shape(r, 413)
    assert client.get("/api/v1/clips", headers=ADMIN).json()["items"] == []


def test_a_request_head_of_megabytes_is_refused_by_the_server(settings):
    import socket

    from tests.central.serving import serving

    with serving(settings) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: central\r\nX-Big: ")
            try:
                for _ in range(128):  # 8 MiB
                    s.sendall(b"a" * 65536)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # central stopped reading: allowed
            answer = b""
            try:
                while chunk := s.recv(65536):
                    answer += chunk
            except OSError:
                pass
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 431 "), answer[:200]
        error = msgspec.json.decode(body, type=ErrorBody)
        assert error.status == 431 and error.error == "request_header_fields_too_large"
        import httpx

        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200  # and it serves on


@pytest.mark.parametrize("value", ["1" * 5000, "0" * 4400 + "1"])
@pytest.mark.parametrize("header", ["Upload-Length", "Upload-Offset"])
def test_a_tus_number_of_thousands_of_digits_is_a_400(client, header, value):
    data = b"x" * 10
    if header == "Upload-Length":
        r = client.post(
            "/api/v1/uploads/", headers={**CAMDEN, **TUS, "Upload-Length": value, "Upload-Metadata": metadata(data)}
        )
    else:
        location = create(client, data, length=20).headers["Location"]
        r = client.patch(
            location,
            content=b"y",
            headers={**CAMDEN, **TUS, "Upload-Offset": value, "Content-Type": "application/offset+octet-stream"},
        )
    assert_shape(r, 400)


def test_a_tus_number_in_latin1_digits_is_a_400_from_the_server(settings):
    """Header bytes are read as Latin-1: b'\\xb2' is '²', which str.isdigit() takes for a digit."""
    import socket

    from tests.central.serving import serving

    head = "".join(
        f"{k}: {v}\r\n"
        for k, v in {
            **CAMDEN,
            **TUS,
            "Host": "central",
            "Content-Length": "0",
            "Upload-Metadata": metadata(b""),
        }.items()
    ).encode()
    with serving(settings) as port, socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /api/v1/uploads/ HTTP/1.1\r\n" + head + b"Upload-Length: \xb2\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 400 "), answer[:300]
    assert msgspec.json.decode(rest.partition(b"\r\n\r\n")[2], type=ErrorBody).status == 400


def test_a_tus_creation_with_a_body_of_unknown_length_is_refused_not_dropped(client):
    """Without Content-Length the body's size is unknown before the creation: its bytes were
    silently dropped (and one longer than Upload-Length never refused)."""
    data = b"x" * 10

    def chunked(body):
        yield body

    for body, length in ((data, "10"), (b"y" * 100, "10"), (b"y" * 100, "0")):
        r = client.post(
            "/api/v1/uploads/",
            content=chunked(body),
            headers={
                **CAMDEN,
                **TUS,
                "Upload-Length": length,
                "Upload-Metadata": metadata(data if length == "10" else b""),
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert_shape(r, 411)
    assert client.get("/api/v1/clips", headers=ADMIN).json()["items"] == []


def test_a_nul_character_in_a_lookup_is_bad_input_on_either_database(client):
    """PostgreSQL refuses a NUL in text (a DataError): bad input (400) there, nothing found on
    SQLite; never a server error."""
    for url in ("/api/v1/devices/BWV%00X", "/api/v1/devices/?q=BWV%00X"):
        r = client.get(url, headers=ADMIN)
        assert r.status_code in (200, 400, 404), (url, r.status_code, r.text)
        assert r.status_code != 200 or r.json()["items"] == []
