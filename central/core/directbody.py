"""A large request body read by the event loop straight into the handler's own buffers.

Through uvicorn a body reaches the app as bytes, copied four times on the event loop: uvloop
copies each read into a new bytes object, httptools copies it again for ``on_body``, uvicorn
appends that to a bytearray and copies the bytearray once more for each ``receive``. For a
GiB of upload that copying (and the page faults on ever new pieces) was most of the event
loop's CPU, which, with SHA-256, is what bounds an upload on a 2-core machine.

So for a large tus PATCH (``wants_direct_body``) ``central.core.httpserver`` hands the
connection, once the request's head is parsed, to a ``DirectBody``: an
``asyncio.BufferedProtocol``, so the transport reads the socket straight into the buffer the
handler lends to ``readinto`` (the upload receiver lends its aligned direct-I/O buffers: the
bytes are hashed and written from where the kernel put them). The handler finds it in the
request's scope (``direct_body``); anything else that reads the body reads it through the
ASGI ``receive`` as usual, served from here. When the body's last byte (Content-Length) is
in, the connection goes back to a fresh HTTP parser for the next request; a body the
handler never read (a request refused first) is read and dropped after the answer, as
uvicorn does, so the connection stays usable; into one buffer shared by every connection, and
only for the keep-alive time, after which the connection is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

SCOPE_KEY = "fleet.direct_body"
"""Where a request's ``DirectBody`` is, in ``scope["extensions"]``."""
DIRECT_BODY_MIN_BYTES = 256 << 10
"""A smaller body is parsed as usual: it costs little, and it often arrives with the head."""
SPILL_BYTES = 256 << 10
"""Bytes read while no buffer is lent go to a spill buffer of this size (read on the next
``readinto``); once it is full the socket is not read until a buffer is lent."""
PIECE_BYTES = 1 << 20
"""The size of the pieces served to a reader that does not lend buffers (the ASGI ``receive``)."""
DROPPED = memoryview(bytearray(64 << 10))
"""Where the bytes of a body nobody reads land, for every connection at once: they are dropped,
so one buffer serves them all (a refused body must cost the server no memory of its own)."""
RECEIVE_IDLE_S = 3600.0
"""How long the ASGI ``receive`` waits for a byte: as uvicorn's, in effect for ever (the upload
receiver has its own idle timeout)."""


def direct_body(scope: Mapping[str, Any]) -> DirectBody | None:
    """The request's body read direct, if the server reads it so."""
    return scope.get("extensions", {}).get(SCOPE_KEY)


def wants_direct_body(method: str, headers: Iterable[tuple[bytes, bytes]]) -> int:
    """The body's length if this request's body should be read direct, else 0: a tus PATCH
    (application/offset+octet-stream) with a Content-Length of at least DIRECT_BODY_MIN_BYTES."""
    if method != "PATCH":
        return 0
    length = 0
    octets = False
    for name, value in headers:
        if name == b"content-length":
            text = value.strip()
            if not (text.isdigit() and len(text) <= 20):
                return 0
            length = int(text)
        elif name == b"transfer-encoding":
            return 0
        elif name == b"content-type":
            octets = value.split(b";")[0].strip().lower() == b"application/offset+octet-stream"
    return length if octets and length >= DIRECT_BODY_MIN_BYTES else 0


class HttpSide(Protocol):
    """What a ``DirectBody`` needs of the HTTP protocol it stands in for (``BoundedHttpTools``)."""

    transport: asyncio.Transport

    def direct_body_done(self) -> None: ...
    def connection_lost(self, exc: Exception | None) -> None: ...
    def eof_received(self) -> bool | None: ...
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def continue_if_expected(self) -> None: ...
    def body_bytes_arrived(self) -> None: ...
    def close_unless_done_within_keep_alive(self) -> None: ...


