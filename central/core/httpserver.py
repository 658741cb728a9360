"""Central's HTTP server: uvicorn with httptools and uvloop, a request's head bounded.

httptools (llhttp) sets no limit on a request's head: a header of megabytes that never
ends is buffered whole, and uvicorn's ``h11_max_incomplete_event_size`` bounds only its
h11 parser. ``BoundedHttpTools`` counts a head's bytes as they arrive; past
``MAX_HEAD_BYTES`` it answers 431 in the one JSON error shape, then reads and drops what the
client still sends for ``LINGER_S`` (so the client reads the answer rather than a reset)
and closes the connection.
"""

from __future__ import annotations

import msgspec
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from central.core.headers import HEADERS
from fleet.config import CentralSettings
from fleet.protocol import ErrorBody

MAX_HEAD_BYTES = 64 * 1024
"""A request line and headers (tokens, cookies, tus metadata) fit in a few KiB."""
LINGER_S = 2.0


class BoundedHttpTools(HttpToolsProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_body = False
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # answered already: dropped until the connection closes
        if not self._in_body:
            self._head_bytes += len(data)
        super().data_received(data)
        if not self._in_body and self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            self._refuse()

    def on_headers_complete(self) -> None:
        self._in_body, self._head_bytes = True, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()

    def _refuse(self) -> None:
        self._refused = True
        body = msgspec.json.encode(
            ErrorBody(
                status=431,
                error="request_header_fields_too_large",
                message=f"the request's headers are over {MAX_HEAD_BYTES} bytes",
            )
        )
        headers = {
            **HEADERS,
            "Cache-Control": "no-store",
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "Connection": "close",
        }
        self.logger.warning(
            "a request head over %d bytes from %s: refused with 431",
            MAX_HEAD_BYTES,
            "{}:{}".format(*self.client) if self.client else "-",
        )
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
            + b"\r\n"
            + body
        )
        self.loop.call_later(LINGER_S, self.transport.close)


def uvicorn_config(app, settings: CentralSettings, port: int | None = None) -> uvicorn.Config:
    """How ``fleet central serve`` runs central (``port``: a replica's own, instead of the config's)."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port if port is None else port,
        loop="uvloop",
        http=BoundedHttpTools,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="on",
        log_config=None,
        timeout_graceful_shutdown=10,
        # Behind a balancer every connection comes from it: the client is whom it says (docs/deployment.md).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies),
    )
