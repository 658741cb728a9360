"""Telling every central replica that something was committed: PostgreSQL's LISTEN/NOTIFY.

A change committed by one replica must wake the requests waiting on every replica (a
station's long poll of the changes feed) and the jobs waiting on the leader (the projection,
for events acknowledged elsewhere). ``notify`` runs inside the writing transaction, so the
notification is delivered at its commit and never for a rollback; PostgreSQL folds the same
channel and payload sent twice in one transaction into one. Each replica listens on one
connection of its own (``Listener``) and hands each notification to the callbacks of its
channel. A listener that loses its connection reconnects and then calls every callback with
no payload: what was sent meanwhile is lost, so everyone looks for themselves.

On SQLite there is one central process: its own calls wake its waiters directly, and
``notify`` does nothing.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import psycopg
import tenacity
from psycopg import sql

from central.core.database import Database, PostgresDatabase

log = logging.getLogger(__name__)

CHANGES = "fleet_changes"
"""Payload: the borough whose stations' feed changed."""
EVENTS = "fleet_events"
"""Payload: the station whose events were acknowledged (for the projection)."""


def notify(db: Any, channel: str, payload: str = "") -> None:
    """Inside a write: ``payload`` on ``channel`` to every replica once this transaction commits."""
    if db.dialect.postgres:
        db.execute("SELECT pg_notify(?, ?)", [channel, payload])


class Listener:
    """This replica's ear: one connection that LISTENs, a thread that dispatches."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._callbacks: dict[str, list[Callable[[str | None], None]]] = defaultdict(list)
        self._stopping = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._thread = threading.Thread(target=self._run, name="notifications", daemon=True)
        self._wake_channel = f"fleet_listener_{uuid.uuid4().hex}"
        """This listener's own channel: ``stop`` notifies it to end the wait at once."""
        self.listening = threading.Event()
        """Set once LISTEN is in place (tests wait for it before notifying)."""

    def subscribe(self, channel: str, callback: Callable[[str | None], None]) -> None:
        """``callback(payload)`` on the listener's thread; ``None`` after a reconnection (look for yourself)."""
        self._callbacks[channel].append(callback)

    def start(self) -> Listener:
        if isinstance(self.database, PostgresDatabase):
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._wake()
            self._thread.join(timeout=10)

    def _wake(self) -> None:
        """End the thread's wait for notifications now, not at its next timeout: every central's
        shutdown waited up to a second for it."""
        if self._conn is None:  # connecting: it looks at the stop before it listens
            return
        assert isinstance(self.database, PostgresDatabase)
        try:
            with psycopg.connect(self.database.url, autocommit=True, connect_timeout=1) as conn:
                conn.execute("SELECT pg_notify(%s, '')", [self._wake_channel])
        except psycopg.Error:
            pass  # the database is away: the thread sees the stop at its timeout, as before

    def _run(self) -> None:
        first = True
        while not self._stopping.is_set():
            try:
                self._connect()
                if not first:  # notifications sent while it was away are lost: everyone looks
                    self._dispatch_all(None)
                first = False
                self._listen()
            except psycopg.Error as exc:
                if self._stopping.is_set():
                    break
                log.warning("notifications: the connection failed (%s); reconnecting", exc)
            finally:
                self.listening.clear()
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

    @tenacity.retry(
        retry=tenacity.retry_if_exception_type(psycopg.OperationalError),
        wait=tenacity.wait_exponential(multiplier=0.1, max=5.0),
        stop=tenacity.stop_never,
        reraise=True,
    )
    def _connect(self) -> None:
        if self._stopping.is_set():
            return
        assert isinstance(self.database, PostgresDatabase)
        self._conn = psycopg.connect(self.database.url, autocommit=True, application_name="fleet-central-listen")
        for channel in [*self._callbacks, self._wake_channel]:
            self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        self.listening.set()

    def _listen(self) -> None:
        while not self._stopping.is_set() and self._conn is not None:
            for note in self._conn.notifies(timeout=1.0):
                if self._stopping.is_set():
                    break
                for callback in self._callbacks.get(note.channel, ()):
                    self._call(callback, note.payload)

    def _dispatch_all(self, payload: str | None) -> None:
        for callbacks in self._callbacks.values():
            for callback in callbacks:
                self._call(callback, payload)

    @staticmethod
    def _call(callback: Callable[[str | None], None], payload: str | None) -> None:
        try:
            callback(payload)
        except Exception:
            log.exception("a notification's callback failed")
