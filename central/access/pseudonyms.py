"""A member of the public's address as the permanent record keeps it: a pseudonym of the day.

The audit chain is never rewritten, and its records travel: a clip's chain of custody goes into
every disclosure package. So what the public form records of where a request came from is not
the address but ``public:`` and an HMAC of it (as the form's throttle counts it: an IPv6
address by its /64) under a key of that UTC day. Within a day the same address has the same
pseudonym, so staff can see that one client sent a flood; the day's key is deleted after
``KEPT``, and from then on nobody, not even with the database, can link a pseudonym to an
address or to another day's. Keys live in ``signing_keys`` (``central.access.login_csrf``'s
table of keys made once and shared by every central process on the database).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from central.access.login_throttle import client_network
from fleet.clock import utc_now

KEPT = timedelta(days=2)
"""A day's key outlives its day by this much: long enough for a flood spanning midnight to be seen
as one client's. (The throttle's own rows, which do hold addresses, go an hour after their last use.)"""
_PREFIX = "client_pseudonym:"


def pseudonym(db, place: str, now: datetime | None = None) -> str:
    """``public:`` and 16 hex digits for ``place`` (``browser:<address>``), inside the caller's
    write transaction (the day's key is made on first use; keys past ``KEPT`` are deleted)."""
    now = now or utc_now()
    name = f"{_PREFIX}{now:%Y-%m-%d}"
    found = db.execute("SELECT key FROM signing_keys WHERE name = ?", [name]).fetchone()
    if found is None:
        db.execute(
            "INSERT INTO signing_keys (name, key) VALUES (?, ?) ON CONFLICT DO NOTHING", [name, secrets.token_bytes(32)]
        )
        db.execute(
            "DELETE FROM signing_keys WHERE name LIKE ? AND name < ?",
            [f"{_PREFIX}%", f"{_PREFIX}{now - KEPT:%Y-%m-%d}"],
        )
        found = db.execute("SELECT key FROM signing_keys WHERE name = ?", [name]).fetchone()
    digest = hmac.new(bytes(found[0]), client_network(place).encode(), hashlib.sha256).hexdigest()
    return f"public:{digest[:16]}"
