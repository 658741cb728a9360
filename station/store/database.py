"""The station's database: opened, migrated and checked once per process, its tables' owners wired."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fleet import sqlite
from fleet.cipher import Keyring
from fleet.clock import to_iso, utc_now
from fleet.errors import FleetError
from station.store import meta
from station.store.checkouts import Checkouts
from station.store.mirror import Mirror
from station.store.outbox import Outbox
from station.store.queue import ClipQueue
from station.store.schema import MIGRATIONS
from station.store.updates import Updates

CENTRAL_TLS_PROBLEM = "central_tls_problem"
PROBE_WAIT_S = 0.2
"""How long the write probe waits for another process's write lock (held: the file is writable)."""


class _RolledBack(Exception):
    """Ends a probing write without committing it."""


class StationStore:
    """The station's database and files, opened once per process; each table's reads and writes
    are its owner's (``queue``, ``outbox``, ``mirror``, ``checkouts``, ``updates``)."""

    def __init__(
        self, data_dir: str | Path, *, read_only: bool = False, upgrade: bool = True, keys: Keyring | None = None
    ) -> None:
        """``read_only``: open an existing database for reads only. ``upgrade=False``: open an existing
        database as it is, never creating folders or migrating it (see ``for_reading``). ``keys``: the
        station keys its clips are sealed under, given by the process (never read from the database);
        without them clips can be neither ingested nor uploaded."""
        self.data_dir = Path(data_dir)
        self.keys = keys
        self.clips_dir = self.data_dir / "clips"
        self.tmp_dir = self.data_dir / "tmp"
        self.path = self.data_dir / "station.db"
        if read_only:
            self.db = sqlite.open_read_only(self.path)
        elif not upgrade:
            self.db = sqlite.open_existing(self.path)
        else:
            for folder in (self.data_dir, self.clips_dir, self.tmp_dir):
                folder.mkdir(parents=True, exist_ok=True)
            self.db = sqlite.open_database(self.path)
            # A purged clip's wrapped data key is overwritten, not only unlinked from the b-tree.
            self.db.execute("PRAGMA secure_delete = ON")
        new = False
        try:
            if upgrade and not read_only:
                new = sqlite.check_version(self.db, MIGRATIONS) == 0
                sqlite.migrate(self.db, MIGRATIONS)
            elif (version := sqlite.check_version(self.db, MIGRATIONS)) < len(MIGRATIONS):
                raise FleetError(
                    f"station database {self.path} is at schema v{version}, this program reads "
                    f"v{len(MIGRATIONS)}; `fleet station run` upgrades it once it can be written"
                )
        except BaseException:
            self.db.close()
            raise
        self.writer = sqlite.Writer(self.db)
        self.outbox = Outbox(self.writer)
        if new:  # a replaced station's first database goes on after its events central holds
            self.outbox.mark_rejoining()
        self.updates = Updates(self.writer, self.outbox)
        self.mirror = Mirror(self.writer)
        self.checkouts = Checkouts(self.writer)
        self.queue = ClipQueue(self.writer, self.outbox, self.checkouts)

    @classmethod
    def for_reading(cls, data_dir: str | Path) -> StationStore:
        """The store as it is, for a command that only reads (``fleet station status``, ``doctor``).
        It never migrates the database (a newer program's status must not upgrade it under the
        running station) nor creates anything; it is opened for writing only so that the write
        probe can say whether the running station could write, and read-only when it cannot be."""
        try:
            return cls(data_dir, upgrade=False)
        except (sqlite3.Error, OSError):
            return cls(data_dir, read_only=True)

    @classmethod
    def for_writing(cls, data_dir: str | Path, keys: Keyring | None = None) -> StationStore:
        """The store for a process or command that writes. A database that can never be written as
        it is (a read-only file or file system) is one clear error here, not a failure at each
        write; a full disk or failing I/O is not: it may pass (purging verified copies makes
        room), and the running station says so once a minute until it does."""
        path = Path(data_dir) / "station.db"
        try:
            store = cls(data_dir, keys=keys)
        except (sqlite3.Error, OSError) as exc:
            raise FleetError(f"station database cannot be written: {sqlite.unwritable_reason(path, exc)}") from None
        try:
            store.probe_write()
        except sqlite3.Error as exc:
            if sqlite.is_read_only(exc):
                store.close()
                raise FleetError(f"station database cannot be written: {sqlite.unwritable_reason(path, exc)}") from None
        return store

    def close(self) -> None:
        """Close once no thread is inside a read or write (closing under a running query crashes SQLite)."""
        self.writer.close()

    def write_problem(self) -> str | None:
        """Why the database cannot take a write now, or None."""
        try:
            self.probe_write()
        except sqlite3.Error as exc:
            return f"station database cannot be written: {sqlite.unwritable_reason(self.path, exc)}"
        return None

    def probe_write(self) -> None:
        """Raise what a write would meet now; the probe's write is rolled back.

        Another process holding the write lock (the running station) proves the file can be
        written, so the probe waits for it only briefly, never the 30 s busy timeout."""
        try:
            with self.writer.write(wait_s=PROBE_WAIT_S) as db:
                meta.put(db, "write_probe", to_iso(utc_now()))
                raise _RolledBack
        except _RolledBack:
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):  # busy with another writer: it can be written
                raise

    def central_tls_problem(self) -> str | None:
        """Why the station last refused central's certificate, while it still does (``station.sync.link``)."""
        with self.writer.read() as db:
            return meta.get(db, CENTRAL_TLS_PROBLEM)

    def set_central_tls_problem(self, problem: str | None) -> None:
        with self.writer.write() as db:
            if problem is None:
                db.execute("DELETE FROM meta WHERE key = ?", [CENTRAL_TLS_PROBLEM])
            else:
                meta.put(db, CENTRAL_TLS_PROBLEM, problem)

    def local_path(self, relative: str) -> Path:
        return self.data_dir / relative
