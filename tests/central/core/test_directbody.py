"""A large tus PATCH's body read by the event loop straight into the receiver's buffers
(central/core/directbody.py), under a real uvicorn, and the connection's next request after it."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
import tracemalloc

import httpx
import pytest

from central.core.directbody import DIRECT_BODY_MIN_BYTES, DirectBody, wants_direct_body
from central.core.httpserver import _receive_through
from tests.central.conftest import ADMIN, TUS, create, make_settings, patch
from tests.central.serving import serving
from tests.support.pki import Pki

BIG = 3 * (1 << 20) + 12_345
"""Over DIRECT_BODY_MIN_BYTES, and not a whole number of blocks."""
OCTETS = "application/offset+octet-stream"


@pytest.fixture
def served(tmp_path, monkeypatch):
    """Central's port, and the sizes of the buffers lent to direct bodies (each ``readinto``)."""
    lent: list[int] = []
    readinto = DirectBody.readinto

    async def counted(self, view, idle_timeout_s):
        lent.append(len(view))
        return await readinto(self, view, idle_timeout_s)

    monkeypatch.setattr(DirectBody, "readinto", counted)
    with serving(make_settings(tmp_path / "central")) as port:
        yield port, lent


def _head(location: str, offset: int, length: int, *extra: str) -> bytes:
    lines = [
        f"PATCH {location} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Authorization: {ADMIN['Authorization']}",
        "Tus-Resumable: 1.0.0",
        f"Upload-Offset: {offset}",
        f"Content-Type: {OCTETS}",
        f"Content-Length: {length}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _response(sock: socket.socket, pending: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One response from ``sock`` (status, headers, body); bytes after it stay in ``pending``."""
    while b"\r\n\r\n" not in pending:
        more = sock.recv(65536)
        assert more, f"the connection closed before a response: {bytes(pending)!r}"
        pending += more
    head, _, rest = bytes(pending).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    size = int(headers.get("content-length", "0"))
    while len(rest) < size:
        more = sock.recv(65536)
        assert more
        rest += more
    pending[:] = rest[size:]
    return int(status_line.split()[1]), headers, rest[:size]


def _created(port: int, data: bytes) -> str:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        return create(client, data, headers=ADMIN).headers["location"]


def _state(port: int, location: str) -> tuple[int, str]:
    answer = httpx.head(f"http://127.0.0.1:{port}{location}", headers={**ADMIN, **TUS})
    return int(answer.headers["upload-offset"]), answer.headers["fleet-clip-state"]


def test_a_clip_in_large_patches_on_one_connection_is_read_direct_and_verified(served):
    port, lent = served
    data = os.urandom(2 * BIG + 7)
    first = DIRECT_BODY_MIN_BYTES + 5  # the second PATCH starts off a block boundary
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        location = create(client, data, headers=ADMIN).headers["location"]
        assert patch(client, location, 0, data[:first], headers=ADMIN).status_code == 204
        done = patch(client, location, first, data[first:], headers=ADMIN, with_checksum=False)
        assert done.status_code == 204 and done.headers["fleet-clip-state"] == "verified"
        assert client.head(location, headers={**ADMIN, **TUS}).headers["upload-offset"] == str(len(data))
    assert sum(lent) >= len(data)  # every byte went into a lent buffer


def test_a_patch_refused_before_its_body_is_read_leaves_the_connection_usable(served):
    port, _ = served
    data = os.urandom(BIG)
    location = _created(port, data)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_head(location, 7, len(data)) + data[:1000])  # the wrong offset: 409, body unread
        sock.sendall(data[1000:])
        pending = bytearray()
        status, _, _ = _response(sock, pending)
        assert status == 409
        # The rest of the body is read and dropped; the next request on the connection is parsed anew.
        sock.sendall(_head(location, 0, len(data)) + data)
        status, headers, _ = _response(sock, pending)
        assert (status, headers["upload-offset"], headers["fleet-clip-state"]) == (204, str(len(data)), "verified")


def test_a_client_that_waits_for_100_continue_gets_it(served):
    port, lent = served
    data = os.urandom(BIG)
    location = _created(port, data)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_head(location, 0, len(data), "Expect: 100-continue"))
        pending = bytearray()
        assert _response(sock, pending)[0] == 100
        sock.sendall(data)
        status, headers, _ = _response(sock, pending)
    assert (status, headers["fleet-clip-state"]) == (204, "verified")
    assert lent


def test_what_arrived_before_the_client_went_away_is_kept(served):
    port, _ = served
    data = os.urandom(BIG)
    sent = (3 << 19) + 100  # part of the 4 MiB batch being read
    location = _created(port, data)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_head(location, 0, len(data)) + data[:sent])
        sock.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + 30
    while _state(port, location) != (sent, "receiving"):
        assert time.monotonic() < deadline, f"the offset stayed at {_state(port, location)}"
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        done = patch(client, location, sent, data[sent:], headers=ADMIN)
    assert done.headers["fleet-clip-state"] == "verified"


