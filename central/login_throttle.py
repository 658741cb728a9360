"""Throttling of dashboard logins: per account and per client address, growing lockouts.

Each failed login counts against the name tried (whether or not such a user exists, so a
lockout says nothing about who has an account) and against the place it came from. From
its ``ACCOUNT_FREE``-th failure an account (an address: ``ADDRESS_FREE``, higher, as one
office may share an address) is locked for ``BASE_LOCK_S``, doubled at every further
failure, at most ``MAX_LOCK_S``. A count is forgotten ``FORGET_AFTER_S`` after its last
failure; a successful login clears its account's count, never its address's (a guesser
with an account of its own must not be able to reset the count of the address it guesses
from). While either is locked an attempt is refused unchecked, no password hashed: 429 with
``Retry-After``.

The counts are rows of central's database (``login_throttle``, written only here), so a
fresh cookie jar, a restart or another central process on the same database starts no
count afresh. Lockouts, and attempts refused while locked, go to the audit trail.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta

from fleet.clock import from_iso, to_iso, utc_now
from fleet.errors import TooManyRequests
from central import audit

ACCOUNT_FREE = 5
"""Failed logins in a row on one account before it is locked."""
ADDRESS_FREE = 20
"""Failed logins from one client address, whatever the names tried, before it is locked."""
BASE_LOCK_S = 30
MAX_LOCK_S = 15 * 60
FORGET_AFTER_S = 60 * 60


class LoginThrottle:
    def __init__(self, writer, clock: Callable[[], datetime] = utc_now) -> None:
        self.writer = writer
        self.clock = clock

    def check(self, name: str, place: str) -> None:
        """Refuse (TooManyRequests, audited) while the account or the address is locked."""
        now = self.clock()
        keys = _keys(name, place)
        with self.writer.read() as db:
            rows = db.execute("SELECT key, locked_until FROM login_throttle WHERE key IN (?, ?) "
                              "AND locked_until > ?", [*keys, to_iso(now)]).fetchall()
        if not rows:
            return
        wait = max(1, math.ceil((max(from_iso(r[1]) for r in rows) - now).total_seconds()))
        with self.writer.write() as db:
            for key, _ in rows:
                audit.record(db, actor=name or "-", action="login-throttled", **_object(key), place=place,
                             detail=f"refused unchecked: locked for {wait} s more")
        raise TooManyRequests(f"too many failed logins: try again in {wait} seconds",
                              headers={"Retry-After": str(wait)})

    def failed(self, db, name: str, place: str) -> None:
        """Count a failed login; inside the transaction that records it."""
        now = self.clock()
        forget_before = to_iso(now - timedelta(seconds=FORGET_AFTER_S))
        db.execute("DELETE FROM login_throttle WHERE last_failed_at < ? AND (locked_until IS NULL "
                   "OR locked_until < ?)", [forget_before, to_iso(now)])
        for key, free in zip(_keys(name, place), (ACCOUNT_FREE, ADDRESS_FREE)):
            row = db.execute("SELECT failures FROM login_throttle WHERE key = ?", [key]).fetchone()
            failures = (row[0] if row else 0) + 1
            lock_s = min(MAX_LOCK_S, BASE_LOCK_S * 2 ** (failures - free)) if failures >= free else None
            db.execute("INSERT INTO login_throttle (key, failures, last_failed_at, locked_until) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, "
                       "last_failed_at = excluded.last_failed_at, locked_until = excluded.locked_until",
                       [key, failures, to_iso(now), to_iso(now + timedelta(seconds=lock_s)) if lock_s else None])
            if lock_s:
                audit.record(db, actor=name or "-", action="login-lockout", **_object(key), place=place,
                             detail=f"{failures} failed logins: locked for {lock_s} s")

    def succeeded(self, db, name: str) -> None:
        """A successful login clears its account's count (inside the login's transaction)."""
        db.execute("DELETE FROM login_throttle WHERE key = ?", [f"user:{name}"])


def _keys(name: str, place: str) -> tuple[str, str]:
    return f"user:{name}", f"address:{place}"


def _object(key: str) -> dict[str, str]:
    kind, _, value = key.partition(":")
    return {"object_type": kind, "object_id": value or "-"}
