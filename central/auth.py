"""Who is calling: bearer tokens resolved to principals.

Central keeps only SHA-256 hashes of tokens (tokens are long random strings, so a fast
hash is enough) and compares them in constant time. A station may only touch its own
uploads; the admin token is a user with every role.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from litestar import Request
from litestar.di import NamedDependency

from fleet.config import CentralSettings, token_sha256
from fleet.errors import Forbidden, Unauthorized

ALL_ROLES = frozenset({"admin"})


@dataclass(frozen=True)
class Principal:
    name: str
    station_id: str | None = None
    roles: frozenset[str] = frozenset()
    borough: str | None = None
    """A station's borough: the only fleet data it may read."""

    @property
    def is_station(self) -> bool:
        return self.station_id is not None

    def require_user(self, role: str = "admin") -> None:
        """Clip reads are for people with the right role, never for station tokens."""
        if self.is_station or (role not in self.roles and "admin" not in self.roles):
            raise Forbidden(f"{self.name} may not do this (needs role {role!r})")

    def require_borough(self, borough: str | None, role: str = "viewer") -> None:
        """Fleet data: a station sees its own borough's; a user needs the role."""
        if self.is_station:
            if borough != self.borough:
                raise Forbidden(f"{self.name} may only see {self.borough}'s fleet data")
            return
        self.require_user(role)

    def require_owner(self, station_id: str | None) -> None:
        """Stations touch only their own uploads; users with admin may touch any."""
        if self.is_station and self.station_id != station_id:
            raise Forbidden(f"{self.name} may not touch another station's upload")


class TokenRegistry:
    """Maps token hashes to principals, built once from the settings."""

    def __init__(self, settings: CentralSettings) -> None:
        self._entries: list[tuple[bytes, Principal]] = [
            (bytes.fromhex(token_sha256(settings, "admin_token")), Principal("admin", roles=ALL_ROLES)),
        ]
        for station_id, entry in settings.stations.items():
            self._entries.append((bytes.fromhex(token_sha256(entry, "token")),
                                  Principal(f"station:{station_id}", station_id=station_id,
                                            borough=entry.borough)))

    def resolve(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'",
                               headers={"WWW-Authenticate": "Bearer"})
        digest = hashlib.sha256(token.strip().encode()).digest()
        found = None
        for known, principal in self._entries:  # compare against every entry: no early exit to time
            if hmac.compare_digest(known, digest):
                found = principal
        if found is None:
            raise Unauthorized("unknown token", headers={"WWW-Authenticate": "Bearer"})
        return found


async def provide_principal(request: Request) -> Principal:
    """Litestar dependency: every route but /healthz takes ``principal``."""
    return request.app.state.tokens.resolve(request.headers.get("authorization"))


def user_with(role: str):
    """A route guard: only users with ``role`` (or admin). Guards run before the body is read,
    so a caller without the right is told 403 whatever it sent."""

    def guard(connection, _handler) -> None:
        connection.app.state.tokens.resolve(connection.headers.get("authorization")).require_user(role)

    return guard


Caller = NamedDependency[Principal]
"""A handler parameter ``principal: Caller`` receives the resolved principal."""
