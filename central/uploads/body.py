"""A PATCH's (or a creation's) body as it arrives: bounded by the room the upload has left, and
ended, keeping what came, when it stalls or the client goes away."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from fleet.errors import PayloadTooLarge

log = logging.getLogger(__name__)


class RequestBody:
    """A request body's pieces; a body that stalls or breaks ends it (``cut_short``), keeping what came."""

    def __init__(
        self, body: AsyncIterator[bytes], room: int, idle_timeout_s: float, upload_id: str, too_large: str = ""
    ) -> None:
        """``too_large``: what a body past ``room`` is told (by default, as a tus upload is)."""
        self.body, self.room, self.idle_timeout_s, self.upload_id = body, room, idle_timeout_s, upload_id
        self.too_large = too_large or f"more bytes than Upload-Length allows ({room} left)"
        self.seen = 0
        self.cut_short = False

    async def pieces(self) -> AsyncIterator[bytes]:
        """The non-empty pieces; PayloadTooLarge once they pass ``room``.

        Each wait has its own deadline: one ``asyncio.timeout`` for the whole body, moved before
        each wait and lifted while the piece is handed on (the caller's work is not timed). Not
        ``asyncio.wait_for``: on Python 3.11 it wraps every wait in a task of its own and takes
        extra turns of the event loop, for each of the ~4,000 pieces of a GiB (uvloop reads
        256,000 bytes at a time); nor a new ``asyncio.timeout`` for each piece, which cost a
        small clip's upload 2 % of central's event loop."""
        stream = aiter(self.body)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(None) as deadline:
                while True:
                    deadline.reschedule(loop.time() + self.idle_timeout_s)
                    try:
                        piece = await anext(stream)
                    except StopAsyncIteration:
                        return
                    except Exception as exc:  # the client went away mid-body
                        self.cut_short = True
                        log.info("upload %s: body cut short after %d bytes (%s)", self.upload_id, self.seen, exc)
                        return
                    deadline.reschedule(None)
                    self.seen += len(piece)
                    if self.seen > self.room:
                        raise PayloadTooLarge(self.too_large)
                    if piece:
                        yield piece
        except TimeoutError:
            if not deadline.expired():
                raise
            self.cut_short = True
            log.warning(
                "upload %s: no bytes for %.0f s after %d; ending the request (what arrived is kept)",
                self.upload_id,
                self.idle_timeout_s,
                self.seen,
            )
