"""Central under a real uvicorn (as ``fleet central serve`` runs it) on an ephemeral port, in a thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from central.core.httpserver import ServerTls, uvicorn_config
from fleet.config import CentralSettings
from tests.central.apps import app_for


@contextmanager
def serving(settings: CentralSettings, server_tls: ServerTls | None = None) -> Iterator[int]:
    """The port central answers on (over TLS when ``settings.tls``, through ``server_tls`` if given), until
    the block ends."""
    if server_tls is None and settings.tls is not None:
        server_tls = ServerTls(settings.tls)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    with app_for(settings) as app:
        server = uvicorn.Server(uvicorn_config(app, settings, server_tls=server_tls))
        thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "central did not start"
            time.sleep(0.02)
        try:
            yield sock.getsockname()[1]
        finally:
            server.should_exit = True
            thread.join(timeout=15)
            sock.close()
