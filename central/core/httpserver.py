"""Central's HTTP server: uvicorn with httptools and uvloop, a request's head bounded.

httptools (llhttp) sets no limit on a request's head: a header of megabytes that never
ends is buffered whole, and uvicorn's ``h11_max_incomplete_event_size`` bounds only its
h11 parser. ``BoundedHttpTools`` counts a head's bytes as they arrive; past
``MAX_HEAD_BYTES`` it answers 431 in the one JSON error shape, then reads and drops what the
client still sends for ``LINGER_S`` (so the client reads the answer rather than a reset)
and closes the connection.

A large tus PATCH's body is read by the event loop straight into the upload receiver's
buffers, past httptools and uvicorn's copies of it (``central.core.directbody``).

Over TLS (``[tls]``) the context is central's own (``fleet.tls``), kept by ``ServerTls`` so
SIGHUP loads a renewed certificate into it; the names of a verified client certificate are
put in each request's scope (``scope["extensions"]["tls"]``, the ASGI TLS extension's place)
for ``central.access`` to match against a station's token.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

import httptools
import msgspec
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from central.core.directbody import PIECE_BYTES, RECEIVE_IDLE_S, SCOPE_KEY, DirectBody, wants_direct_body
from central.core.headers import HEADERS
from fleet import tls
from fleet.config import CentralSettings, ServerTlsSettings
from fleet.protocol import ErrorBody

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
"""A request line and headers (tokens, cookies, tus metadata) fit in a few KiB."""
LINGER_S = 2.0


class BoundedHttpTools(HttpToolsProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_body = False
        self._refused = False
        self._tls: dict[object, object] | None = None
        self._direct: DirectBody | None = None
        self._drop_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:  # after the handshake: the client's certificate is known (or absent)
            peer = ssl_object.getpeercert()
            self._tls = {
                "tls_version": ssl_object.version(),
                "client_cert_names": sorted(tls.peer_names(peer)),
            }

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            self.scope["extensions"] = {"tls": dict(self._tls)}

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # answered already: dropped until the connection closes
        if not self._in_body:
            self._head_bytes += len(data)
        super().data_received(data)
        if not self._in_body and self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            self._refuse()
        direct = self._direct
        if direct is not None and not direct.installed and direct.remaining and not self.transport.is_closing():
            direct.installed = True  # the rest of the body goes straight into the handler's buffers
            self.transport.set_protocol(direct)

    def on_headers_complete(self) -> None:
        self._in_body, self._head_bytes = True, 0
        super().on_headers_complete()
        length = 0 if self.pipeline else wants_direct_body(self.scope["method"], self.scope["headers"])
        if length:  # (a request queued behind another's answer is parsed as usual)
            direct = self._direct = DirectBody(self, length)
            self.scope.setdefault("extensions", {})[SCOPE_KEY] = direct  # type: ignore[assignment]
            self.cycle.receive = _receive_through(direct, self.cycle.receive)  # type: ignore[method-assign]

    def on_body(self, body: bytes) -> None:
        if self._direct is not None and not self.cycle.response_complete:
            self._direct.early(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        self._direct = None  # (the parser saw the whole body: it came with the head)
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self._direct is not None and self._direct.installed:
            self._direct.discard()  # answered before the body's end: the rest is read and dropped
        super().on_response_complete()

    # The HTTP side of a DirectBody (central.core.directbody.HttpSide).

    def direct_body_done(self) -> None:
        """The direct body's last byte is in: a fresh parser takes the connection's next request."""
        self._direct = None
        if self._drop_deadline is not None:
            self._drop_deadline.cancel()
            self._drop_deadline = None
        self.transport.set_protocol(self)
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)  # as uvicorn makes its parser
        self.on_message_complete()
        self.flow.resume_reading()
        if self.cycle.response_complete and self.timeout_keep_alive_task is None and not self.transport.is_closing():
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def close_unless_done_within_keep_alive(self) -> None:
        """A body being dropped after its answer must end within the keep-alive time, or the
        connection is closed (as a connection idle after its answer would be)."""
        if self._drop_deadline is None:
            self._drop_deadline = self.loop.call_later(self.timeout_keep_alive, self._close_if_still_dropping)

    def _close_if_still_dropping(self) -> None:
        self._drop_deadline = None
        if self._direct is not None and not self.transport.is_closing():
            self.transport.close()

    def pause_reading(self) -> None:
        self.flow.pause_reading()

    def resume_reading(self) -> None:
        self.flow.resume_reading()

    def continue_if_expected(self) -> None:
        """Say "100 Continue" to a client waiting for it, as uvicorn's ``receive`` does."""
        if self.cycle.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.cycle.waiting_for_100_continue = False

    def body_bytes_arrived(self) -> None:
        self._unset_keepalive_if_required()

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


def _receive_through(direct: DirectBody, receive):
    """The ASGI ``receive`` of a request whose body is read direct: its body from ``direct``, in
    pieces, for any reader that does not lend buffers; then uvicorn's own."""

    async def receive_direct():
        if direct.ended:
            if direct.complete:
                return await receive()
            return {"type": "http.disconnect"}
        buffer = memoryview(bytearray(min(PIECE_BYTES, direct.remaining + direct.spilled)))
        n = 0
        while not n and not direct.ended:
            n = await direct.readinto(buffer, idle_timeout_s=RECEIVE_IDLE_S)
        if not n:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": bytes(buffer[:n]), "more_body": not direct.complete}

    return receive_direct


class ServerTls:
    """Central's TLS context, made once; ``reload`` (on SIGHUP) loads the files again into it."""

    def __init__(self, settings: ServerTlsSettings) -> None:
        self.settings = settings
        self.context = tls.server_context(settings)

    def factory(self, _config, _default) -> ssl.SSLContext:
        """uvicorn's ``ssl_context_factory``: this context, not one uvicorn builds and forgets."""
        return self.context

    def reload(self) -> bool:
        """Read the certificate and key again; a pair that does not work is refused and the
        connections keep the one they had (said in the log)."""
        try:
            tls.reload(self.context, self.settings)
        except tls.TlsError as exc:
            log.error("SIGHUP: kept the current certificate: %s", exc)
            return False
        log.info("SIGHUP: certificate %s loaded for new connections", self.settings.certificate)
        return True


def uvicorn_config(
    app, settings: CentralSettings, port: int | None = None, server_tls: ServerTls | None = None
) -> uvicorn.Config:
    """How ``fleet central serve`` runs central (``port``: a replica's own, instead of the config's;
    ``server_tls``: HTTPS with that context, else plain HTTP)."""
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
        ssl_context_factory=server_tls.factory if server_tls is not None else None,
    )
