"""A digest POSTed to a webhook, signed with the destination's shared secret; and the receiver's check.

Headers (docs/alerts.md has the recipe in full):

    Fleet-Alert-Id:         the message's id, the same on every attempt
    Fleet-Alert-Timestamp:  Unix seconds when this attempt was signed
    Fleet-Alert-Signature:  sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

The timestamp is signed with the body, so a receiver that refuses one older than a few minutes,
and remembers the ids it took for as long, refuses every replay.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx

from fleet.errors import PermanentTransferError, TransientTransferError
from fleet.retry import parse_retry_after

ID, TIMESTAMP, SIGNATURE = "Fleet-Alert-Id", "Fleet-Alert-Timestamp", "Fleet-Alert-Signature"
TOLERANCE_S = 300
"""How old a signature a receiver should take (and how long it remembers the ids it took)."""
LATER = frozenset({408, 425, 429})
"""Statuses below 500 that still mean "try again later"."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, body: bytes, timestamp: str, signature: str, *, now: float | None = None) -> bool:
    """What a receiver does: the timestamp within ``TOLERANCE_S`` of its clock, and the signature
    over it and the body the right one (compared in constant time). Then it drops an id it has taken."""
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > TOLERANCE_S:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body).encode(), signature.encode())


def post(client: httpx.Client, url: str, secret: str, message_id: str, body: bytes) -> None:
    """One attempt; a TransientTransferError when a later one may succeed, PermanentTransferError when not."""
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        ID: message_id,
        TIMESTAMP: str(timestamp),
        SIGNATURE: sign(secret, timestamp, body),
    }
    try:
        # The status says it all: the answer's body is never read, so a receiver that sends a
        # large one, or sends it slowly or not at all after its 2xx, neither fills central's
        # memory nor holds up the next message, nor has a delivered message sent again.
        with client.stream("POST", url, content=body, headers=headers) as answer:
            pass
    except httpx.TransportError as exc:
        raise TransientTransferError(f"webhook unreachable: {type(exc).__name__}: {exc}".rstrip(": ")) from exc
    if answer.is_success:
        return
    message = f"webhook answered {answer.status_code}"
    if answer.status_code >= 500 or answer.status_code in LATER:
        raise TransientTransferError(
            message, status=answer.status_code, retry_after=parse_retry_after(answer.headers.get("Retry-After"))
        )
    raise PermanentTransferError(message + " (a retry would be refused too)", status=answer.status_code)
