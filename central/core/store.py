"""Central's one database (SQLite or PostgreSQL), its schema assembled from the packages that own its tables."""

from __future__ import annotations

from pathlib import Path

from central.access import schema as access_schema
from central.alerts import schema as alerts_schema
from central.core import migrations
from central.core import schema as core_schema
from central.core.database import Database, PostgresDatabase, SqliteDatabase, migrate_postgres
from central.events import schema as events_schema
from central.evidence import audit
from central.evidence import schema as evidence_schema
from central.firmware import schema as firmware_schema
from central.registry import schema as registry_schema
from central.rollout import schema as rollout_schema
from central.uploads import schema as uploads_schema
from fleet import sqlite
from fleet.config import CentralSettings

SCHEMAS = (
    core_schema,
    uploads_schema,
    evidence_schema,
    events_schema,
    registry_schema,
    rollout_schema,
    access_schema,
    firmware_schema,
    alerts_schema,
)
"""Each package's tables and schema steps (``central.core.migrations``)."""
MIGRATIONS = migrations.assemble(SCHEMAS)
"""One script per schema version, each package's share in its place."""
POSTGRES_MIGRATIONS = migrations.assemble(SCHEMAS, postgres=True)
"""The same, with the statements for PostgreSQL only (translated from SQLite's dialect as they run)."""


class CentralStore:
    """Central's one database: opened, migrated, shared by every package through one writer.

    Each package reads and writes its own tables (``central.<package>.schema``) through its
    services, given ``writer``."""

    writer: Database

    def __init__(self, data_dir: str | Path, url: str | None = None, *, readers: int = 8) -> None:
        """SQLite in ``data_dir/central.db``, or PostgreSQL at ``url`` (``[database] url``)."""
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.url = url
        if url is not None:
            postgres = PostgresDatabase(url, readers=readers)
            try:
                migrate_postgres(postgres, POSTGRES_MIGRATIONS)
            except BaseException:
                postgres.close()
                raise
            self.writer = postgres
        else:
            self.writer = self._sqlite(self.data_dir / "central.db")
        with self.writer.write() as db:
            audit.chain_unhashed(db)  # records from before the chain (schema v6): hashed once

    @classmethod
    def open(cls, settings: CentralSettings) -> CentralStore:
        """The database ``settings`` name: ``[database] url``, or SQLite under ``data_dir``."""
        return cls(settings.data_dir, settings.database.url, readers=settings.database.readers)

    @staticmethod
    def _sqlite(path: Path) -> SqliteDatabase:
        database = SqliteDatabase(path)
        sqlite.migrate(database.db, MIGRATIONS)
        # Event batches touch pages all over the database: a bigger cache and fewer automatic
        # checkpoints keep each commit to (mostly) one sequential WAL write.
        database.db.execute("PRAGMA cache_size = -65536")
        database.db.execute("PRAGMA wal_autocheckpoint = 10000")
        return database

    def close(self) -> None:
        """Close once no thread is inside a write (closing under a running query crashes SQLite)."""
        self.writer.close()

    def ping(self) -> bool:
        with self.writer.read() as db:
            return db.execute("SELECT 1").fetchone() == (1,)
