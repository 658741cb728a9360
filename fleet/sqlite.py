"""SQLite the same way in every process: WAL, synchronous=FULL, BEGIN IMMEDIATE, migrations.

An acknowledgement (INGESTED.json, "verified") is only ever given after a FULL-synchronous
commit, so a power cut cannot take back what was acknowledged.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import tenacity

from fleet.errors import FleetError

_SWITCH_TO_WAL = tenacity.Retrying(
    retry=tenacity.retry_if_exception(lambda e: isinstance(e, sqlite3.OperationalError) and "locked" in str(e)),
    stop=tenacity.stop_after_delay(30),
    wait=tenacity.wait_random(0.001, 0.05),
    reraise=True,
)
"""Processes opening a new file at once race to switch it to WAL, and SQLite answers the losers
"database is locked" at once, without its busy handler: they try again (as the handler would)."""


def open_database(path: str | Path, factory: type[sqlite3.Connection] = sqlite3.Connection) -> sqlite3.Connection:
    """Open (creating if needed) a database tuned for durable, concurrent use from threads."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0, factory=factory)
    _SWITCH_TO_WAL(conn.execute, "PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def open_existing(path: str | Path) -> sqlite3.Connection:
    """Open a database that must already exist, for reads and writes, changing nothing on opening
    (no file created, no journal mode switched): for a command beside the process that owns it."""
    uri = f"{Path(path).resolve().as_uri()}?mode=rw"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30.0)
    try:
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA user_version").fetchone()  # SQLite opens the file at the first statement
    except BaseException:
        conn.close()
        raise
    return conn


