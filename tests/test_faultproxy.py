"""The fault-injection proxy against real loopback servers: forwarding, one-shot faults, caps, stalls."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.support.faultproxy import FaultEvent, FaultProxy

MiB = 1024 * 1024
RESET_ERRORS = (ConnectionResetError, BrokenPipeError)


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)
    return value


def holds_for(predicate: Callable[[], Any], seconds: float) -> bool:
    """True if ``predicate`` stays true for the whole window (a negative check: nothing happened)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            return False
        time.sleep(0.005)
    return bool(predicate())


def payload(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


class Peer:
    """One connection as the upstream server saw it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._received = bytearray()
        self._lock = threading.Lock()
        self.ended = threading.Event()
        self.end: str | None = None  # "eof" | "reset" | other error

    @property
    def received(self) -> bytes:
        with self._lock:
            return bytes(self._received)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._received)

    def add(self, data: bytes) -> None:
        with self._lock:
            self._received += data


class Upstream:
    """A threaded TCP server on 127.0.0.1:0 that records what each connection sent, and optionally echoes it
    (propagating the half-close). Tests may also push bytes to a client with ``peer.sock.sendall``."""

    def __init__(self, echo: bool) -> None:
        self.echo = echo
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.peers: list[Peer] = []
        self._closing = False
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while True:
            sock, _ = self.listener.accept()
            if self._closing:
                sock.close()
                return
            sock.settimeout(30)
            peer = Peer(sock)
            self.peers.append(peer)
            thread = threading.Thread(target=self._serve, args=(peer,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, peer: Peer) -> None:
        try:
            while data := peer.sock.recv(65536):
                peer.add(data)
                if self.echo:
                    peer.sock.sendall(data)
            peer.end = "eof"
            if self.echo:
                peer.sock.shutdown(socket.SHUT_WR)
        except ConnectionResetError:
            peer.end = "reset"
        except OSError as exc:
            peer.end = repr(exc)
        finally:
            peer.ended.set()

    def peer(self, index: int = 0) -> Peer:
        return wait_for(lambda: len(self.peers) > index and self.peers[index], f"upstream connection #{index}")

    def close(self) -> None:
        self._closing = True
        socket.create_connection(("127.0.0.1", self.port)).close()  # wake accept()
        self._acceptor.join(5)
        self.listener.close()
        for peer in self.peers:
            try:
                peer.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(5)
        for peer in self.peers:
            peer.sock.close()


@pytest.fixture
def echo_server():
    server = Upstream(echo=True)
    yield server
    server.close()


@pytest.fixture
def sink_server():
    server = Upstream(echo=False)
    yield server
    server.close()


@pytest.fixture
def clients():
    """``connect(address)``: a blocking client socket that is closed after the test."""
    opened: list[socket.socket] = []

    def connect(address: tuple[str, int], timeout: float = 5.0) -> socket.socket:
        sock = socket.create_connection(address, timeout=timeout)
        opened.append(sock)
        return sock

    yield connect
    for sock in opened:
        sock.close()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        data = sock.recv(min(n - len(buf), 1 << 20))
        if not data:
            raise AssertionError(f"EOF after {len(buf)} of {n} bytes")
        buf += data
    return bytes(buf)


def recv_to_eof(sock: socket.socket) -> bytes:
    buf = bytearray()
    while data := sock.recv(1 << 20):
        buf += data
    return bytes(buf)


def echo_round_trip(sock: socket.socket, data: bytes) -> bytes:
    """Send ``data`` (from a thread, so a full pipe cannot deadlock), half-close, and read the echo to EOF."""

    def send() -> None:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)

    with ThreadPoolExecutor(1) as pool:
        sent = pool.submit(send)
        echoed = recv_to_eof(sock)
        sent.result()
    return echoed


def send_expecting_reset(sock: socket.socket, data: bytes) -> bytes:
    """Send ``data`` and read until the proxy's reset arrives; return what was read before it."""
    received = bytearray()
    try:
        sock.sendall(data)
        while chunk := sock.recv(65536):
            received += chunk
    except RESET_ERRORS:
        return bytes(received)
    raise AssertionError(f"the client saw EOF after {len(received)} bytes, not a connection reset")


# ---------------------------------------------------------------------------------------- forwarding


def test_forwards_large_payloads_byte_exact_both_ways(echo_server, clients):
    data = payload(4 * MiB)
    with FaultProxy("127.0.0.1", echo_server.port) as proxy:
        assert proxy.url == f"http://127.0.0.1:{proxy.port}"
        echoed = echo_round_trip(clients(proxy.address), data)
        assert hashlib.sha256(echoed).digest() == hashlib.sha256(data).digest()
        assert echo_server.peer().received == data
        assert echo_server.peer().end == "eof"  # the client's half-close reached the server
        wait_for(lambda: proxy.active_connections == 0, "the proxied connection to finish")
        assert (proxy.bytes_up, proxy.bytes_down, proxy.connections) == (len(data), len(data), 1)
        assert proxy.faults_fired == []


def test_many_concurrent_connections(echo_server, clients):
    n, size = 40, 128 * 1024
    with FaultProxy("127.0.0.1", echo_server.port) as proxy:
        socks = [clients(proxy.address) for _ in range(n)]
        with ThreadPoolExecutor(n) as pool:
            echoes = list(pool.map(lambda i: echo_round_trip(socks[i], payload(size, seed=i)), range(n)))
        assert all(echoed == payload(size, seed=i) for i, echoed in enumerate(echoes))
        wait_for(lambda: proxy.active_connections == 0, "all connections to finish")
        assert (proxy.connections, proxy.bytes_up, proxy.bytes_down) == (n, n * size, n * size)


def test_http_through_the_proxy_with_httpx():
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            digest = hashlib.sha256(body).hexdigest().encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(digest)))
            self.end_headers()
            self.wfile.write(digest)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    body = payload(MiB)
    try:
        with FaultProxy("127.0.0.1", server.server_address[1]) as proxy, httpx.Client(base_url=proxy.url) as client:
            assert client.post("/", content=body).text == hashlib.sha256(body).hexdigest()
            proxy.refuse()  # also resets httpx's pooled keep-alive connection
            with pytest.raises(httpx.TransportError):
                client.post("/", content=body)
            proxy.accept()
            assert client.post("/", content=body).text == hashlib.sha256(body).hexdigest()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_unreachable_upstream_resets_the_client_quietly(clients):
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        dead_port = placeholder.getsockname()[1]  # nothing listens there once closed
    with FaultProxy("127.0.0.1", dead_port) as proxy:
        with pytest.raises(ConnectionResetError):
            clients(proxy.address).recv(1)
        assert proxy.upstream_failures == 1 and proxy.connections == 1


