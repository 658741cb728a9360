"""A digest as it goes out: the webhook's JSON body (one msgspec Struct, docs/alerts.md) and the
mail made from it. Counts and links only: nothing the overview would not show."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

Change = Literal["new", "worse", "resolved", "reminder"]
CHANGE_WORDS: dict[str, str] = {"new": "NEW", "worse": "WORSE", "resolved": "RESOLVED", "reminder": "STILL ACTIVE"}
SCHEMA = "fleet.alerts.digest/1"


class AlertItem(msgspec.Struct, kw_only=True):
    """One alert in a digest: what it counts, in which borough, and how it changed since last told."""

    kind: str
    borough: str | None
    """None: the force's own (a broken audit chain)."""
    label: str
    count: int
    """Now (0: resolved)."""
    previous: int
    """What this destination was last told (0: nothing, or that it was resolved)."""
    change: Change
    active_since: datetime | None
    link: str


class Digest(msgspec.Struct, kw_only=True):
    """One message to one destination: every alert it had not been told of, new, worse or resolved,
    and, once a reminder is due, every one still active."""

    schema: str = SCHEMA
    message_id: str
    """The same on every attempt: a receiver that has it already answers 2xx and does nothing."""
    destination: str
    created_at: datetime
    dashboard: str
    items: list[AlertItem]
    test: bool = False
    """A test message (``fleet central alerts test``): no alert in it needs anyone."""


def encode(digest: Digest) -> bytes:
    return msgspec.json.encode(digest)


def decode(body: bytes | str) -> Digest:
    return msgspec.json.decode(body, type=Digest)


def subject(digest: Digest) -> str:
    if digest.test:
        return "[BWV fleet] test alert: this destination works"
    tally: dict[str, int] = {}
    for item in digest.items:
        tally[item.change] = tally.get(item.change, 0) + 1
    parts = [f"{tally[c]} {CHANGE_WORDS[c].lower()}" for c in CHANGE_WORDS if c in tally]
    boroughs = sorted({item.borough or "force-wide" for item in digest.items})
    where = ", ".join(boroughs[:3]) + (f" and {len(boroughs) - 3} more" if len(boroughs) > 3 else "")
    return f"[BWV fleet] alerts: {', '.join(parts)} ({where})"


def text(digest: Digest) -> str:
    """The mail's plain text: one line an alert, its link under it."""
    if digest.test:
        lines = ["A test message from central's alerts: mail reaches this destination.", ""]
    else:
        lines = [f"{len(digest.items)} alert(s) since the last message:", ""]
    for item in digest.items:
        now = f"{item.count}" + (f" (was {item.previous})" if item.change == "worse" else "")
        lines.append(f"{CHANGE_WORDS[item.change]:13} {item.borough or 'force-wide'}: {item.label}: {now}")
        lines.append(f"              {item.link}")
    lines += [
        "",
        f"Dashboard: {digest.dashboard}",
        f"Message {digest.message_id}, {digest.created_at:%Y-%m-%d %H:%M} UTC",
    ]
    return "\n".join(lines) + "\n"
