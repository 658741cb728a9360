"""The desk page: what a sergeant at the front office uses to check pool cameras out and in.

Served by the station process with its desk API (``station.api``), at ``/desk``. It shows the
pool cameras docked here as the desk sees them (available, out to whom since when, charging,
refused by the battery gate and why), the cameras out now with a check-in button each, and a
form to check one out; when the battery gate refuses, the form comes back with the
supervisor's name and reason to hand it out anyway.

How it keeps the desk's security model (a page of another site must not drive the desk):
- Plain HTML forms, no script at all (``Content-Security-Policy: default-src 'none'``): a
  sergeant's browser needs nothing but HTML, and there is no script to inject into or to
  keep in step with the JSON API. Each form carries the desk's check token, which
  ``station.api.from_the_desk_only`` compares before any handler runs; it is made when the
  process starts and is only ever in this desk's own pages, which another site cannot read.
  With sign-in, a browser's token is bound to its session (``form_token``): the one the
  sign-in page shows anyone who reaches the desk passes for no signed-in browser.
  The middleware's Host and Origin checks apply to these posts too (DNS rebinding, a form on
  another site), and only the page's own paths take a form: the JSON API still takes JSON only.
- Beyond loopback the desk has an ``api_token``; the page then asks for it once in a sign-in
  form and holds a session in an ``HttpOnly; SameSite=Strict`` cookie (``station.web.sessions``),
  never the token in a URL. A desk on loopback without a token needs no sign-in, as its API.

Refusals (an unknown serial, a camera already out, the battery gate) come back as one line
on the page, the form filled in as it was sent, never a traceback.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import jinja2
import msgspec
from litestar import Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.enums import MediaType, RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.handlers import BaseRouteHandler
from litestar.params import Body, QueryParameter
from litestar.response import Redirect

from fleet.errors import ApiError, BadRequest, BatteryGateRefused, TooManyRequests, Unauthorized
from station.access_code import AccessCode, client_address
from station.web.sessions import COOKIE, IDLE, DeskSessions

if TYPE_CHECKING:
    from station.node import StationNode

PREFIX = "/desk"
"""The page's paths: only these take a form post (with the check token), and answer in HTML."""
STYLESHEET = Path(__file__).with_name("static") / "desk.css"
STYLESHEET_PATH = f"{PREFIX}/desk.css"
CSRF_FIELD = "csrf_token"
SEE_OTHER: Literal[303] = 303
"""After a form: the browser GETs the page, so a reload never posts the form again."""
FORM_BODY = Body(media_type=RequestEncodingType.URL_ENCODED)

LABEL = {
    "available": "available",
    "out": "out",
    "charging": "charging",
    "refused": "refused by the battery gate",
    "undocked": "checked in by hand",
    "unavailable": "unavailable",
}
TONE = {"available": "ok", "out": "", "charging": "warn", "refused": "bad", "undocked": "warn", "unavailable": "bad"}


class CheckoutForm(msgspec.Struct, kw_only=True):
    device_serial: str = ""
    officer_id: str = ""
    by: str = ""
    override_reason: str = ""


class CheckinForm(msgspec.Struct, kw_only=True):
    device_serial: str = ""


class SignInForm(msgspec.Struct, kw_only=True):
    token: str = ""


def owns(path: str) -> bool:
    """Whether ``path`` is the page's (HTML answers, form posts) rather than the JSON API's."""
    return path == "/" or path == PREFIX or path.startswith(PREFIX + "/")


def _local(moment: datetime) -> str:
    """A time as the front office reads it: the station's own time zone, day and minute."""
    return moment.astimezone().strftime("%H:%M, %a %d %b")