def test_a_large_patch_over_tls_is_read_direct(tmp_path, monkeypatch):
    lent: list[int] = []
    readinto = DirectBody.readinto

    async def counted(self, view, idle_timeout_s):
        lent.append(len(view))
        return await readinto(self, view, idle_timeout_s)

    monkeypatch.setattr(DirectBody, "readinto", counted)
    pki = Pki.make(tmp_path / "pki")
    data = os.urandom(BIG)
    with (
        serving(make_settings(tmp_path / "central", tls=pki.server())) as port,
        httpx.Client(
            base_url=f"https://127.0.0.1:{port}", verify=ssl.create_default_context(cafile=pki.ca_bundle)
        ) as client,
    ):
        location = create(client, data, headers=ADMIN).headers["location"]
        done = patch(client, location, 0, data, headers=ADMIN)
        assert (done.status_code, done.headers["fleet-clip-state"]) == (204, "verified")
        assert client.head(location, headers={**ADMIN, **TUS}).headers["upload-offset"] == str(len(data))
    assert sum(lent) >= len(data)


@pytest.mark.parametrize(
    ("method", "headers", "direct"),
    [
        ("PATCH", [(b"content-type", OCTETS.encode()), (b"content-length", b"%d" % BIG)], BIG),
        ("PATCH", [(b"content-type", b"application/offset+octet-stream; x=1"), (b"content-length", b"300000")], 300000),
        ("PATCH", [(b"content-type", OCTETS.encode()), (b"content-length", b"1000")], 0),  # small: parsed
        ("POST", [(b"content-type", OCTETS.encode()), (b"content-length", b"%d" % BIG)], 0),  # creations: parsed
        ("PATCH", [(b"content-type", b"application/json"), (b"content-length", b"%d" % BIG)], 0),
        ("PATCH", [(b"content-type", OCTETS.encode()), (b"transfer-encoding", b"chunked")], 0),
        ("PATCH", [(b"content-type", OCTETS.encode()), (b"content-length", b"1e9")], 0),
    ],
)
def test_which_bodies_are_read_direct(method, headers, direct):
    assert wants_direct_body(method, headers) == direct


class _FakeHttp:
    """The HTTP side of a DirectBody, recording what it is asked."""

    def __init__(self) -> None:
        self.done = False
        self.reading = False

    def direct_body_done(self) -> None:
        self.done = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def continue_if_expected(self) -> None:
        pass

    def body_bytes_arrived(self) -> None:
        pass


def _arrive(body: DirectBody, data: bytes) -> None:
    """The transport reading ``data`` into whatever buffer the body gives it."""
    while data:
        buffer = body.get_buffer(-1)
        n = min(len(buffer), len(data))
        buffer[:n] = data[:n]
        body.buffer_updated(n)
        data = data[n:]


def test_a_reader_that_lends_no_buffer_gets_the_direct_body_through_asgi_receive():
    rest = os.urandom(3_000_000)

    async def scenario(http: _FakeHttp) -> list[dict]:
        body = DirectBody(http, 10 + len(rest))  # type: ignore[arg-type]
        body.early(b"head-bytes")  # came with the request's head
        receive = _receive_through(body, None)
        first = asyncio.ensure_future(receive())
        await asyncio.sleep(0)
        assert http.reading  # a buffer is lent: the socket is read
        _arrive(body, rest)  # the first piece fills; the rest waits in the spill buffer
        messages = [await first]
        while messages[-1]["more_body"]:
            messages.append(await receive())
        return messages

    http = _FakeHttp()
    messages = asyncio.run(scenario(http))
    assert len(messages[0]["body"]) == 1 << 20
    assert b"".join(m["body"] for m in messages) == b"head-bytes" + rest
    assert http.done  # the connection went back to the HTTP parser at the body's last byte


@pytest.mark.slow  # hundreds of MiB through a real server: the whole suite, not the quick lane
def test_refused_large_patches_do_not_pin_memory_per_connection(served):
    port, _ = served
    connections = 200
    head = (
        "PATCH /api/v1/uploads/nothing HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer not-a-token\r\n"
        f"Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: {OCTETS}\r\nContent-Length: {10**15}\r\n\r\n"
    ).encode()
    socks = []
    tracemalloc.start()  # central runs in this process (a thread): its allocations are traced too
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(connections):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(head)
            socks.append(sock)
        for sock in socks:
            assert _response(sock, bytearray())[0] in (401, 429)  # refused, the body unread
        for sock in socks:
            sock.sendall(b"x")  # one body byte after the answer: the keep-alive timer is gone
        time.sleep(6.5)  # past uvicorn's keep-alive timeout (5 s)
        grown = (tracemalloc.get_traced_memory()[0] - before) >> 20
        # Unauthenticated, the same requests with another Content-Type cost ~2 MiB in all.
        assert grown < 20, f"{connections} refused connections hold {grown} MiB"
    finally:
        tracemalloc.stop()
        for sock in socks:
            sock.close()
