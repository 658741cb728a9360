"""Browsers signed in to the desk page, when the desk has an ``api_token``.

The page never puts the token in a URL or a page: a sergeant types it once into the sign-in
form, and the browser gets a session id in an ``HttpOnly; SameSite=Strict`` cookie (no
script reads it, no other site's request carries it). Only the id's SHA-256 is kept, in this
process's memory: a restart signs every browser out, which costs one sign-in, and nothing
on disk can be replayed. A session ends after ``IDLE`` without use, or at sign-out.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from datetime import timedelta

COOKIE = "desk_session"
IDLE = timedelta(hours=12)
"""Longer than a shift, so a sergeant signs in once per shift, not per checkout."""
MOST = 256
"""Sessions kept at once; the least recently used goes first (a desk has a handful of browsers)."""


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


class DeskSessions:
    def __init__(self, idle: timedelta = IDLE, clock=time.monotonic) -> None:
        self.idle_s = idle.total_seconds()
        self.clock = clock
        self._last_used: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def start(self) -> str:
        """A new session; its id goes to the browser, once."""
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            self._last_used[_digest(session_id)] = self.clock()
            while len(self._last_used) > MOST:
                self._last_used.popitem(last=False)
        return session_id

    def valid(self, session_id: str | None) -> bool:
        """Whether the browser's id is a live session (and keep it alive)."""
        if not session_id:
            return False
        key, now = _digest(session_id), self.clock()
        with self._lock:
            used = self._last_used.get(key)
            if used is None or now - used > self.idle_s:
                self._last_used.pop(key, None)
                return False
            self._last_used[key] = now
            self._last_used.move_to_end(key)
            return True

    def end(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._last_used.pop(_digest(session_id), None)