@dataclass
class DeskPage:
    """The page's routes and renderings for one desk; ``csrf``: the secret its forms' tokens come from."""

    node: StationNode
    operator: str
    csrf: str
    sessions: DeskSessions
    access: AccessCode | None = None
    """The desk's access code (``station.access_code``); None: no sign-in (loopback only)."""

    def __post_init__(self) -> None:
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("station.web", "templates"), autoescape=True, undefined=jinja2.StrictUndefined
        )
        self.templates.filters["local"] = _local

    @property
    def needs_sign_in(self) -> bool:
        return self.access is not None

    def signed_in(self, connection: ASGIConnection) -> bool:
        return not self.needs_sign_in or self.sessions.valid(connection.cookies.get(COOKIE))

    def guard(self, connection: ASGIConnection, _: BaseRouteHandler) -> None:
        """On every page route but sign-in: a desk with a token needs a signed-in browser."""
        if not self.signed_in(connection):
            raise Unauthorized("sign in to the desk first")

    def form_token(self, connection: ASGIConnection) -> str:
        """The check token this browser's forms carry: with sign-in, bound to its session cookie."""
        session_id = connection.cookies.get(COOKIE) if self.needs_sign_in else None
        if not session_id:
            return self.csrf
        return hmac.new(self.csrf.encode(), session_id.encode(), hashlib.sha256).hexdigest()

    def html(self, connection: ASGIConnection, template: str, status: int = 200, **context) -> Response:
        settings = self.node.settings
        body = self.templates.get_template(template).render(
            station_id=settings.station_id,
            borough=settings.borough,
            csrf=self.form_token(connection),
            signed_in=self.needs_sign_in and self.signed_in(connection),  # a sign-out button for those signed in
            done=context.pop("done", None),
            failed=context.pop("failed", None),
            **context,
        )
        return Response(body, status_code=status, media_type=MediaType.HTML)

    def desk(
        self,
        connection: ASGIConnection,
        status: int = 200,
        *,
        form: CheckoutForm | None = None,
        gated: bool = False,
        **lines: str | None,
    ) -> Response:
        desk = self.node.desk
        return self.html(
            connection,
            "desk.html",
            status,
            form=form or CheckoutForm(),
            gated=gated,
            out=desk.open_checkouts(),
            rack=desk.rack(),
            min_pct=f"{desk.policy().min_checkout_pct:.0f}",
            label=LABEL,
            tone=TONE,
            **lines,
        )

    def error(self, request: Request, exc: Exception) -> Response:
        """A refusal on a page path: one line on a page (or, not signed in, the sign-in form)."""
        if isinstance(exc, Unauthorized):
            return Redirect(f"{PREFIX}/sign-in", status_code=SEE_OTHER)
        if isinstance(exc, ApiError):
            status, line = exc.status_code, exc.message
        elif isinstance(exc, HTTPException):
            status, line = exc.status_code, exc.detail
        else:
            status, line = 500, "the desk could not do that; the station's log says why"
        return self.html(request, "error.html", status, failed=line)

    def done_line(self, checked_out: str | None, checked_in: str | None) -> str | None:
        """What the last form did, read back from the desk (a link can only show what is true)."""
        serial = checked_out or checked_in
        if not serial:
            return None
        last = self.node.desk.history(serial, limit=1)
        if not last:
            return None
        c = last[0]
        if checked_out and c.in_at is None:
            charge = f", charged about {c.battery_pct:.0f}%" if c.battery_pct is not None else ""
            return f"{c.device_serial} checked out to {c.officer_id} at {_local(c.out_at)}{charge}."
        if checked_in and c.in_at is not None:
            return f"{c.device_serial} checked in from {c.officer_id} at {_local(c.in_at)}."
        return None

    def routes(self) -> list:
        page = self

        @get("/", include_in_schema=False)
        async def home() -> Redirect:
            return Redirect(PREFIX, status_code=SEE_OTHER)

        @get(PREFIX, guards=[page.guard], include_in_schema=False, sync_to_thread=True)
        def show(
            request: Request,
            checked_out: Annotated[str | None, QueryParameter(max_length=64)] = None,
            checked_in: Annotated[str | None, QueryParameter(max_length=64)] = None,
        ) -> Response:
            return page.desk(request, done=page.done_line(checked_out, checked_in))

        @post(f"{PREFIX}/checkouts", guards=[page.guard], include_in_schema=False, sync_to_thread=True)
        def check_out(request: Request, data: Annotated[CheckoutForm, FORM_BODY]) -> Response:
            by, reason = data.by.strip(), data.override_reason.strip()
            try:
                if len(by) > 64 or len(reason) > 500:
                    raise BadRequest("keep the supervisor's name under 64 characters and the reason under 500")
                if reason and not by:
                    raise BadRequest("a camera handed out against the battery gate needs the supervisor's name")
                out = page.node.desk.checkout(
                    data.device_serial, data.officer_id, by=by or page.operator, override=reason or None
                )
            except BatteryGateRefused as refused:
                return page.desk(request, refused.status_code, form=data, gated=True, failed=refused.message)
            except ApiError as refused:
                return page.desk(request, refused.status_code, form=data, gated=bool(reason), failed=refused.message)
            return Redirect(PREFIX, status_code=SEE_OTHER, query_params={"checked_out": out.device_serial})

        @post(f"{PREFIX}/checkins", guards=[page.guard], include_in_schema=False, sync_to_thread=True)
        def check_in(request: Request, data: Annotated[CheckinForm, FORM_BODY]) -> Response:
            try:
                back = page.node.desk.checkin(data.device_serial, by=page.operator)
            except ApiError as refused:
                return page.desk(request, refused.status_code, failed=refused.message)
            return Redirect(PREFIX, status_code=SEE_OTHER, query_params={"checked_in": back.device_serial})

        @get(f"{PREFIX}/sign-in", include_in_schema=False)
        async def sign_in_form(request: Request) -> Response:
            if page.signed_in(request):
                return Redirect(PREFIX, status_code=SEE_OTHER)
            return page.html(request, "sign_in.html")

        @post(f"{PREFIX}/sign-in", include_in_schema=False)
        async def sign_in(request: Request, data: Annotated[SignInForm, FORM_BODY]) -> Response:
            if page.access is None:
                return Redirect(PREFIX, status_code=SEE_OTHER)
            try:
                right = page.access.check(data.token, client_address(request))
            except TooManyRequests as locked:
                response = page.html(request, "sign_in.html", 429, failed=locked.message)
                response.headers.update(locked.headers)
                return response
            if not right:
                return page.html(request, "sign_in.html", 401, failed="that is not this desk's access code")
            return Redirect(
                PREFIX,
                status_code=SEE_OTHER,
                cookies=[
                    Cookie(
                        key=COOKIE,
                        value=page.sessions.start(),
                        path="/",
                        httponly=True,
                        samesite="strict",
                        max_age=int(IDLE.total_seconds()),
                    )
                ],
            )

        @post(f"{PREFIX}/sign-out", include_in_schema=False)
        async def sign_out(request: Request) -> Response:
            page.sessions.end(request.cookies.get(COOKIE))
            return Redirect(
                f"{PREFIX}/sign-in", status_code=SEE_OTHER, cookies=[Cookie(key=COOKIE, value="", path="/", max_age=0)]
            )

        @get(STYLESHEET_PATH, include_in_schema=False)
        async def stylesheet() -> Response:
            return Response(STYLESHEET.read_bytes(), media_type="text/css")

        return [home, show, check_out, check_in, sign_in_form, sign_in, sign_out, stylesheet]


def desk_page(node: StationNode, operator: str, access: AccessCode | None) -> DeskPage:
    """The page of this desk, with a fresh check token for its forms (see the module docstring);
    ``access``: the desk's access code, shared with its API (None: the desk has none)."""
    return DeskPage(node, operator, csrf=secrets.token_urlsafe(32), sessions=DeskSessions(), access=access)
