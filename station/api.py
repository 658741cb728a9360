"""The desk's local HTTP API: checkout, check-in and status at the station, with central down or up.

Served by the station process itself (uvicorn on an event-loop thread) on ``api_host:api_port``;
loopback by default. Beyond loopback a bearer ``api_token`` is required (checked in
constant time). Errors have the same JSON shape as central's.

A web page open on the station PC must not drive the desk (``from_the_desk_only``): a
request is refused (403) unless its ``Host`` names this desk (a loopback name or
``api_host``, with ``api_port``: a DNS-rebound name does not) and its ``Origin``, if any, is
the desk itself; a state-changing request needs ``Content-Type: application/json`` (415),
which a plain HTML form or a ``no-cors`` fetch from another site cannot send. The one
exception is the desk's own page (``station.web.page``, under ``/desk``): its forms post
``application/x-www-form-urlencoded`` carrying the desk's check token, compared here before
any handler runs (403 without it); its paths take nothing else (415). Every answer carries
a Content-Security-Policy that allows no script at all, and no framing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import getpass
import hmac
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated
from urllib.parse import parse_qs, urlsplit

import h11
import msgspec
import uvicorn
from litestar import Litestar, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import Headers, MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.params import JSONBody, QueryParameter
from litestar.types import ASGIApp, HTTPRequestEvent, HTTPScope, Message, Receive, ReceiveMessage, Scope, Send
from uvicorn.loops.auto import auto_loop_factory
from uvicorn.protocols.http.h11_impl import H11Protocol

from fleet.config import StationSettings, token_sha256
from fleet.errors import (
    ApiError,
    BadRequest,
    FleetError,
    Forbidden,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from fleet.events import OfficerId
from fleet.metrics import CONTENT_TYPE, exposition
from fleet.protocol import ErrorBody, Serial, StationStatus
from station.access_code import AccessCode, bearer_code, client_address
from station.store.checkouts import Checkout
from station.web import page

if TYPE_CHECKING:
    from station.node import StationNode

log = logging.getLogger(__name__)


class CheckoutRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    device_serial: Serial
    officer_id: OfficerId
    by: Annotated[str, msgspec.Meta(max_length=64)] = ""
    override_reason: Annotated[str, msgspec.Meta(max_length=500)] = ""
    """A supervisor's reason to hand out a camera the battery gate refuses (audited at central)."""


class CheckinRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    device_serial: Serial
    by: Annotated[str, msgspec.Meta(max_length=64)] = ""


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        msgspec.json.encode(ErrorBody(status=status, error=code, message=message)),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


FORM = "application/x-www-form-urlencoded"
FORM_MAX_BYTES = 16 * 1024
FORM_MAX_FIELDS = 20
"""The desk page's forms are a few short fields."""
BODY_MAX_BYTES = 64 * 1024
"""Any desk request's body at most (its JSON is a few short fields too), not Litestar's 10 MB each."""

