"""Admission control: when central is saturated it says "later", with a time, instead of falling over.

Every request belongs to a lane by what it costs central: uploads (bytes to hash and to
disk), events (SQLite writes) and everything else. A lane admits a bounded number of
requests at once; past that central answers **503** with ``Retry-After``. One client (one
bearer token or session) may hold only part of a lane, so a station retrying hard cannot
starve the others: past that it gets **429** with ``Retry-After``. ``Retry-After`` is
spread over ``[retry_after_s, 2 × retry_after_s]`` so that stations told to wait come back
at different moments rather than as one herd. ``/healthz`` and ``/metrics`` are never
refused: a saturated central is still alive, and its refusals are what a scrape should show.

The counters live in one ``Admission`` per process and change only on the event loop, so
they need no lock.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter
from dataclasses import dataclass, field

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from fleet.config import LimitsSettings
from fleet.errors import ApiError, TooManyRequests
from fleet.protocol import Load

log = logging.getLogger(__name__)

LANES = ("uploads", "events", "other")


class Overloaded(ApiError):
    """503: central is at its limit for this kind of request; come back after ``Retry-After``."""

    status_code, code = 503, "overloaded"


def lane_of(method: str, path: str) -> str | None:
    """The lane a request queues in; None for requests never refused (health checks)."""
    if path in ("/healthz", "/metrics"):
        return None
    if path.startswith("/api/v1/uploads") and method in ("PATCH", "POST"):
        return "uploads"
    if path.startswith("/api/v1/events"):
        return "events"
    return "other"


def client_of(scope: Scope) -> str:
    """Who is asking, without keeping a secret in memory: a hash of the bearer token or session cookie."""
    credential = b""
    for name, value in scope.get("headers", ()):
        if name == b"authorization" or (name == b"cookie" and not credential):
            credential = value
    if not credential:
        client = scope.get("client") or ("?", 0)
        return f"address {client[0]}"
    return hashlib.sha256(credential).hexdigest()[:16]


@dataclass
class Admission:
    """In-flight counts per lane and per (lane, client), and how many requests were turned away."""

    limits: LimitsSettings
    in_flight: Counter = field(default_factory=Counter)
    per_client: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    rng: random.Random = field(default_factory=random.Random)

    def capacity(self, lane: str) -> int:
        return {
            "uploads": self.limits.uploads_in_flight,
            "events": self.limits.events_in_flight,
            "other": self.limits.other_in_flight,
        }[lane]

    def retry_after(self) -> dict[str, str]:
        base = self.limits.retry_after_s
        return {"Retry-After": str(self.rng.randint(base, 2 * base))}

    def admit(self, lane: str, client: str) -> None:
        """Count the request in, or raise 503/429 (counted in ``refused``)."""
        if self.in_flight[lane] >= self.capacity(lane):
            self.refused["503"] += 1
            self._log_refusal(lane, "central")
            raise Overloaded(
                f"central is at its limit of {self.capacity(lane)} {lane} requests at once; "
                "try again after Retry-After seconds",
                headers=self.retry_after(),
            )
        if self.per_client[lane, client] >= self.limits.per_client_in_flight:
            self.refused["429"] += 1
            self._log_refusal(lane, "client")
            raise TooManyRequests(
                f"this client already has {self.limits.per_client_in_flight} {lane} requests in "
                "flight; try again after Retry-After seconds",
                headers=self.retry_after(),
            )
        self.in_flight[lane] += 1
        self.per_client[lane, client] += 1

    def release(self, lane: str, client: str) -> None:
        self.in_flight[lane] -= 1
        self.per_client[lane, client] -= 1
        if not self.per_client[lane, client]:
            del self.per_client[lane, client]

    def load(self) -> Load:
        return Load(
            in_flight={lane: self.in_flight[lane] for lane in LANES},
            refused_503=self.refused["503"],
            refused_429=self.refused["429"],
        )

    def _log_refusal(self, lane: str, whose: str) -> None:
        total = self.refused.total()
        if total == 1 or total % 100 == 0:  # a saturated central must not also drown its log
            log.warning("overloaded: refused %d requests so far (latest: %s lane, %s limit)", total, lane, whose)


class AdmissionMiddleware:
    """ASGI middleware in front of every route: admit, run, release (also when the handler fails)."""

    def __init__(self, app: ASGIApp, admission: Admission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = lane_of(scope.get("method", ""), scope["path"]) if scope["type"] == ScopeType.HTTP else None
        if lane is None:
            await self.app(scope, receive, send)
            return
        client = client_of(scope)
        self.admission.admit(lane, client)
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.release(lane, client)
