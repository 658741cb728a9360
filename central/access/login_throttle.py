"""Throttling of dashboard logins and of the public's forms: per key, growing lockouts.

Each failed login counts against the name tried (whether or not such a user exists, so a
lockout says nothing about who has an account) and against the place it came from. From
its ``ACCOUNT_FREE``-th failure an account (an address: ``ADDRESS_FREE``, higher, as one
office may share an address) is locked for ``BASE_LOCK_S``, doubled at every further
failure, at most ``MAX_LOCK_S``. A count is forgotten ``FORGET_AFTER_S`` after its last
failure; a successful login clears its account's count, never its address's (a guesser
with an account of its own must not be able to reset the count of the address it guesses
from). While either is locked an attempt is refused unchecked, no password hashed: 429 with
``Retry-After``. Each attempt is counted before its password is hashed, in the transaction
that checks the locks, and given back when it succeeds: logins sent all at once are counted
as if sent one by one, so a burst has no more passwords tried than the count allows.

The counts are rows of central's database (``login_throttle``, written only here), so a
fresh cookie jar, a restart or another central process on the same database starts no
count afresh. Lockouts, and attempts refused while locked, go to the audit trail.

The public's forms (``FormThrottle``) are counted by the same rows and the same rule: every
submission from a client address counts as an attempt (and, with a larger allowance, against
the form as a whole, so a flood from many addresses is held too); only lockouts are audited,
so a flood cannot grow the audit trail by one record per refusal.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypedDict

from central.core.database import Database
from central.evidence import audit
from fleet.clock import from_iso, to_iso, utc_now
from fleet.errors import TooManyRequests

ACCOUNT_FREE = 5
"""Failed logins in a row on one account before it is locked."""
ADDRESS_FREE = 20
"""Failed logins from one client address, whatever the names tried, before it is locked."""
BASE_LOCK_S = 30
MAX_LOCK_S = 15 * 60
FORGET_AFTER_S = 60 * 60


class LoginThrottle:
    """An attempt is counted as a failure before its password is hashed (``admit``, one write
    transaction with the lock check), and given back if the password was right (``succeeded``):
    parallel attempts each see the ones admitted before them, so a burst of logins sent at once
    is held to the same count as the same logins sent one by one."""

    def __init__(self, writer: Database, clock: Callable[[], datetime] = utc_now) -> None:
        self.writer = writer
        self.clock = clock

    def admit(self, name: str, place: str) -> dict[str, tuple]:
        """Refuse (TooManyRequests, audited) while the account or the address is locked; else count
        this attempt as failed. Returns, per key, (failures counted, seconds locked from now or
        None, the key's row before), for ``failed`` to audit once the password turned out wrong
        and for ``succeeded`` to give back once it was right."""
        now = self.clock()
        keys = _keys(name, place)
        with self.writer.write() as db:
            locked, wait = _locked_for(db, list(keys), now)
            if locked:
                for key in locked:
                    audit.record(
                        db,
                        actor=name or "-",
                        action="login-throttled",
                        **_object(key),
                        place=place,
                        detail=f"refused unchecked: locked for {wait} s more",
                    )
            else:
                counted = self._count(db, keys, now)
        if locked:
            raise TooManyRequests(
                f"too many failed logins: try again in {wait} seconds", headers={"Retry-After": str(wait)}
            )
        return counted

    @staticmethod
    def _count(db, keys: tuple[str, str], now: datetime) -> dict[str, tuple]:
        _forget(db, now)
        return {
            key: _count_one(db, key, free, now) for key, free in zip(keys, (ACCOUNT_FREE, ADDRESS_FREE), strict=True)
        }

    def failed(self, db, name: str, place: str, counted: dict[str, tuple]) -> None:
        """The admitted attempt failed (it is counted already): audit the lockouts it caused;
        inside the transaction that records the failure."""
        for key, (failures, lock_s, _) in counted.items():
            if lock_s:
                audit.record(
                    db,
                    actor=name or "-",
                    action="login-lockout",
                    **_object(key),
                    place=place,
                    detail=f"{failures} failed logins: locked for {lock_s} s",
                )

    def succeeded(self, db, name: str, place: str, counted: dict[str, tuple]) -> None:
        """A successful login clears its account's count and gives back the failure its admission
        counted against its address (inside the login's transaction). The address's count is never
        cleared: a guesser with an account of its own must not reset the address it guesses from.

        Given back whole when no attempt was counted since: the address's row as it was, with its
        lock (over, or the attempt would not have been admitted) and its last failure's time. The
        admission counted a failure past the threshold and locked the address for it, and moved
        the time its count is forgotten: left so, every right login after a lockout would lock
        out the next user of a shared address, and keep the count for ever."""
        db.execute("DELETE FROM login_throttle WHERE key = ?", [f"user:{name}"])
        _, address = _keys(name, place)
        row = db.execute("SELECT failures FROM login_throttle WHERE key = ?", [address]).fetchone()
        if row is None:
            return
        admitted, _, before = counted.get(address, (None, None, None))
        if row[0] == admitted:
            if before is None:
                db.execute("DELETE FROM login_throttle WHERE key = ?", [address])
            else:
                db.execute(
                    "UPDATE login_throttle SET failures = ?, last_failed_at = ?, locked_until = ? WHERE key = ?",
                    [*before, address],
                )
            return
        failures = row[0] - 1
        if failures <= 0:
            db.execute("DELETE FROM login_throttle WHERE key = ?", [address])
        elif _lock_s(failures, ADDRESS_FREE) is None:
            db.execute("UPDATE login_throttle SET failures = ?, locked_until = NULL WHERE key = ?", [failures, address])
        else:
            db.execute("UPDATE login_throttle SET failures = ? WHERE key = ?", [failures, address])


def _lock_s(failures: int, free: int) -> int | None:
    return min(MAX_LOCK_S, BASE_LOCK_S * 2 ** (failures - free)) if failures >= free else None


def _forget(db, now: datetime) -> None:
    """Counts whose last attempt is older than ``FORGET_AFTER_S`` and not locked go."""
    db.execute(
        "DELETE FROM login_throttle WHERE last_failed_at < ? AND (locked_until IS NULL OR locked_until < ?)",
        [to_iso(now - timedelta(seconds=FORGET_AFTER_S)), to_iso(now)],
    )


def _count_one(db, key: str, free: int, now: datetime) -> tuple:
    """Count one more attempt against ``key`` (locked from its ``free``-th): (attempts counted,
    seconds locked from now or None, the key's row before)."""
    row = db.execute(
        "SELECT failures, last_failed_at, locked_until FROM login_throttle WHERE key = ?", [key]
    ).fetchone()
    failures = (row[0] if row else 0) + 1
    lock_s = _lock_s(failures, free)
    db.execute(
        "INSERT INTO login_throttle (key, failures, last_failed_at, locked_until) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, "
        "last_failed_at = excluded.last_failed_at, locked_until = excluded.locked_until",
        [key, failures, to_iso(now), to_iso(now + timedelta(seconds=lock_s)) if lock_s else None],
    )
    return failures, lock_s, tuple(row) if row else None


def _locked_for(db, keys: list[str], now: datetime) -> tuple[list[str], int]:
    """The keys locked now, and the seconds until the last of them is free (0: none locked)."""
    rows = db.execute(
        f"SELECT key, locked_until FROM login_throttle WHERE {db.dialect.any_of('key')} AND locked_until > ?",
        [db.dialect.many(keys), to_iso(now)],
    ).fetchall()
    if not rows:
        return [], 0
    return [r[0] for r in rows], max(1, math.ceil((max(from_iso(r[1]) for r in rows) - now).total_seconds()))


class FormThrottle:
    """A public form's submissions, counted per client address (``address_free`` a burst before
    its lock) and all together (``all_free``): the login throttle's rows and rule, its own keys."""

    def __init__(
        self, writer: Database, form: str, address_free: int, all_free: int, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.writer = writer
        self.form = form
        self.frees = {"address": address_free, "all": all_free}
        self.clock = clock

    def _keys(self, place: str) -> dict[str, str]:
        return {"address": f"{self.form}:{client_network(place)}", "all": f"{self.form}:all"}

    def admit(self, db, place: str, *, count: bool = True) -> None:
        """Refuse (TooManyRequests) while the address or the form is locked; else count this submission
        (``count``: False to only check, as for a lookup that counts only when it misses). Inside
        the caller's transaction, so a submission and its count commit together."""
        now = self.clock()
        keys = self._keys(place)
        locked, wait = _locked_for(db, list(keys.values()), now)
        if locked == [keys["all"]] and count and _unseen(db, keys["address"]):
            # The form is busy, but this address has sent nothing lately: its first request goes
            # through, so a flood from some addresses never shuts the form for everyone else.
            locked = []
        if locked:
            busy = keys["all"] in locked
            raise TooManyRequests(
                ("this form is very busy just now" if busy else "too many requests from your address")
                + f": please try again in {_in_words(wait)}",
                headers={"Retry-After": str(wait)},
            )
        if count:
            _forget(db, now)
            for which, key in keys.items():
                self._count(db, key, self.frees[which], place, now)

    def missed(self, db, place: str) -> None:
        """A lookup that found nothing: counted against the address only (guessing is what it locks)."""
        now = self.clock()
        _forget(db, now)
        self._count(db, self._keys(place)["address"], self.frees["address"], place, now)

    def _count(self, db, key: str, free: int, place: str, now: datetime) -> None:
        failures, lock_s, _ = _count_one(db, key, free, now)
        if lock_s:
            audit.record(
                db,
                actor="public",
                action=f"{self.form}-lockout",
                object_type="throttle",
                object_id=key,
                place=place,
                detail=f"{failures} in a row: locked for {lock_s} s",
            )


def _unseen(db, key: str) -> bool:
    return db.execute("SELECT 1 FROM login_throttle WHERE key = ?", [key]).fetchone() is None


def client_network(place: str) -> str:
    """The client a form counts as one: an IPv6 address by its /64 (one subscriber's line hands
    out a whole /64, so counting single addresses would let one line send without end); an IPv4
    address by itself, also when seen as IPv6 (``::ffff:a.b.c.d``, whose /64 every IPv4 client shares)."""
    kind, _, host = place.partition(":")  # "browser:<address>" (``client_place``)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return place
    if address.version == 6 and address.ipv4_mapped is not None:  # IPv4 through a dual-stack socket
        return f"{kind}:{address.ipv4_mapped}"
    if address.version == 6:
        return f"{kind}:{ipaddress.ip_network(f'{address}/64', strict=False)}"
    return place


def _in_words(seconds: int) -> str:
    return f"{seconds} seconds" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"


def _keys(name: str, place: str) -> tuple[str, str]:
    return f"user:{name}", f"address:{place}"


class _Object(TypedDict):
    """An audit record's object, as ``audit.record`` takes it."""

    object_type: str
    object_id: str


def _object(key: str) -> _Object:
    kind, _, value = key.partition(":")
    return {"object_type": kind, "object_id": value or "-"}