CSP = "; ".join(
    [
        "default-src 'none'",
        "style-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: under it a browser sends ``Origin: null`` with the page's own form posts,
    # which the Origin check must refuse; same-origin still sends nothing to another site.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


async def add_security_headers(message: Message, scope: Scope) -> None:
    """On every answer, including errors no route produced: nothing the desk sends runs script,
    is framed, or is cached (it names officers and cameras); the page's stylesheet may be."""
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    for name, value in SECURITY_HEADERS.items():
        headers[name] = value
    if scope.get("path") != page.STYLESHEET_PATH:
        headers["Cache-Control"] = "no-store"


def from_the_desk_only(
    settings: StationSettings, form_token: Callable[[ASGIConnection], str]
) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware: refuse what a browser page from elsewhere could send (module docstring).
    ``form_token``: the check token the desk page's forms carry, for the browser asking."""
    names = LOOPBACK_NAMES | {settings.api_host.lower()}
    # Bound to every interface, the desk is reached by names it cannot know; it then has a
    # bearer token (fleet.config insists), which a page from another site cannot send.
    any_name = settings.api_host in WILDCARD_HOSTS and settings.api_token is not None

    def where(authority: str) -> tuple[str, int] | None:
        try:
            parts = urlsplit("//" + authority)
            return (parts.hostname or "").lower(), parts.port or 80
        except ValueError:
            return None

    def check(scope: HTTPScope) -> bool:
        """Refuse what no page of this desk sends; True for the page's own form post (its token is checked next)."""
        headers = Headers.from_scope(scope)
        host = where(headers.get("host", ""))
        if (
            host is None
            or (host[0] not in names and not any_name)
            or (settings.api_port is not None and host[1] != settings.api_port)
        ):
            raise Forbidden(
                f"this desk answers only to its own address, not Host {headers.get('host', '')!r} "
                "(a web page cannot reach it under another name)"
            )
        origin = headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin)
            if parts.scheme != "http" or where(parts.netloc) != host:
                raise Forbidden(f"requests from another site (Origin {origin!r}) may not use this desk")
        media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if scope["method"] in SAFE_METHODS:
            return False
        # The page's paths take its forms only, so every post to them has its token compared: the
        # form parser reads a form body labelled JSON all the same.
        if page.owns(scope["path"]):
            if media_type == FORM:
                return True
            raise UnsupportedMediaType(f"the desk page takes its own forms ({FORM}), not {media_type or 'none'!r}")
        if media_type == "application/json":
            return False
        raise UnsupportedMediaType(f"send Content-Type: application/json, not {media_type or 'none'!r}")

    async def checked_form(receive: Receive, csrf: str) -> Receive:
        """The form's body, read whole (it is small), its check token compared, then replayed to the app."""
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if len(body) > FORM_MAX_BYTES:
                raise PayloadTooLarge(f"a desk form is under {FORM_MAX_BYTES // 1024} KiB")
            if not message.get("more_body", False):
                break
        try:
            fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=FORM_MAX_FIELDS)
        except ValueError:
            raise BadRequest(f"a desk form has at most {FORM_MAX_FIELDS} fields") from None
        given = fields.get(page.CSRF_FIELD, [""])[0]
        if not hmac.compare_digest(given.encode(), csrf.encode()):
            raise Forbidden(
                "this form did not come from this desk's own page, or the page is older than the "
                "station's last restart: open the desk page again and repeat what you did"
            )
        replayed = False

        async def replay() -> ReceiveMessage:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            whole: HTTPRequestEvent = {"type": "http.request", "body": body, "more_body": False}
            return whole

        return replay

    def middleware(app: ASGIApp) -> ASGIApp:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == ScopeType.HTTP and check(scope):  # the desk serves no websockets
                receive = await checked_form(receive, form_token(ASGIConnection(scope)))
            await app(scope, receive, send)

        return guarded

    return middleware