# ---------------------------------------------------------------------------------------- one-shot faults


def test_reset_after_cuts_the_connection_at_exactly_n_bytes_counted_across_connections(sink_server, clients):
    with FaultProxy("127.0.0.1", sink_server.port) as proxy:
        proxy.reset_after(100_000)
        first = clients(proxy.address)
        first.sendall(payload(60_000, seed=1))
        wait_for(lambda: sink_server.peer(0).count == 60_000, "first connection's bytes upstream")

        second = clients(proxy.address)
        data = payload(2 * MiB, seed=2)
        send_expecting_reset(second, data)
        peer = sink_server.peer(1)
        assert peer.ended.wait(5) and peer.end == "reset"
        assert peer.received == data[:40_000]  # 100_000 - 60_000 already forwarded on the first connection
        assert proxy.faults_fired == [FaultEvent("reset", "up", connection=2, offset=40_000)]

        # One shot: the first connection is untouched and new ones are not cut.
        first.sendall(b"still here")
        wait_for(lambda: sink_server.peer(0).received.endswith(b"still here"), "first connection still forwarding")
        third = clients(proxy.address)
        third.sendall(data)
        wait_for(lambda: sink_server.peer(2).count == len(data), "third connection forwarded in full")
        assert len(proxy.faults_fired) == 1