class DirectBody(asyncio.BufferedProtocol):
    """One request's body of ``length`` bytes; the transport's protocol while it is read."""

    def __init__(self, http: HttpSide, length: int) -> None:
        self.http = http
        self.length = length
        self.remaining = length
        """Bytes still to come from the socket."""
        self.installed = False
        """Whether the transport reads into this (set by the HTTP side)."""
        self.gone = False
        """The client went away (or half-closed) before the body's end."""
        self._spill = bytearray()
        self._scratch: memoryview | None = None
        """Made when a byte comes with no buffer lent (never for a body refused before it came)."""
        self._target: memoryview | None = None
        self._into_target = False
        self._filled = 0
        self._waiter: asyncio.Future[None] | None = None
        self._discarding = False

    @property
    def complete(self) -> bool:
        """Every byte has been handed to the reader."""
        return self.remaining == 0 and not self._spill

    @property
    def spilled(self) -> int:
        """Bytes read from the socket and not yet handed to the reader."""
        return len(self._spill)

    @property
    def ended(self) -> bool:
        """No more bytes will come: all given out, or the client went away."""
        return self.complete or (self.gone and not self._spill)

    # -- the reader's side (the handler, on the event loop) ---------------------------------

    async def readinto(self, view: memoryview, idle_timeout_s: float) -> int:
        """Fill ``view`` with the body's next bytes; fewer only at its end, when the client went
        away, or when no byte came for ``idle_timeout_s`` (the caller sees which by ``ended``)."""
        n = min(len(view), len(self._spill))
        if n:
            view[:n] = self._spill[:n]
            del self._spill[:n]
        if n == len(view) or self.remaining == 0 or self.gone:
            return n
        self._target, self._filled = view, n
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        self.http.continue_if_expected()
        self.http.resume_reading()
        try:
            while True:
                before = self._filled
                try:
                    async with asyncio.timeout(idle_timeout_s):
                        await asyncio.shield(waiter)
                    return self._filled
                except TimeoutError:
                    if self._filled == before:
                        return self._filled  # stalled: the caller ends the request, keeping what came
        finally:
            # From here on the transport never writes into ``view`` (the caller may be cancelled
            # and reuse it at once): reads go to the spill buffer until the next buffer is lent.
            self._target, self._waiter = None, None

    def discard(self) -> None:
        """The answer is sent and nobody reads the rest: read it and drop it, within the
        keep-alive time (a client dribbling the rest of a huge body would otherwise hold the
        connection for ever: body bytes keep the keep-alive timer from starting)."""
        self._discarding = True
        self._spill.clear()
        self._scratch = None
        self.http.close_unless_done_within_keep_alive()
        self.http.resume_reading()

    # -- the transport's side (asyncio.BufferedProtocol) ------------------------------------

    def early(self, data: bytes) -> None:
        """Body bytes that came in the same read as the request's head (parsed with it)."""
        self.remaining -= len(data)
        self._spill += data

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._target is not None and not self._discarding:
            self._into_target = True
            return self._target[self._filled : self._filled + self.remaining]
        self._into_target = False
        if self._discarding:
            return DROPPED[: self.remaining]
        if self._scratch is None:
            self._scratch = memoryview(bytearray(SPILL_BYTES))
        return self._scratch[: self.remaining]

    def buffer_updated(self, nbytes: int) -> None:
        self.remaining -= nbytes
        self.http.body_bytes_arrived()
        if self._into_target:
            self._filled += nbytes
            assert self._target is not None
            if self._filled == len(self._target) or not self.remaining:
                self._wake()
        elif not self._discarding:
            assert self._scratch is not None  # get_buffer made it
            self._spill += self._scratch[:nbytes]
            if len(self._spill) >= SPILL_BYTES and self.remaining:
                self.http.pause_reading()
        if not self.remaining:
            self.http.direct_body_done()

    def _wake(self) -> None:
        self._target = None  # full: what comes next goes to the spill buffer
        if self.remaining:
            self.http.pause_reading()  # until the next buffer is lent
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def eof_received(self) -> bool | None:
        self._went_away()
        return self.http.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._went_away()
        self.http.connection_lost(exc)

    def _went_away(self) -> None:
        self.gone = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def pause_writing(self) -> None:
        self.http.pause_writing()

    def resume_writing(self) -> None:
        self.http.resume_writing()
