"""One webhook attempt against receivers that misbehave (real sockets on loopback): a redirect is
never followed, and an answer's body is never waited for."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from central.alerts import webhook
from fleet.errors import PermanentTransferError
from tests.central.alerts.conftest import SECRET
from tests.central.alerts.receivers import WebhookReceiver


@contextmanager
def answering(head: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """A server that reads each request's head, answers ``head`` and then sends nothing more,
    holding the connection open until the test ends; yields its URL and the requests' heads."""
    listener = socket.create_server(("127.0.0.1", 0))
    heads: list[bytes] = []
    held: list[socket.socket] = []
    done = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            heads.append(data.split(b"\r\n\r\n")[0])
            conn.sendall(head)
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook", heads
    finally:
        done.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def test_a_2xx_whose_body_never_comes_is_delivered_once():
    stalled = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    with answering(stalled) as (url, heads), httpx.Client(timeout=0.5, follow_redirects=False) as client:
        webhook.post(client, url, SECRET, "m-1", b"{}")  # no ReadTimeout: the status is the answer
    assert len(heads) == 1


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_never_followed(status):
    elsewhere = WebhookReceiver(SECRET).start()  # where the redirect points (central itself, a metadata address...)
    try:
        head = f"HTTP/1.1 {status} Moved\r\nLocation: {elsewhere.url}\r\nContent-Length: 0\r\n\r\n".encode()
        with (
            answering(head) as (url, _),
            httpx.Client(timeout=5, follow_redirects=False) as client,
            pytest.raises(PermanentTransferError),
        ):
            webhook.post(client, url, SECRET, "m-2", b"{}")
    finally:
        elsewhere.stop()
    assert elsewhere.requests == 0
