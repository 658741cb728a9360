"""Central's answers as transfer errors: its one JSON error shape read once for every direction."""

from __future__ import annotations

import httpx
import msgspec

from fleet.errors import OffsetMismatch, TransferError, TransientTransferError, transfer_error_for_status
from fleet.retry import parse_retry_after


def error_from_response(response: httpx.Response) -> TransferError:
    """Turn central's error (one JSON shape) into a transient or permanent TransferError."""
    message, code = response.reason_phrase or "error", None
    try:
        body = msgspec.json.decode(response.content)
        if isinstance(body, dict):
            message = str(body.get("message") or message)
            code = body.get("error")
    except msgspec.DecodeError:
        if response.content:
            message = response.text[:200]
    if code == OffsetMismatch.code:
        # Our idea of the offset was stale (a chunk landed after all): ask HEAD and go on.
        return TransientTransferError(f"HTTP 409: {message}", status=409)
    return transfer_error_for_status(
        response.status_code, message, parse_retry_after(response.headers.get("Retry-After"))
    )


def error_code(response: httpx.Response) -> str | None:
    """The ``error`` code of central's JSON error body, if it has one."""
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return None
    return body.get("error") if isinstance(body, dict) else None