def test_reset_after_in_the_middle_of_a_read_chunk(echo_server, clients):
    """The cut lands inside a chunk the proxy has already read: only the prefix goes through."""
    with FaultProxy("127.0.0.1", echo_server.port) as proxy:
        sock = clients(proxy.address)
        sock.sendall(b"warm-up")
        assert recv_exactly(sock, 7) == b"warm-up"
        proxy.reset_after(12_345)
        data = payload(300_000)
        send_expecting_reset(sock, data)
        peer = echo_server.peer()
        assert peer.ended.wait(5) and peer.end == "reset"
        assert peer.received == b"warm-up" + data[:12_345]
        assert proxy.faults_fired == [FaultEvent("reset", "up", connection=1, offset=7 + 12_345)]


def test_flip_byte_at_changes_exactly_one_bit_at_the_right_offset(echo_server, clients):
    with FaultProxy("127.0.0.1", echo_server.port) as proxy:
        proxy.flip_byte_at(150_000)
        first = payload(100_000, seed=1)
        assert echo_round_trip(clients(proxy.address), first) == first  # offsets 0..99_999: untouched

        data = payload(MiB, seed=2)
        echoed = echo_round_trip(clients(proxy.address), data)
        received = echo_server.peer(1).received
        assert len(received) == len(echoed) == len(data)
        diffs = [i for i in range(len(data)) if received[i] != data[i]]
        assert diffs == [50_000]
        assert received[50_000] == data[50_000] ^ 0x01
        assert echoed == received  # the server->client direction was not touched
        assert proxy.faults_fired == [FaultEvent("flip", "up", connection=2, offset=50_000)]

        # One shot.
        assert echo_round_trip(clients(proxy.address), data) == data
        assert len(proxy.faults_fired) == 1


def test_faults_can_target_the_server_to_client_direction(echo_server, clients):
    with FaultProxy("127.0.0.1", echo_server.port) as proxy:
        proxy.flip_byte_at(7, direction="down")
        data = payload(100_000)
        echoed = echo_round_trip(clients(proxy.address), data)
        assert echo_server.peer(0).received == data
        assert [i for i in range(len(data)) if echoed[i] != data[i]] == [7]

        proxy.reset_after(1000, direction="down")
        assert send_expecting_reset(clients(proxy.address), data) == data[:1000]
        assert proxy.faults_fired[-1] == FaultEvent("reset", "down", connection=2, offset=1000)
        assert [e.kind for e in proxy.faults_fired] == ["flip", "reset"]


# ---------------------------------------------------------------------------------------- bandwidth


def test_bandwidth_cap_throttles_then_lifts(sink_server, clients):
    rate = 50_000
    data = payload(2 * MiB)
    with FaultProxy("127.0.0.1", sink_server.port) as proxy:
        proxy.bandwidth(rate)
        sock = clients(proxy.address)
        started = time.monotonic()
        with ThreadPoolExecutor(1) as pool:
            sent = pool.submit(sock.sendall, data)
            peer = sink_server.peer()
            wait_for(lambda: peer.count > 0, "the first paced bytes")  # flowing, not stalled
            time.sleep(0.3)  # an observation window, not a synchronisation
            forwarded, elapsed = proxy.bytes_up, time.monotonic() - started
            # Paced: never more than rate * elapsed (plus a pacing quantum or two), and far from done.
            assert forwarded <= rate * elapsed + 10_000, (forwarded, elapsed)
            assert forwarded < len(data) // 4
            proxy.bandwidth(None)
            wait_for(lambda: peer.count == len(data), "the rest once the cap is lifted")
            sent.result(5)
        assert peer.received == data


# ---------------------------------------------------------------------------------------- stall


