"""The fleet dashboard: server-rendered pages (Jinja2) over the same services as the API.

Browsers log in with a user name and password (``central.access.users``) and then carry an
HTTP-only session cookie; every form posts the session's CSRF token. Pages ask for the
same roles as the API routes they mirror. Errors are pages too: a caller without a
session is sent to the login page, one without the right role sees a 403 page.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import quote, urlencode, urlsplit

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie, FormMultiDict
from litestar.di import Provide
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template

from central.access import login_csrf, oidc
from central.access.auth import SESSION_COOKIE, Caller, authenticate, check_csrf, principal_of, user_with
from central.access.oidc import DirectorySignIn
from central.access.scope import (
    LISTS,
    OwnerLookup,
    Scoped,
    form_text,
    in_path,
    in_query,
    lists,
    no_borough,
    touches,
)
from central.access.users import CLIP_FINDERS, SESSION_HOURS, UserService
from central.alerts import conditions
from central.core.providers import Injected
from central.core.store import CentralStore
from central.events import claims
from central.firmware.deployments import DeploymentService
from central.firmware.profiles import ProfileService
from central.registry.devices import FLAG_SQL, DeviceService
from central.registry.lifecycle import LIFECYCLE_STATES
from central.registry.stations import StationService
from central.web import charts
from fleet.clock import utc_now
from fleet.config import CentralSettings
from fleet.errors import ApiError, BadRequest, NotFound, TooManyRequests, Unauthorized

NAV: list[tuple[str, str, str | tuple[str, ...]]] = [
    ("/", "Overview", "viewer"),
    ("/stations", "Stations", "viewer"),
    ("/devices", "Devices", "viewer"),
    ("/officers", "Officers", "viewer"),
    ("/rollout", "Roll-out", "viewer"),
    ("/models", "Models", "viewer"),
    ("/profiles", "Profiles", "viewer"),
    ("/firmware", "Firmware", "fleet_manager"),
    ("/deployments", "Deployments", "fleet_manager"),
    ("/clips", "Clips", CLIP_FINDERS),
    ("/cases", "Cases", "supervisor"),
    ("/audit", "Audit", "auditor"),
    ("/keep-requests", "Requests to keep footage", "information_manager"),
]
"""(path, label, role or roles): the navigation each user sees."""

ALERTS = [(kind.key, kind.label, kind.link) for kind in conditions.KINDS if kind.link.startswith("/devices?flag=")]
"""The cameras' alert flags (the Devices page's filter)."""
KEEP_OVERDUE = conditions.KEEP_OVERDUE


class Overview(msgspec.Struct, kw_only=True):
    total: int
    by_state: dict[str, int]
    by_borough: list[tuple[str, dict[str, int], int]]
    """(borough, cameras by state, total), largest first."""
    alerts: list[tuple[str, str, int, str]]
    """(key, label, count, link)."""
    stations: list
    healthy: int
    stale: int
    offline: int


def overview(
    store: CentralStore,
    owners: OwnerLookup,
    devices: DeviceService,
    station_service: StationService,
    within: str | None = None,
) -> Overview:
    """The whole force's figures, or one borough's (``within``)."""
    now = utc_now()
    only = "WHERE borough = :b" if within is not None else ""
    params = {"b": within}
    with store.writer.read() as db:
        by_state = dict(db.execute(f"SELECT lifecycle, count(*) FROM devices {only} GROUP BY 1", params).fetchall())
        boroughs: dict[str, dict[str, int]] = {}
        for borough, lifecycle, n in db.execute(  # in borough order: the table's ties keep it on either database
            f"SELECT COALESCE(borough, '(unallocated)'), lifecycle, count(*) FROM devices {only} "
            "GROUP BY 1, 2 ORDER BY 1, 2",
            params,
        ):
            boroughs.setdefault(borough, {})[lifecycle] = n
    stations = [s for s in station_service.all(now) if within in (None, s.borough)]
    counts = conditions.counts(store.writer, owners, devices, stations, within, now)
    offline_after = timedelta(hours=24)
    gone = {s.station_id for s in stations if s.last_seen_at is None or now - s.last_seen_at > offline_after}
    offline = len(gone)
    stale = sum(1 for s in stations if s.stale and s.station_id not in gone)
    alerts = [
        (kind.key, kind.label, counts[kind.key], conditions.link(kind.key, within or ""))
        for kind in conditions.KINDS
        if kind.dashboard
    ]
    return Overview(
        total=sum(by_state.values()),
        by_state=by_state,
        by_borough=sorted(((b, s, sum(s.values())) for b, s in boroughs.items()), key=lambda r: -r[2]),
        alerts=alerts,
        stations=stations,
        healthy=len(stations) - stale - offline,
        stale=stale,
        offline=offline,
    )


DONE = {
    "issued": "camera issued",
    "unassigned": "assignments ended",
    "resolved": "conflict resolved",
    "committed": "proposal committed",
    "discarded": "proposal discarded",
    "held": "held",
    "released": "hold released",
    "categorised": "categories set",
    "attributed": "attributed",
    "restored": "restored",
    "chain_intact": "chain intact",
    "withdrawn": "share link withdrawn",
    "narrowed": "request narrowed: only the chosen clips are kept for it",
    "closed": "request closed",
    "closed_many": "requests closed",
    "paused": "deployment paused: its offers are withdrawn",
    "resumed": "deployment resumed",
    "aborted": "deployment aborted: its outstanding cameras are cancelled",
    "rolled_back": "rolled back: this is the deployment taking the cameras back",
}
FAILED = {"chain_broken": "chain BROKEN: see the check below"}
"""What a page may say after a form (``?done=KEY``, ``?error=KEY``): only these words, never
the URL's own text, so a link from elsewhere cannot make central's pages say something.
A refusal with details of its own is answered with the error page, not a redirect."""


def _recent_refusals(store: CentralStore, owners: OwnerLookup, within: str | None) -> list[tuple]:
    stations = owners.stations_of(within) if within is not None else None
    with store.writer.read() as db:
        return claims.recent_refusals(db, stations=stations)


def filter_query(filters: dict[str, str]) -> str:
    """A list page's filters as its next page's and its export's query: the ones set, each value
    percent-encoded (a search for "Smith & Jones" or "#4" stays one value)."""
    return urlencode({k: v for k, v in filters.items() if v})


def page(request: Request, template: str, **context) -> Template:
    principal = principal_of(request)
    nav = [(path, label) for path, label, role in NAV if _allowed(principal, *_tuple(role))]
    return Template(
        template_name=template,
        context={
            "me": principal,
            "nav": nav,
            "here": request.url.path,
            "csrf": principal.csrf,
            "done": DONE.get(request.query_params.get("done", "")),
            "failed": FAILED.get(request.query_params.get("error", "")),
            **context,
        },
    )


def _tuple(role: str | tuple[str, ...]) -> tuple[str, ...]:
    return (role,) if isinstance(role, str) else role


def _allowed(principal, *roles: str) -> bool:
    try:
        principal.require_user(*roles)
        return True
    except ApiError:
        return False


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never //host or a scheme): no open redirect after login. A browser
    reads a backslash as a slash and drops tabs and newlines, so ``/\\host`` is ``//host`` to it."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or urlsplit(target).netloc
        or any(c == "\\" or ord(c) < 0x20 or c == "\x7f" for c in target)
    ):
        return "/"
    return target


def _error_page(request: Request, exc: Exception) -> Response:
    if isinstance(exc, Unauthorized):
        return Redirect(
            f"/login?next={quote(request.url.path + ('?' + request.url.query if request.url.query else ''))}"
        )
    headers: dict[str, str] = {}
    if isinstance(exc, ApiError):
        status, message, headers = exc.status_code, exc.message, dict(exc.headers or {})
    elif isinstance(exc, NotFoundException):
        status, message = 404, "no such page"
    elif isinstance(exc, ValidationException):
        status, message = 400, str(exc.detail)
    elif isinstance(exc, HTTPException):
        status, message = exc.status_code, str(exc.detail)
    else:
        raise exc
    return Template(
        template_name="error.html",
        status_code=status,
        headers=headers,  # Retry-After on a 429, Content-Range on a 416
        context={"status": status, "message": message, "me": None, "nav": [], "here": ""},
    )


def _login_form(
    request: Request,
    key: bytes,
    settings: CentralSettings,
    target: str,
    name: str = "",
    status: int = 200,
    error: str | None = None,
    headers: dict[str, str] | None = None,
) -> Template:
    """The login page, with its CSRF token."""
    token, cookie = signed_form_token(request, key, settings, login_csrf.COOKIE, "/login")
    return Template(
        template_name="login.html",
        status_code=status,
        headers=headers,
        context={
            "next": target,
            "error": error,
            "name": name,
            "login_csrf": token,
            "directory": settings.oidc.display_name if settings.oidc else None,
            "me": None,
            "nav": [],
            "here": "/login",
        },
        cookies=[cookie],
    )


def signed_form_token(
    request: Request, key: bytes, settings: CentralSettings, cookie: str, path: str
) -> tuple[str, Cookie]:
    """The CSRF token of a form posted without a session (the login form, the public's forms):
    ``central.access.login_csrf``'s signed double-submit token, kept while the browser's is still
    good (two tabs work), and the cookie that carries it, for ``path`` only."""
    kept = request.cookies.get(cookie)
    token = kept if kept is not None and login_csrf.is_valid(key, kept) else login_csrf.new_token(key)
    return token, Cookie(
        key=cookie,
        value=token,
        httponly=True,
        samesite="strict",
        path=path,
        secure=settings.dashboard.secure_cookies,
        max_age=login_csrf.MAX_AGE_S,
    )


def _session_cookie(value: str, settings: CentralSettings) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=value,
        httponly=True,
        secure=settings.dashboard.secure_cookies,
        samesite="lax",
        path="/",
        max_age=SESSION_HOURS * 3600,
    )


FORM = {"form_csrf": True}
"""``opt`` of a handler that takes a posted form: it checks the form's CSRF token (its ``form``)."""


async def posted(request: Request) -> FormMultiDict:
    """The posted form (a multi-dict), once its CSRF token matched the session's (else 403)."""
    form = await request.form()
    check_csrf(await authenticate(request), str(form.get("csrf_token", "")))
    return form


async def login_form(request: Request) -> FormMultiDict:
    """The login form: no session yet, so its own CSRF token, which the handler checks."""
    return await request.form()


class DashboardPages(Controller):
    """The base of every dashboard controller: pages, not JSON, and HTML error pages. A handler
    that takes ``form: Injected[FormMultiDict]`` receives the posted form, its CSRF token checked."""

    include_in_schema = False
    exception_handlers = {ApiError: _error_page, HTTPException: _error_page}
    dependencies = {"form": Provide(posted)}


def field(form, key: str, max_length: int = 500) -> str:
    """One text field of a posted form, trimmed; BadRequest when longer than allowed."""
    value = form_text(form.get(key, ""))
    if len(value) > max_length:
        raise BadRequest(f"{key.replace('_', ' ')} may have at most {max_length} characters")
    return value


def back(path: str, *, done: str | None = None, error: str | None = None) -> Redirect:
    """After a form: back to the page, with what happened shown on it (post/redirect/get);
    ``done`` a key of DONE, ``error`` of FAILED."""
    if (done is not None and done not in DONE) or (error is not None and error not in FAILED):
        raise ValueError(f"no such message: {done or error!r}")
    query = "&".join(f"{k}={v}" for k, v in (("done", done), ("error", error)) if v)
    return Redirect(path + (("&" if "?" in path else "?") + query if query else ""), status_code=303)


def client_place(request: Request) -> str:
    """Where a browser's request came from, as the audit trail and the throttles name it (the
    address the server saw, a trusted proxy's ``X-Forwarded-For`` already applied)."""
    return f"browser:{request.client.host if request.client else '-'}"


def allowed(request: Request, *roles: str) -> bool:
    """Whether the caller has one of ``roles`` (what a page shows of the forms it holds)."""
    return _allowed(principal_of(request), *roles)


class DashboardController(DashboardPages):
    path = "/"

    @get("/login", summary="The login page", scope=no_borough("the login form"))
    async def login_page(
        self,
        request: Request,
        login_csrf_key: Injected[bytes],
        settings: Injected[CentralSettings],
        next_path: Annotated[str | None, QueryParameter(name="next", max_length=2000)] = None,
    ) -> Template:
        return _login_form(request, login_csrf_key, settings, _safe_next(next_path))

    @post(
        "/login",
        summary="Log in",
        scope=no_borough("logging in"),
        dependencies={"login_form": Provide(login_form)},
        sync_to_thread=True,
    )
    def login(
        self,
        request: Request,
        login_form: Injected[FormMultiDict],
        users: Injected[UserService],
        login_csrf_key: Injected[bytes],
        settings: Injected[CentralSettings],
    ) -> Response:
        name, password = str(login_form.get("name", "")).strip(), str(login_form.get("password", ""))
        target = _safe_next(str(login_form.get("next", "/")))
        if not login_csrf.matches(
            login_csrf_key, request.cookies.get(login_csrf.COOKIE), str(login_form.get(login_csrf.FIELD, ""))
        ):
            return _login_form(
                request,
                login_csrf_key,
                settings,
                target,
                name,
                400,
                "This form has expired or came from another site: log in again.",
            )
        place = client_place(request)
        try:
            cookie, _session = users.login(name, password, place)
        except (Unauthorized, TooManyRequests) as exc:
            return _login_form(
                request, login_csrf_key, settings, target, name, exc.status_code, exc.message, exc.headers
            )
        return Redirect(
            target,
            status_code=303,
            cookies=[
                _session_cookie(cookie, settings),
                Cookie(key=login_csrf.COOKIE, value="", max_age=0, path="/login"),
            ],
        )

    @get(
        "/login/oidc",
        summary="Sign in through the force's directory",
        scope=no_borough("signing in"),
        sync_to_thread=True,
    )
    def directory_login(
        self,
        request: Request,
        directory: Injected[DirectorySignIn],
        login_csrf_key: Injected[bytes],
        settings: Injected[CentralSettings],
        next_path: Annotated[str | None, QueryParameter(name="next", max_length=2000)] = None,
    ) -> Response:
        """To the directory, with this browser's sign-in kept (``central.access.oidc``)."""
        target = _safe_next(next_path)
        try:
            url, browser = directory.begin(target)
        except ApiError as exc:
            return _login_form(request, login_csrf_key, settings, target, "", exc.status_code, exc.message)
        return Redirect(
            url,
            status_code=303,
            cookies=[
                Cookie(
                    key=oidc.COOKIE,
                    value=browser,
                    httponly=True,
                    secure=settings.dashboard.secure_cookies,
                    samesite="lax",  # sent when the directory sends the browser back (a top-level GET)
                    path="/login/oidc",
                    max_age=int(oidc.PENDING.total_seconds()),
                )
            ],
        )

    @get(
        "/login/oidc/callback",
        summary="Back from the force's directory",
        scope=no_borough("signing in"),
        sync_to_thread=True,
    )
    def directory_callback(
        self,
        request: Request,
        directory: Injected[DirectorySignIn],
        login_csrf_key: Injected[bytes],
        settings: Injected[CentralSettings],
        oauth_state: Annotated[str, QueryParameter(name="state", max_length=2000)] = "",
        code: Annotated[str | None, QueryParameter(max_length=4000)] = None,
        error: Annotated[str | None, QueryParameter(max_length=2000)] = None,
    ) -> Response:
        """The directory's answer: a session, or the login page saying why not (every refusal audited)."""
        done = Cookie(key=oidc.COOKIE, value="", max_age=0, path="/login/oidc")
        try:
            cookie, _session, target = directory.finish(
                state=oauth_state,
                code=code,
                error=error,
                browser=request.cookies.get(oidc.COOKIE),
                place=client_place(request),
            )
        except ApiError as exc:
            page = _login_form(request, login_csrf_key, settings, "/", "", exc.status_code, exc.message)
            page.cookies.append(done)
            return page
        return Redirect(target, status_code=303, cookies=[_session_cookie(cookie, settings), done])

    @post(
        "/logout",
        summary="Log out",
        guards=[user_with("viewer")],
        opt=FORM,
        scope=no_borough("logging out"),
        sync_to_thread=True,
    )
    def logout(
        self,
        request: Request,
        principal: Caller,
        form: Injected[FormMultiDict],
        users: Injected[UserService],
        directory: Injected[DirectorySignIn],
    ) -> Response:
        """The session ends here; someone who signed in through the directory is then sent to its
        end-session page too, so the next person at a shared terminal is not signed in as them."""
        name = users.logout(request.cookies.get(SESSION_COOKIE, ""), client_place(request))
        after = directory.logout_url() if name is not None and users.directory_user(name) else None
        return Redirect(
            after or "/login", status_code=303, cookies=[Cookie(key=SESSION_COOKIE, value="", max_age=0, path="/")]
        )

    @get("/", summary="Overview", guards=[user_with("viewer")], scope=LISTS, sync_to_thread=True)
    def overview_page(
        self,
        request: Request,
        within: Scoped,
        store: Injected[CentralStore],
        owners: Injected[OwnerLookup],
        devices: Injected[DeviceService],
        stations: Injected[StationService],
    ) -> Template:
        data = overview(store, owners, devices, stations, within.borough)
        if not _allowed(principal_of(request), "information_manager"):
            data.alerts = [a for a in data.alerts if a[0] != KEEP_OVERDUE]
        chart = charts.bar_chart(
            "Cameras per borough",
            [(b, n) for b, _, n in data.by_borough[:32]],
            description="Cameras registered to each borough, all states",
        )
        return page(request, "overview.html", o=data, states=LIFECYCLE_STATES, chart=chart)

    @get(
        "/stations",
        summary="Stations",
        guards=[user_with("viewer")],
        scope=lists(in_query("station", "station")),
        sync_to_thread=True,
    )
    def stations_page(
        self,
        request: Request,
        within: Scoped,
        stations: Injected[StationService],
        store: Injected[CentralStore],
        owners: Injected[OwnerLookup],
        station: Annotated[str | None, QueryParameter(max_length=64)] = None,
        days: Annotated[int, QueryParameter(ge=1, le=30)] = 7,
    ) -> Template:
        listed = [s for s in stations.all() if within.borough in (None, s.borough)]
        if station and station not in {s.station_id for s in listed}:
            raise NotFound(f"no station {station}")
        history = stations.samples(
            station or None,
            utc_now() - timedelta(days=days),
            [s.station_id for s in listed] if within.borough else None,
        )
        who = f"station {station}" if station else "all stations"
        lag = charts.time_chart(
            f"Sync lag, {who}: age of the oldest clip not yet at central",
            [("hours", [(s.at, s.lag_h or 0.0) for s in history], "solid")],
            y_label="hours",
            y_min=0,
            description=f"{len(history)} samples over {days} days"
            + (f"; now {history[-1].lag_h or 0:.1f} h" if history else ""),
        )
        backlog = charts.time_chart(
            f"Clips waiting to sync, {who}",
            [("clips", [(s.at, s.pending_clips) for s in history], "solid")],
            y_label="clips",
            y_min=0,
            description=f"{len(history)} samples over {days} days",
        )
        refusals = _recent_refusals(store, owners, within.borough)
        return page(
            request,
            "stations.html",
            stations=listed,
            station=station or "",
            days=days,
            lag=lag,
            backlog=backlog,
            refusals=refusals,
        )

    @get("/devices", summary="Devices", guards=[user_with("viewer")], scope=LISTS, sync_to_thread=True)
    def devices_page(
        self,
        request: Request,
        within: Scoped,
        devices: Injected[DeviceService],
        store: Injected[CentralStore],
        q: Annotated[str | None, QueryParameter(max_length=64)] = None,
        borough: Annotated[str | None, QueryParameter(max_length=64)] = None,
        lifecycle: Annotated[str | None, QueryParameter(max_length=32)] = None,
        flag: Annotated[str | None, QueryParameter(max_length=32)] = None,
        replace_by: Annotated[str | None, QueryParameter(max_length=64)] = None,
        after: Annotated[str | None, QueryParameter(max_length=64)] = None,
    ) -> Template:
        if lifecycle and lifecycle not in LIFECYCLE_STATES:
            raise BadRequest(f"unknown lifecycle state {lifecycle!r}")
        if flag and flag not in FLAG_SQL:
            raise BadRequest(f"unknown flag {flag!r}")
        borough = within.narrow(borough or None)
        result = devices.page(
            borough=borough,
            lifecycle_state=lifecycle or None,
            flag=flag or None,
            q=q or None,
            replace_by=replace_by or None,
            after=after or None,
            limit=50,
        )
        filters = {
            "q": q or "",
            "borough": borough or "",
            "lifecycle": lifecycle or "",
            "flag": flag or "",
            "replace_by": replace_by or "",
        }
        with store.writer.read() as db:
            boroughs = [
                r[0]
                for r in db.execute("SELECT DISTINCT borough FROM devices WHERE borough IS NOT NULL ORDER BY 1")
                if within.borough in (None, r[0])
            ]
        return page(
            request,
            "devices.html",
            result=result,
            filters=filters,
            boroughs=boroughs,
            states=LIFECYCLE_STATES,
            flags=[(k, label) for k, label, _ in ALERTS],
            next_query=filter_query(filters),
            this_month=f"{utc_now():%Y-%m}",
        )

    @get(
        "/devices/{serial:str}",
        summary="One device",
        guards=[user_with("viewer")],
        scope=touches(in_path("device", "serial")),
        sync_to_thread=True,
    )
    def device_page(
        self,
        request: Request,
        principal: Caller,
        devices: Injected[DeviceService],
        profiles: Injected[ProfileService],
        deployments: Injected[DeploymentService],
        settings: Injected[CentralSettings],
        serial: Annotated[str, PathParameter(max_length=64)],
        settings_after: Annotated[
            str | None,
            QueryParameter(
                max_length=64,
                pattern=r"^[A-Za-z0-9_=-]+$",
                description="the settings history's next page",
            ),
        ] = None,
    ) -> Template:
        detail = devices.detail(serial)
        profile = profiles.explain(serial)
        settings_history = profiles.history(serial, settings_after, 20)
        # Deployments are read by those who may read them through the API (fleet managers, admins).
        targeted = deployments.of_camera(serial) if _allowed(principal, "fleet_manager") else None
        threshold = settings.fleet.replace_below_soh_pct
        soh = [(p.at, p.soh_pct) for p in detail.battery if p.soh_pct is not None]
        forecast = []
        if soh and detail.device.replace_by is not None:
            forecast = [soh[-1], (detail.device.replace_by, threshold)]
        chart = charts.time_chart(
            f"Battery health of {serial}",
            [("state of health", soh, "solid"), ("forecast", forecast, "dashed")],
            y_label="state of health %",
            y_min=min([threshold - 5, *(v for _, v in soh)]) if soh else 0,
            y_max=100,
            threshold=(threshold, f"replace below {threshold:.0f} %"),
            description=(
                f"{len(soh)} readings from {soh[0][0]:%Y-%m-%d} to {soh[-1][0]:%Y-%m-%d}, last {soh[-1][1]:.1f} %"
                if soh
                else "no readings"
            )
            + (f"; forecast to reach {threshold:.0f} % on {detail.device.replace_by:%Y-%m-%d}" if forecast else ""),
        )
        return page(
            request,
            "device.html",
            d=detail,
            chart=chart,
            soh=soh[-10:][::-1],
            profile=profile,
            settings_history=settings_history,
            deployments=targeted,
        )