def create_desk_app(node: StationNode) -> Litestar:
    token = node.settings.api_token
    access = AccessCode(token) if token is not None else None
    operator = getpass.getuser()

    def authorize(request: Request) -> None:
        if access is None:
            return
        if not access.check(bearer_code(request), client_address(request)):
            raise Unauthorized("this desk API needs 'Authorization: Bearer <api_token>'")

    # Its own count: a scraper with a stale token locks out its own guesses, not the desk's browser.
    metrics_token = node.settings.metrics
    scraper = AccessCode.hashed(token_sha256(metrics_token, "token")) if metrics_token.configured else None

    def may_scrape(request: Request) -> None:
        """With a ``[metrics]`` token, only it reads ``/metrics``; without one, whoever may read ``/status``."""
        if scraper is None:
            authorize(request)
            return
        if not scraper.check(bearer_code(request), client_address(request)):
            raise Unauthorized("/metrics needs 'Authorization: Bearer <[metrics] token>'")

    @get("/metrics", summary="Prometheus metrics of this station (docs/metrics.md)", sync_to_thread=True)
    def metrics(request: Request) -> Response:
        may_scrape(request)
        return Response(exposition(node.metrics.registry), media_type=CONTENT_TYPE)

    @get("/healthz", summary="The station process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "station_id": node.settings.station_id}

    @get("/status", summary="The station's queue (as `fleet station status --json`)", sync_to_thread=True)
    def status(request: Request) -> StationStatus:
        from station.status import station_status

        authorize(request)
        return station_status(node.settings, node.store)

    @get("/checkouts", summary="Cameras checked out now (or the history of one camera)", sync_to_thread=True)
    def checkouts(
        request: Request, serial: Annotated[str | None, QueryParameter(max_length=64)] = None
    ) -> list[Checkout]:
        authorize(request)
        return node.desk.history(serial) if serial else node.desk.open_checkouts()

    @post("/checkouts", status_code=201, summary="Check a pool camera out to an officer", sync_to_thread=True)
    def checkout(request: Request, data: JSONBody[CheckoutRequest]) -> Checkout:
        authorize(request)
        return node.desk.checkout(
            data.device_serial, data.officer_id, by=data.by or operator, override=data.override_reason
        )

    @post("/checkins", status_code=200, summary="Check a camera back in by hand", sync_to_thread=True)
    def checkin(request: Request, data: JSONBody[CheckinRequest]) -> Checkout:
        authorize(request)
        return node.desk.checkin(data.device_serial, by=data.by or operator)

    def api_error(request: Request, exc: ApiError) -> Response:
        if page.owns(request.url.path):
            return desk_page.error(request, exc)
        return _error(exc.status_code, exc.code, exc.message, exc.headers)  # a 429's Retry-After

    def http_error(request: Request, exc: HTTPException) -> Response:
        if page.owns(request.url.path):
            return desk_page.error(request, exc)
        return _error(
            exc.status_code,
            "bad_request" if exc.status_code == 400 else "error",
            f"{exc.detail}: {exc.extra}" if exc.extra else exc.detail,
        )

    desk_page = page.desk_page(node, operator, access)
    return Litestar(
        route_handlers=[healthz, status, metrics, checkouts, checkout, checkin, *desk_page.routes()],
        middleware=[from_the_desk_only(node.settings, desk_page.form_token)],
        before_send=[add_security_headers],
        exception_handlers={ApiError: api_error, HTTPException: http_error},
        request_max_body_size=BODY_MAX_BYTES,
        logging_config=None,
        debug=False,
    )


_shared_loop: asyncio.AbstractEventLoop | None = None
_shared_loop_lock = threading.Lock()


def _desk_loop() -> asyncio.AbstractEventLoop:
    """One event loop thread serves every desk API of this process. A host running many stations
    (``fleet station run --config A --config B …``) had a thread each, and uvicorn wakes each
    server ten times a second: measured idle, 16 desks cost 2.4 % of a core, most of it in
    handing the GIL between their threads."""
    global _shared_loop
    with _shared_loop_lock:
        if _shared_loop is None:
            # The loop uvicorn's default ``loop="auto"`` picks (uvloop when installed), asked of
            # its factory directly: a throwaway ``uvicorn.Config`` would install uvicorn's own
            # logging handlers over the station's.
            loop = auto_loop_factory()()
            threading.Thread(target=loop.run_forever, name="desk-api", daemon=True).start()
            _shared_loop = loop
        return _shared_loop


class DeskHttp(H11Protocol):
    """uvicorn's h11 protocol, with a request given ``REQUEST_S`` to arrive whole (its head and its
    small body) from its connection, or from the last answer on a kept-alive one. uvicorn sets no
    such limit: connections that send half a request and wait hold a file handle each for ever,
    and about a thousand of them (systemd's soft limit) left the station unable to open a file,
    a socket or its database, for its sync as for its desk."""

    REQUEST_S = 10.0
    """A sergeant's browser or a desk client sends its whole request at once."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._request_deadline: asyncio.TimerHandle | None = None
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE and self.conn.their_state is not h11.SEND_BODY:
            self._disarm()  # the request is in whole: the handler takes its time

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection has its own REQUEST_S

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._request_deadline = self.loop.call_later(self.REQUEST_S, self._too_slow)

    def _disarm(self) -> None:
        if self._request_deadline is not None:
            self._request_deadline.cancel()
            self._request_deadline = None

    def _too_slow(self) -> None:
        self._request_deadline = None
        if not self.transport.is_closing():
            log.info("desk: closed a connection whose request did not arrive whole in %.0f s", self.REQUEST_S)
            self.transport.close()


class DeskServer:
    """uvicorn on the process's desk loop (``_desk_loop``), started and stopped by the node."""

    def __init__(self, node: StationNode, host: str, port: int) -> None:
        config = uvicorn.Config(
            create_desk_app(node),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            # Reached directly, never through a proxy: a client's X-Forwarded-For (uvicorn trusts it
            # from loopback by default) must not name another address to the access code's lockout.
            proxy_headers=False,
            # h11 refuses a request head over 16 KiB; httptools holds an unfinished one however long
            # it grows (eight 40 MiB Authorization headers: 375 MiB). The desk's requests are few and
            # small, and each must arrive whole in DeskHttp.REQUEST_S.
            http=DeskHttp,
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.served: concurrent.futures.Future | None = None

    async def _serve(self) -> None:
        try:
            await self.server.serve()
        except SystemExit as exc:  # uvicorn's answer to a port in use: this desk fails, not the loop
            raise FleetError(
                f"the desk API could not start on {self.server.config.host}:"
                f"{self.server.config.port} (exit {exc.code}); see the log above"
            ) from None

    def start(self, timeout_s: float = 10.0) -> None:
        self.served = asyncio.run_coroutine_threadsafe(self._serve(), _desk_loop())
        deadline = time.monotonic() + timeout_s
        while not self.server.started and not self.served.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.served.done() and self.served.exception() is not None:
            log.error("%s; the station runs on without its desk API", self.served.exception())

    def stop(self) -> None:
        self.server.should_exit = True
        if self.served is not None:
            try:
                self.served.result(timeout=10)
            except Exception as exc:  # it never started, or did not stop in time: logged, the node stops anyway
                log.warning("desk API: %s", exc)
