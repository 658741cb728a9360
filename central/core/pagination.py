"""Keyset cursors: opaque to clients, a tuple of the sort key to the server.

Lists that return a page object carry ``next_cursor`` in it; lists that return a bare JSON
array (kept so for the clients that already read them) carry it in the ``X-Next-Cursor``
header. Either way the client passes it back as ``?cursor=``.
"""

from __future__ import annotations

import base64
import binascii

from litestar import Response

from fleet.clock import from_iso, to_iso
from fleet.errors import BadRequest

NEXT_CURSOR_HEADER = "X-Next-Cursor"
CURSOR_HELP = "the X-Next-Cursor header of the previous page"


def encode_cursor(*parts: object) -> str:
    return base64.urlsafe_b64encode("|".join(str(p) for p in parts).encode()).decode()


def decode_cursor(cursor: str, count: int) -> tuple[str, ...]:
    """The ``count`` parts of a cursor this server gave out; BadRequest for anything else."""
    try:
        parts = tuple(base64.urlsafe_b64decode(cursor.encode()).decode().split("|"))
    except (binascii.Error, ValueError):
        raise BadRequest("cursor is not one this server gave out") from None
    if len(parts) != count or not all(parts):
        raise BadRequest("cursor is not one this server gave out")
    return parts


def cursor_id(part: str) -> int:
    """A cursor's row id: ASCII digits that fit a 64-bit integer (``"²".isdigit()`` is true, and
    SQLite refuses what does not fit); BadRequest for anything else."""
    if not (part.isascii() and part.isdigit()) or len(part) > 18:
        raise BadRequest("cursor is not one this server gave out")
    return int(part)


def decode_time_cursor(cursor: str) -> tuple[str, str]:
    """A (time, key) cursor: the time must be one of ours, so it compares as stored text does."""
    moment, key = decode_cursor(cursor, 2)
    try:
        if to_iso(from_iso(moment)) != moment:
            raise ValueError(moment)
    except ValueError:
        raise BadRequest("cursor is not one this server gave out") from None
    return moment, key


def page_response(rows: list, limit: int, key) -> Response:
    """A bare list of at most ``limit`` rows (``rows`` has one more if there is a next page)."""
    more = len(rows) > limit
    rows = rows[:limit]
    headers = {NEXT_CURSOR_HEADER: encode_cursor(*key(rows[-1]))} if more else {}
    return Response(rows, headers=headers)
