"""Borough scope: declared by every route, enforced by one guard.

A caller's scope is the one borough it may touch: a station's own borough (and of uploads
and station records only its own), or the borough a supervisor was created with. Everyone
else is force-wide. Each route handler declares, as ``scope=`` in its decorator (Litestar
keeps it in ``opt``), what it touches:

- ``touches(*targets)``: the things it acts on or shows, each named by a path or query
  parameter or by a field of its JSON or form body. ``enforce_scope`` resolves each one's
  borough from central's tables and refuses (403) a scoped caller when any is outside its
  borough. A thing of no borough (a clip no station took in, a camera in stock, a case, a
  case hold) is outside every borough. A thing that does not exist passes, so the handler
  answers 404 (or creates it, when a body target also names its borough).
- ``LISTS`` (or ``lists(*targets)``): it answers many things. It takes ``within: Scoped`` and
  keeps its query to ``within.borough`` (``within.narrow(asked)`` for a ``?borough=`` filter).
- ``FORCE_WIDE``: it acts on the force as a whole (registering cameras, bulk imports, the
  roll-out's proposals, retention runs, the audit trail): scoped callers are refused.
- ``no_borough(why)``: it shows nothing of any one borough (health, login, the roll-out
  plan's figures): its role guard alone decides.
- ``PUBLIC``: anyone may read it, with no login (the public figures). It may take no caller
  (``principal``, ``within``) and have no guard but this one, so its answer is the same
  whoever asks; that is what lets browsers and proxies cache it (``CACHEABLE``), and only
  such a route may.

``check_declarations`` makes ``create_app`` refuse a route that declares none, a ``LISTS``
route that takes no ``scope``, and a ``PUBLIC`` route that could tell callers apart; the
role × scope matrix test calls every route from inside
and outside a scope. Which borough a thing is in is decided here: a clip is in the borough
of the camera that recorded it (whoever's station docked it), a hold in its clip's or
officer's, a public request to keep footage in the borough it names, an upload and a station
record belong to their station. ``CLIPS_OF_BOROUGH`` is
the same rule for the lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import anyio.to_thread
import msgspec
from litestar import Litestar, Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers import BaseRouteHandler
from litestar.routes import HTTPRoute

from central.access.auth import Principal, authenticate
from central.core.database import Database
from central.core.headers import CACHEABLE
from central.core.providers import services
from fleet.config import CentralSettings
from fleet.errors import Forbidden

CLIPS_OF_BOROUGH = "SELECT serial FROM devices WHERE borough = ?"
"""A borough's clips, for a list's ``device_serial IN (...)``: those its cameras recorded."""

Kind = Literal["clip", "officer", "device", "hold", "conflict", "station", "upload", "case", "borough", "keep_request"]
Source = Literal["path", "query", "json", "form"]


@dataclass(frozen=True)
class Target:
    """One thing a route touches: its kind and where the request names it. A JSON name of
    ``*.field`` reads that field of every item of a list body; a field holding a list names
    each of its items."""

    kind: Kind
    source: Source
    name: str


def in_path(kind: Kind, name: str) -> Target:
    return Target(kind, "path", name)


def in_query(kind: Kind, name: str) -> Target:
    return Target(kind, "query", name)


def in_json(kind: Kind, name: str) -> Target:
    return Target(kind, "json", name)


def in_form(kind: Kind, name: str) -> Target:
    return Target(kind, "form", name)


@dataclass(frozen=True)
class Touches:
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class Lists:
    """The handler filters what it answers by ``within.borough``; ``targets`` as for ``Touches``
    (a list page may also name one thing, such as the station whose history it draws)."""

    targets: tuple[Target, ...] = ()


@dataclass(frozen=True)
class ForceWide:
    """Only force-wide callers: the route acts on the force as a whole."""


@dataclass(frozen=True)
class NoBorough:
    why: str


@dataclass(frozen=True)
class Public:
    """For anyone, with no login, the same answer whoever asks (``check_declarations``)."""


Declaration = Touches | Lists | ForceWide | NoBorough | Public
LISTS = Lists()
FORCE_WIDE = ForceWide()
PUBLIC = Public()


def touches(*targets: Target) -> Touches:
    return Touches(targets)


def lists(*targets: Target) -> Lists:
    return Lists(targets)


OWN_RECORDS = Touches(())
"""It touches only the caller's own records (a station's events, the uploads it creates)."""


def no_borough(why: str) -> NoBorough:
    return NoBorough(why)


@dataclass(frozen=True)
class Owner:
    """Where a thing belongs: its borough (None: no borough's) and, for uploads and station
    records, its station."""

    borough: str | None
    station_id: str | None = None


@dataclass(frozen=True)
class Within:
    """What a ``LISTS`` handler may answer: ``borough`` None means every borough's."""

    borough: str | None

    def narrow(self, asked: str | None) -> str | None:
        """The borough filter to apply when the caller asked for ``asked`` (None: any)."""
        if self.borough is None or asked in (None, "", self.borough):
            return asked or self.borough
        raise Forbidden(f"you may see {self.borough}'s records only, not {asked}'s")


def form_text(value) -> str:
    """A posted form field as the dashboard's handlers read it (``central.web.dashboard.field``): text,
    trimmed. The guard resolves the same text, so " BWV-1" cannot pass as a camera that does
    not exist and then act, trimmed, on another borough's."""
    return str(value).strip()


def row_id(key: str) -> int | None:
    """An integer id (holds, conflicts) as SQLite stores it; None when ``key`` can name no row: not
    plain ASCII digits (``"²".isdigit()``), or past SQLite's 64-bit integers (a path's
    ``{hold_id:int}`` is checked against its bounds only after the guards have run)."""
    if not (key.isascii() and key.isdigit()) or len(key) > 19:
        return None
    value = int(key)
    return value if value < 2**63 else None


def scope_of(principal: Principal) -> str | None:
    """The borough a caller is limited to (None: force-wide)."""
    return principal.borough if principal.is_station else principal.acts_for


class OwnerLookup:
    """Resolves what a request names to where it belongs, from central's tables and the
    configured stations (a station's borough is its config entry's)."""

    def __init__(self, writer: Database, settings: CentralSettings) -> None:
        self.writer = writer
        self.settings = settings

    def stations_of(self, borough: str) -> list[str]:
        """A borough's stations, for a list of records kept per station (refusals, samples)."""
        return sorted(s for s, entry in self.settings.stations.items() if entry.borough == borough)

    def station_borough(self, station_id: str | None) -> str | None:
        entry = self.settings.stations.get(station_id) if station_id else None
        return entry.borough if entry else None

    def owner(self, kind: Kind, key: str) -> Owner | None:
        """None when there is no such thing."""
        if kind == "borough":
            return Owner(key)
        if kind == "case":
            return Owner(None)  # a case may span boroughs: force-wide by definition
        if kind == "station":
            return Owner(self.station_borough(key), key) if key in self.settings.stations else None
        with self.writer.read() as db:
            return self._owner(db, kind, key)

    def _owner(self, db, kind: Kind, key: str) -> Owner | None:
        if kind == "clip":
            row = db.execute(
                "SELECT c.clip_id, a.clip_id, d.borough FROM (SELECT CAST(? AS TEXT) AS id) k "
                "LEFT JOIN clips c ON c.clip_id = k.id LEFT JOIN attributions a ON a.clip_id = k.id "
                "LEFT JOIN devices d ON d.serial = COALESCE(c.device_serial, a.device_serial)",
                [key],
            ).fetchone()
            return None if row[0] is None and row[1] is None else Owner(row[2])
        if kind == "upload":
            row = db.execute("SELECT station_id FROM uploads WHERE upload_id = ?", [key]).fetchone()
            return None if row is None else Owner(self.station_borough(row[0]), row[0])
        if kind == "hold":
            row = db.execute("SELECT kind, clip_id, officer_id FROM holds WHERE id = ?", [row_id(key)]).fetchone()
            if row is None:
                return None
            if row[0] == "case":
                return Owner(None)
            return self._owner(db, *(("clip", row[1]) if row[0] == "clip" else ("officer", row[2]))) or Owner(None)
        if kind == "conflict":
            row = db.execute("SELECT borough FROM conflicts WHERE id = ?", [row_id(key)]).fetchone()
            return None if row is None else Owner(row[0])
        sql = {
            "officer": "SELECT borough FROM officers WHERE officer_id = ?",
            "device": "SELECT borough FROM devices WHERE serial = ?",
            "keep_request": "SELECT borough FROM keep_requests WHERE reference = ?",
        }[kind]
        row = db.execute(sql, [key]).fetchone()
        return None if row is None else Owner(row[0])


def allows(principal: Principal, kind: Kind, owner: Owner) -> bool:
    if principal.is_station and kind in ("upload", "station"):
        return owner.station_id == principal.station_id
    scope = scope_of(principal)
    return scope is None or owner.borough == scope


async def _named(connection: ASGIConnection, target: Target) -> list[str]:
    """Every value the request gives for ``target`` (a body that does not parse names nothing:
    the handler refuses it with its own 400)."""
    if target.source == "path":
        value = connection.path_params.get(target.name)
        return [] if value is None else [str(value)]
    if target.source == "query":
        return [str(v) for v in connection.query_params.getall(target.name, [])]
    if not isinstance(connection, Request):
        # Only an HTTP route's guards get a Request, and only a request has a body or a form.
        raise TypeError(f"a {target.source} scope target on a route that takes no request body: {target.name}")
    if target.source == "form":
        form = await connection.form()  # Litestar keeps the parsed form for the handler
        return [form_text(v) for v in form.getall(target.name, [])]
    try:
        body = msgspec.json.decode(await connection.body())  # the same decoder (last key wins) as the handler's
    except msgspec.DecodeError:
        return []
    items, name = (body, target.name[2:]) if target.name.startswith("*.") else ([body], target.name)
    found: list[str] = []
    for item in items if isinstance(items, list) else []:
        value = item.get(name) if isinstance(item, dict) else None
        for one in value if isinstance(value, list) else [value]:
            if isinstance(one, (str, int)) and not isinstance(one, bool):
                found.append(str(one))
    return found


async def enforce_scope(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """The one place borough scope is checked (an app-wide guard)."""
    declared = handler.opt.get("scope")
    if isinstance(declared, NoBorough | Public):
        return
    if declared is None:
        if handler.opt.get("openapi_document"):
            return
        raise Forbidden("this route declares no borough scope")  # check_declarations makes this unreachable
    principal = await authenticate(connection)
    scope = scope_of(principal)
    if isinstance(declared, ForceWide):
        if scope is not None:
            raise Forbidden(f"{principal.name} acts for {scope} only; this acts on the whole force")
        return
    if scope is None and not principal.is_station:
        return
    lookup = services(connection.app).owners
    for target in declared.targets:
        keys = await _named(connection, target)
        if not keys:
            continue
        owners = await anyio.to_thread.run_sync(_owners, lookup, target.kind, keys)  # central's tables: off the loop
        for key, owner in zip(keys, owners, strict=True):
            if owner is not None and not allows(principal, target.kind, owner):
                raise Forbidden(f"{target.kind} {key} is outside {principal.name}'s scope ({scope} only)")


def _owners(lookup: OwnerLookup, kind: Kind, keys: list[str]) -> list[Owner | None]:
    return [lookup.owner(kind, key) for key in keys]


async def provide_within(request: Request) -> Within:
    """Litestar dependency ``within``: what a ``LISTS`` handler may answer."""
    return Within(scope_of(await authenticate(request)))


def check_declarations(app: Litestar, skip_prefix: str) -> None:
    """Refuse to build an app with a route nobody decided about (see the module docstring)."""
    missing = []
    for route in app.routes:
        # An HTTP route groups its methods' handlers; a websocket or mounted ASGI route has one.
        handlers = route.route_handlers if isinstance(route, HTTPRoute) else [route.route_handler]
        for handler in handlers:
            if route.path.startswith(skip_prefix):
                handler.opt["openapi_document"] = True
                continue
            declared = handler.opt.get("scope")
            methods = "/".join(sorted(getattr(handler, "http_methods", ()) or ()))
            if declared is None and methods == "OPTIONS":
                handler.opt["scope"] = NoBorough("Litestar's own answer to OPTIONS: shows nothing")
                continue
            if not isinstance(declared, Declaration):
                missing.append(f"{methods} {route.path}: no scope= declaration")
            elif isinstance(declared, Lists) and "within" not in handler.parsed_fn_signature.parameters:
                missing.append(f"{methods} {route.path}: declares LISTS but takes no within")
            elif isinstance(declared, Public):
                missing += [f"{methods} {route.path}: {why}" for why in _not_public(handler)]
                handler.opt[CACHEABLE] = True
            elif handler.opt.get(CACHEABLE):
                missing.append(f"{methods} {route.path}: only a PUBLIC route may be cached")
    if missing:
        raise RuntimeError("routes without a borough-scope decision (central.access.scope):\n  " + "\n  ".join(missing))


def _not_public(handler: BaseRouteHandler) -> list[str]:
    """Why a route declared ``PUBLIC`` could answer callers differently (nothing: it cannot)."""
    why = [
        f"declares PUBLIC but takes {name}"
        for name in ("principal", "within")
        if name in handler.parsed_fn_signature.parameters
    ]
    guards = [g for g in handler.resolve_guards() if g is not enforce_scope]
    if guards:
        why.append(f"declares PUBLIC but has guards ({', '.join(getattr(g, '__name__', str(g)) for g in guards)})")
    return why


Scoped = NamedDependency[Within]
"""A ``LISTS`` handler's parameter ``within: Scoped``."""