def test_stall_holds_both_directions_until_resume(echo_server, clients):
    with FaultProxy("127.0.0.1", echo_server.port) as proxy:
        sock = clients(proxy.address)
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"
        peer = echo_server.peer()

        proxy.stall()
        assert proxy.stalled
        sock.sendall(b"up-while-stalled")
        peer.sock.sendall(b"down-while-stalled")
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):  # nothing comes down...
            sock.recv(100)
        assert peer.count == 4  # ...and nothing went up
        assert (proxy.bytes_up, proxy.bytes_down) == (4, 4)

        proxy.resume()
        assert not proxy.stalled
        sock.settimeout(5)
        wait_for(lambda: peer.received == b"ping" + b"up-while-stalled", "held upstream bytes after resume")
        want = b"down-while-stalled" + b"up-while-stalled"  # pushed, then the echo of what was held
        assert recv_exactly(sock, len(want)) == want


@pytest.mark.slow  # 1-2 s: the whole suite runs it, the quick lane stays under 2 minutes
def test_delay_holds_each_piece_then_forwards_it_in_order(echo_server, clients):
    with FaultProxy("127.0.0.1", echo_server.port) as proxy:
        sock = clients(proxy.address)
        proxy.delay(1.0, direction="down")
        sock.sendall(b"one")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):  # the echo is held...
            sock.recv(100)
        sock.settimeout(5)
        assert recv_exactly(sock, 3) == b"one"  # ...then arrives
        proxy.delay(None, direction="down")
        assert echo_round_trip(sock, b"two") == b"two"


def test_a_piece_held_by_a_delay_is_dropped_with_its_connection(echo_server, clients):
    with FaultProxy("127.0.0.1", echo_server.port) as proxy:
        sock = clients(proxy.address)
        proxy.delay(2.0, direction="down")
        sock.sendall(b"never")
        wait_for(lambda: echo_server.peer().count == 5, "the server echoing")
        proxy.refuse()
        sock.settimeout(5)
        with pytest.raises(ConnectionResetError):
            assert sock.recv(100) == b""


def test_timed_stall_ends_by_itself(sink_server, clients):
    with FaultProxy("127.0.0.1", sink_server.port) as proxy:
        proxy.stall(0.2)
        sock = clients(proxy.address)
        sock.sendall(b"later")
        wait_for(lambda: sink_server.peer().received == b"later", "bytes after the timed stall")
        assert not proxy.stalled


# ---------------------------------------------------------------------------------------- refuse / accept


def test_refuse_resets_existing_and_new_connections_until_accept(echo_server, clients):
    with FaultProxy("127.0.0.1", echo_server.port) as proxy:
        existing = clients(proxy.address)
        existing.sendall(b"hello")
        assert recv_exactly(existing, 5) == b"hello"

        proxy.refuse()
        assert proxy.refusing
        with pytest.raises(ConnectionResetError):  # the RST was sent before refuse() returned
            existing.recv(1)
        with pytest.raises(ConnectionResetError):
            clients(proxy.address).recv(1)
        assert proxy.refused_connections == 1
        assert holds_for(lambda: len(echo_server.peers) == 1, 0.05)  # never reached the server

        proxy.accept()
        assert echo_round_trip(clients(proxy.address), b"back") == b"back"
        assert len(echo_server.peers) == 2
        assert proxy.connections == 3


# ---------------------------------------------------------------------------------------- lifecycle


def test_stop_closes_everything_promptly_even_with_held_data(echo_server, clients):
    proxy = FaultProxy("127.0.0.1", echo_server.port).start()
    socks = [clients(proxy.address) for _ in range(20)]
    for sock in socks:
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
    proxy.stall()
    for sock in socks:
        sock.sendall(b"held")
    proxy.stop()
    assert not proxy._thread.is_alive()
    for sock in socks:
        with contextlib.suppress(ConnectionResetError):
            assert recv_to_eof(sock) == b""  # the held bytes are dropped, the connection closed
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(proxy.address, timeout=5).close()
    proxy.stop()  # idempotent


def test_configuration_is_validated():
    proxy = FaultProxy("127.0.0.1", 9)
    with pytest.raises(ValueError):
        proxy.reset_after(-1)
    with pytest.raises(ValueError):
        proxy.flip_byte_at(0, direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        proxy.bandwidth(0)
    with pytest.raises(RuntimeError):
        proxy.port  # noqa: B018 - not started
    proxy.stall(1)  # configuring before start is fine
    proxy.clear()
    assert not proxy.stalled
