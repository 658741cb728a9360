"""Which central process runs the jobs that must run once: the projection, retention, fleet
health, audit publishing, upload expiry.

Any number of central processes (replicas) may serve one database; one of them leads. On
PostgreSQL the leader holds a session-level advisory lock on a connection of its own: when
the process dies its connection closes and the lock goes with it, and another replica takes
it at its next try (every ``check_s``). The connection asks the server to probe it with TCP
keepalives, so a leader whose machine vanished (no FIN ever comes) loses the lock within
``idle + interval × count`` seconds, not the server's default two hours. On SQLite (one
machine) the leader holds an exclusive ``flock`` on ``<data_dir>/central.lead``; a command run
beside central (``fleet central …``) never leads.

Leadership keeps the work efficient, not correct: every job's writes are serialised by the
database (``central.core.database``) and each is safe to repeat (the projection moves a
station's ``applied_seq`` in the transaction that applies its events), so two processes that
both believe they lead for a moment, a partitioned old leader and its successor, apply
nothing twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Coroutine
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from central.core.database import KEEPALIVE, SESSION, Database, PostgresDatabase
from fleet.lockfile import FileClaim

log = logging.getLogger(__name__)

LEAD_LOCK = 0x466C6565_744C4541  # "FleetLEA"
LEAD_FILE = "central.lead"
"""On SQLite, the file in central's data folder whose flock is the lead."""

T = TypeVar("T")


class Leadership:
    """This process's claim to lead, retried every ``check_s`` on a thread of its own."""

    def __init__(self, database: Database, data_dir: str | Path, *, check_s: float = 1.0) -> None:
        self.database = database
        self._claim = FileClaim(Path(data_dir) / LEAD_FILE)
        self.check_s = check_s
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._leading = threading.Event()
        self._stopping = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._thread = threading.Thread(target=self._run, name="leadership", daemon=True)
        self._gained: list[Callable[[], None]] = []

    @property
    def leading(self) -> bool:
        return self._leading.is_set()

    def on_gain(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the leadership thread) each time this process becomes the leader."""
        self._gained.append(callback)

    def wait(self, timeout: float) -> bool:
        """Until this process leads, or ``timeout``; True if it does."""
        return self._leading.wait(timeout)

    def start(self) -> Leadership:
        """Try once now (alone, a process leads before its first job is due), then every ``check_s``."""
        self._step()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop trying and let the lead go (another replica takes it at its next try)."""
        self._stopping.set()
        self._thread.join(timeout=30)
        self._let_go()

    def _run(self) -> None:
        while not self._stopping.wait(self.check_s):
            self._step()

    def _step(self) -> None:
        was = self.leading
        try:
            now = self._check()
        except Exception as exc:  # the database out of reach: lead again once it is back
            log.warning("leadership: cannot reach the database (%s); not leading", exc)
            self._let_go()
            now = False
        if now and not was:
            self._leading.set()
            log.info("this central process (%s) now leads the jobs that run once", self.name)
            for callback in self._gained:
                callback()
        elif was and not now:
            self._leading.clear()
            log.warning("this central process (%s) no longer leads the jobs", self.name)

    def _check(self) -> bool:
        """Take the lead if it is free; confirm it if held. True while this process leads."""
        if isinstance(self.database, PostgresDatabase):
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._let_go()
                self._conn = psycopg.connect(
                    self.database.url,
                    autocommit=True,
                    application_name=f"fleet-central-lead {self.name}",
                    options=SESSION,  # the server probes it: a vanished leader is let go within ~11 s
                    **KEEPALIVE,  # type: ignore[arg-type]
                )
            if self.leading:
                self._conn.execute("SELECT 1")  # the lock lives as long as this session
                return True
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", [LEAD_LOCK]).fetchone()
            return bool(row and row[0])
        return self._claim.try_take(self.name)

    def _let_go(self) -> None:
        self._leading.clear()
        if self._conn is not None:
            self._conn.close()  # the session's advisory lock goes with it
            self._conn = None
        self._claim.let_go()  # and the flock with the file


def when_leading(leadership: Leadership, job: Callable[..., T]) -> Callable[..., T | None]:
    """``job``, run only while this process leads (a scheduled job on every replica, done by one)."""

    @wraps(job)
    def led(*args: Any, **kwargs: Any) -> T | None:
        return job(*args, **kwargs) if leadership.leading else None

    return led


def when_leading_async(
    leadership: Leadership, job: Callable[..., Coroutine[Any, Any, T]]
) -> Callable[..., Coroutine[Any, Any, T | None]]:
    """``when_leading`` for a job that runs on the event loop."""

    @wraps(job)
    async def led(*args: Any, **kwargs: Any) -> T | None:
        return await job(*args, **kwargs) if leadership.leading else None

    return led