def open_reader(path: str | Path, factory: type[sqlite3.Connection] = sqlite3.Connection) -> sqlite3.Connection:
    """A connection for reads only (``query_only``): in WAL mode it never waits for the writer."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0, factory=factory)
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA query_only=1")
    return conn


def open_read_only(path: str | Path) -> sqlite3.Connection:
    """Open a database that cannot be written (a read-only file or file system), for reads only.

    A WAL left by a process that did not close the file is read with it. Without one (the
    last connection closed cleanly) SQLite cannot create the shared-memory file it needs on a
    read-only file system and refuses to open; the file is then opened as immutable, which is
    true of it: no process can change it there, and it holds every commit.
    """
    uri = Path(path).resolve().as_uri()
    try:
        return _read_only(f"{uri}?mode=ro")
    except sqlite3.OperationalError:
        wal = Path(f"{path}-wal")
        if wal.exists() and wal.stat().st_size:
            raise  # commits in the WAL that an immutable open would not see
        return _read_only(f"{uri}?immutable=1")


def _read_only(uri: str) -> sqlite3.Connection:
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30.0)
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA query_only=1")
        conn.execute("PRAGMA user_version").fetchone()  # SQLite opens the file at the first statement
    except BaseException:
        conn.close()
        raise
    return conn


def is_read_only(exc: sqlite3.Error) -> bool:
    """A refusal no wait mends: the file or its file system is read-only, or cannot be opened."""
    return getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN"))


def unwritable_reason(path: str | Path, exc: BaseException) -> str:
    """``exc`` from a write refused, and a read-only mount under ``path`` if that is the cause
    (SQLite itself says only "readonly database" or "unable to open database file")."""
    try:
        read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    return f"{exc} (read-only file system: {path})" if read_only else str(exc)


class Writer:
    """Serialises one process's access to its connection; every write is BEGIN IMMEDIATE.

    With ``readers`` (the database's path), a read outside a write runs on a connection of the
    reading thread's own: WAL readers see the last commit and never wait for the writer, so a
    long write transaction no longer holds up every read (central's event loop reads for every
    upload request, the changes feed for every station). Reads inside a write use the writer's
    connection, so a transaction sees its own changes.
    """

    def __init__(
        self,
        db: sqlite3.Connection,
        readers: str | Path | None = None,
        factory: type[sqlite3.Connection] = sqlite3.Connection,
        *,
        group_commit: bool = False,
    ) -> None:
        self.db = db
        self._wal: Path | None = None
        """With ``group_commit``: the WAL file, synced by ``_sync_through`` (see ``write``)."""
        if group_commit:
            main = next(row[2] for row in db.execute("PRAGMA database_list") if row[1] == "main")
            self._wal = Path(f"{main}-wal")
        self._syncing_normal = False
        """The connection is at ``synchronous=NORMAL`` for good (group commit, from the first write on;
        migrations before it commit at FULL)."""
        self._committed = 0
        """How many grouped commits have completed (under ``_lock``)."""
        self._synced = 0
        """How many of those the last WAL fsync covered (under ``_syncing``)."""
        self._syncing = threading.Lock()
        self._factory = factory
        self._lock = threading.RLock()
        self._readers_path = readers
        self._local = threading.local()
        self._readers: dict[int, sqlite3.Connection] = {}
        """Every thread's reader connection, by its thread's ``_ThreadReader``; closed when the thread
        ends (worker pools retire idle threads and start new ones: anyio's after 10 s)."""
        self._reading = 0
        self._closing = False
        self._idle = threading.Condition()
        """Counts reads in progress on reader connections, so ``close`` can wait for them."""

    @contextmanager
    def write(self, *, durable: bool = True, wait_s: float | None = None) -> Iterator[sqlite3.Connection]:
        """One transaction. ``durable=False`` commits without syncing the WAL (``synchronous=NORMAL``):
        still atomic, and made durable by the next durable commit (the WAL is one file, synced
        whole); for a change that acknowledges nothing, whose loss in a power cut a client
        recovers from by itself (an upload created but not yet written to). ``wait_s`` bounds
        the wait for another process's write ("database is locked" after it) instead of the
        connection's busy timeout.

        With ``group_commit``, a durable write commits without syncing, releases the connection
        to the next writer, then returns only once an fsync of the WAL that began after its
        commit has completed: concurrent writers (central's uploads, one a worker thread each)
        share one fsync instead of queueing for one each. What returns is as durable as a
        ``synchronous=FULL`` commit; SQLite itself syncs the WAL before any checkpoint."""
        grouped = durable and self._wal is not None
        with self._lock:
            conn = self.db
            if conn.in_transaction:  # nested: the outer transaction commits
                yield self.db
                return
            if (not durable or grouped) and not self._syncing_normal:
                conn.execute("PRAGMA synchronous=NORMAL")
                # With group commit every write commits so (a durable one then waits for its WAL
                # sync): the connection stays at NORMAL, two statements fewer in every write.
                self._syncing_normal = self._wal is not None
            if wait_s is not None:
                busy_ms = conn.execute("PRAGMA busy_timeout").fetchone()[0]
                conn.execute(f"PRAGMA busy_timeout={int(wait_s * 1000)}")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.db
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                else:
                    conn.execute("COMMIT")
                    self._committed += 1
                    mine = self._committed
            finally:
                if wait_s is not None:
                    conn.execute(f"PRAGMA busy_timeout={busy_ms}")
                if (not durable or grouped) and not self._syncing_normal:
                    conn.execute("PRAGMA synchronous=FULL")
        if grouped:
            self._sync_through(mine)

    def _sync_through(self, commit: int) -> None:
        """Return once the WAL is synced past grouped commit number ``commit``: by an fsync that
        another writer began after it, or by one begun here for every commit made so far."""
        with self._syncing:
            if self._synced >= commit:
                return
            upto = self._committed  # commits whose COMMIT has returned: their frames are in the WAL
            assert self._wal is not None
            try:
                fd = os.open(self._wal, os.O_RDONLY)
            except FileNotFoundError:  # checkpointed whole and removed (SQLite synced it first)
                fd = os.open(self._wal.with_name(self._wal.name.removesuffix("-wal")), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self._synced = upto

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        # Inside a write (this thread holds the lock) read on the writer's connection. RLock's
        # _is_owned is the only way to ask, and typeshed does not declare it.
        if self._readers_path is None or self._lock._is_owned():  # type: ignore[attr-defined]
            with self._lock:
                yield self.db
            return
        mine = getattr(self._local, "reader", None)
        if mine is None:
            mine = self._local.reader = _ThreadReader(open_reader(self._readers_path, self._factory))
            with self._idle:
                self._readers[id(mine)] = mine.db
            # The thread's local value goes when the thread ends: so does its connection.
            weakref.finalize(mine, _forget_reader, self._readers, self._idle, id(mine)).atexit = False
        reader = mine.db
        with self._idle:
            if self._closing:
                raise FleetError("the database is closed: the process is stopping")
            self._reading += 1
        try:
            yield reader
        finally:
            with self._idle:
                self._reading -= 1
                self._idle.notify_all()

    def close(self, timeout_s: float = 30.0) -> None:
        """Close every connection once no thread is writing or reading (closing under a query crashes SQLite)."""
        with self._idle:  # first, without the writer's lock: a reader may still want to write
            self._closing = True  # from here no read starts on a reader connection
            self._idle.wait_for(lambda: self._reading == 0, timeout_s)
        with self._lock, self._idle:
            for reader in self._readers.values():
                reader.close()
            self._readers.clear()
            self.db.close()


def _forget_reader(readers: dict[int, sqlite3.Connection], idle: threading.Condition, key: int) -> None:
    """A reading thread ended: close its connection (no query can be running on it)."""
    with idle:
        reader = readers.pop(key, None)
    if reader is not None:
        reader.close()


class _ThreadReader:
    """One thread's reader connection, held in the writer's thread-local storage."""

    __slots__ = ("__weakref__", "db")

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db


def migrate(db: sqlite3.Connection, migrations: Sequence[str]) -> int:
    """Apply the migrations not yet applied (PRAGMA user_version counts them); return the version.

    Each step reads the version and applies itself inside one BEGIN IMMEDIATE transaction,
    so a crash leaves the schema at a whole step and two processes opening the same file
    at once (a station and its status command) never both apply it. A database already at
    this version is not written to: it may be read-only, or another process may be writing.
    """
    if check_version(db, migrations) == len(migrations):
        return len(migrations)
    conn = db
    for version, script in enumerate(migrations, start=1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if check_version(db, migrations) < version:
                for statement in split_statements(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return len(migrations)


def check_version(db: sqlite3.Connection, migrations: Sequence[str]) -> int:
    """The schema version, read without a write; newer than this program is an error."""
    current: int = db.execute("PRAGMA user_version").fetchone()[0]
    if current > len(migrations):
        raise FleetError(f"database schema v{current} is newer than this program (v{len(migrations)}); upgrade it")
    return current


def split_statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit on its own)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
