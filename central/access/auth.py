"""Who is calling: bearer tokens and browser sessions resolved to principals.

Central keeps only SHA-256 hashes of tokens (tokens are long random strings, so a fast
hash is enough) and compares them in constant time. What a caller may do is its role (the
guards here) and its borough scope (``central.access.scope``); the admin token is a user with
every role; users' API tokens and sessions come from ``central.access.users``. A request
authenticated by its session cookie that changes something must carry the session's CSRF
token (``X-CSRF-Token``, or the form field ``csrf_token`` that dashboard forms post and their
handlers check). With ``[tls] client_ca`` (mutual TLS), a station's token counts only over a
connection whose verified client certificate names that station (``admit``).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import anyio.to_thread
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency

from central.access.users import TOKEN_PREFIX, UserService
from central.core.providers import services
from fleet.config import CentralSettings, token_sha256
from fleet.errors import Forbidden, Unauthorized

ALL_ROLES = frozenset({"admin"})
SESSION_COOKIE = "bwv_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PRINCIPAL_KEY = "bwv_principal"


@dataclass(frozen=True)
class Principal:
    name: str
    station_id: str | None = None
    roles: frozenset[str] = frozenset()
    borough: str | None = None
    """A station's borough: the only fleet data it may read (``central.access.scope``)."""
    acts_for: str | None = None
    """A supervisor's borough: the only one they may act on (None: force-wide; ``central.access.scope``)."""
    csrf: str | None = None
    """Set when the caller came with a session cookie: its CSRF token."""

    @property
    def is_station(self) -> bool:
        return self.station_id is not None

    def station(self) -> tuple[str, str]:
        """A station's id and borough (every station token has both); Forbidden for anyone else."""
        if self.station_id is None or self.borough is None:
            raise Forbidden(f"{self.name} is not a station")
        return self.station_id, self.borough

    def require_user(self, *roles: str) -> None:
        """People with one of the roles (admin when none is named; admin has every role; every user is
        a viewer), never station tokens."""
        wanted = roles or ("admin",)
        if (
            self.is_station
            or not self.roles
            or ("admin" not in self.roles and "viewer" not in wanted and not self.roles & set(wanted))
        ):
            needs = " or ".join(repr(r) for r in wanted)
            raise Forbidden(f"{self.name} may not do this (needs role {needs})")


class TokenRegistry:
    """Maps token hashes to principals, built once from the settings."""

    def __init__(self, settings: CentralSettings, users: UserService | None = None) -> None:
        self.users = users
        self.stations_need_certificates = settings.tls is not None and settings.tls.client_ca is not None
        """Users' API tokens and sessions (None: only the configured tokens)."""
        self._entries: list[tuple[bytes, Principal]] = [
            (bytes.fromhex(token_sha256(settings, "admin_token")), Principal("admin", roles=ALL_ROLES)),
        ]
        for station_id, entry in settings.stations.items():
            station = Principal(f"station:{station_id}", station_id=station_id, borough=entry.borough)
            self._entries.append((bytes.fromhex(token_sha256(entry, "token")), station))
            if entry.next_token_sha256 is not None:  # a rotation under way: the new token works too
                self._entries.append((bytes.fromhex(entry.next_token_sha256), station))
        self._scraper = bytes.fromhex(token_sha256(settings.metrics, "token")) if settings.metrics.configured else None
        """The ``[metrics]`` token's hash: it reads ``/metrics`` and nothing else (it is no principal)."""

    def resolve(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(
                "missing bearer token: send 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"}
            )
        found = self._configured(token.strip())
        if found is None and self.users is not None and token.strip().startswith(TOKEN_PREFIX):
            user = self.users.user_for_token(token.strip())
            found = user_principal(user) if user else None
        if found is None:
            raise Unauthorized("unknown token", headers={"WWW-Authenticate": "Bearer"})
        return found

    def configured(self, authorization: str) -> Principal | None:
        """The principal of a configured bearer token (the admin's, a station's), from memory;
        None for anything else (a user's token, or no token at all: ``resolve`` decides)."""
        scheme, _, token = authorization.partition(" ")
        return self._configured(token.strip()) if scheme.lower() == "bearer" and token.strip() else None

    def _configured(self, token: str) -> Principal | None:
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for known, principal in self._entries:  # compare against every entry: no early exit to time
            if hmac.compare_digest(known, digest):
                found = principal
        return found

    def is_scraper(self, authorization: str | None) -> bool:
        """Whether ``authorization`` carries the ``[metrics]`` token (compared in constant time)."""
        scheme, _, token = (authorization or "").partition(" ")
        if self._scraper is None or scheme.lower() != "bearer" or not token.strip():
            return False
        return hmac.compare_digest(hashlib.sha256(token.strip().encode()).digest(), self._scraper)

    def certified(self, connection: ASGIConnection, principal: Principal) -> Principal:
        """A station's principal only with its certificate, when central asks for them (a stolen
        token alone is not enough); everyone else as they are."""
        if not self.stations_need_certificates or principal.station_id is None:
            return principal
        extensions: dict = connection.scope.get("extensions") or {}
        names: list[str] = extensions.get("tls", {}).get("client_cert_names") or []
        if principal.station_id not in names:
            shown = f"names {', '.join(names)}" if names else "was not sent (or not signed by [tls] client_ca)"
            raise Unauthorized(
                f"station {principal.station_id}'s token needs its client certificate naming "
                f"{principal.station_id}; this connection's certificate {shown}"
            )
        return principal

    def from_session(self, cookie: str | None) -> Principal | None:
        session = self.users.session(cookie) if cookie and self.users is not None else None
        return user_principal(session.user, session.csrf) if session else None


def user_principal(user, csrf: str | None = None) -> Principal:
    return Principal(user.name, roles=frozenset({user.role}), acts_for=user.borough, csrf=csrf)


def principal_of(connection: ASGIConnection) -> Principal:
    """Who is calling, resolved once per request: a bearer token, else a session cookie.

    A cookie-authenticated request that changes something needs the session's CSRF token in
    ``X-CSRF-Token``, unless its handler is a dashboard form (``opt form_csrf``) that checks
    the posted ``csrf_token`` field itself."""
    cached = _cached(connection)
    if cached is not None:
        return cached
    tokens = services(connection.app).tokens
    authorization = connection.headers.get("authorization")
    principal = None
    if authorization is None:
        principal = tokens.from_session(connection.cookies.get(SESSION_COOKIE))
        if (
            principal is not None
            and connection.scope.get("method", "GET") not in SAFE_METHODS
            and not connection.route_handler.opt.get("form_csrf")
        ):
            check_csrf(principal, connection.headers.get(CSRF_HEADER))
    if principal is None:
        principal = tokens.resolve(authorization)
    _cache(connection, tokens.certified(connection, principal))
    return principal


async def authenticate(connection: ASGIConnection) -> Principal:
    """``principal_of`` for guards and dependencies, which run on the event loop: a configured
    token (a station's, the admin's) is matched in memory, anything else (a session, a user's
    API token, a refusal) is resolved on a worker thread, as it reads the database."""
    cached = _cached(connection)
    if cached is not None:
        return cached
    authorization = connection.headers.get("authorization")
    tokens = services(connection.app).tokens
    configured = tokens.configured(authorization) if authorization is not None else None
    if configured is not None:
        _cache(connection, tokens.certified(connection, configured))
        return configured
    return await anyio.to_thread.run_sync(principal_of, connection)


def _cached(connection: ASGIConnection) -> Principal | None:
    """The principal this request resolved already (its scope's state lives as long as the request)."""
    return connection.scope.setdefault("state", {}).get(_PRINCIPAL_KEY)


def _cache(connection: ASGIConnection, principal: Principal) -> None:
    connection.scope.setdefault("state", {})[_PRINCIPAL_KEY] = principal


def check_csrf(principal: Principal, sent: str | None) -> None:
    if principal.csrf is not None and not hmac.compare_digest((sent or "").encode(), principal.csrf.encode()):
        raise Forbidden(
            "this form is out of date or came from another site (CSRF token missing or wrong): "
            "reload the page and try again"
        )


async def provide_principal(request: Request) -> Principal:
    """Litestar dependency: every route but /healthz takes ``principal``."""
    return await authenticate(request)


def user_with(*roles: str):
    """A route guard: only users with one of ``roles`` (or admin). Guards run before the body is
    read, so a caller without the right is told 403 whatever it sent."""

    async def guard(connection, _handler) -> None:  # async: Litestar runs a sync guard on a worker thread
        (await authenticate(connection)).require_user(*roles)

    return guard


async def metrics_scraper(connection, _handler) -> None:
    """The route guard of ``/metrics``: the ``[metrics]`` token (a monitoring system's, good for
    nothing else), or a force-wide admin; anyone else 401/403 like any route (SECURITY.md)."""
    tokens = services(connection.app).tokens
    if tokens.is_scraper(connection.headers.get("authorization")):
        return
    principal = await authenticate(connection)
    principal.require_user("admin")
    if principal.acts_for is not None:
        raise Forbidden(f"{principal.name} acts for {principal.acts_for} only; /metrics shows every borough")


async def stations_only(connection, _handler) -> None:
    """A route guard for what only stations send (events), each with its own token."""
    if not (await authenticate(connection)).is_station:
        raise Forbidden("only stations send events, each with its own token")


def station_or_user_with(role: str):
    """A route guard for what stations do (uploads, the changes feed): any station, or users with ``role``."""

    async def guard(connection, _handler) -> None:  # async: no thread hop on every upload request
        principal = await authenticate(connection)
        if not principal.is_station:
            principal.require_user(role)

    return guard


Caller = NamedDependency[Principal]
"""A handler parameter ``principal: Caller`` receives the resolved principal."""
