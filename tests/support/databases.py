"""Central's tests run on both databases: SQLite, and PostgreSQL started by the tests themselves.

``tests/central/conftest.py`` parametrises every central test over ``BACKENDS`` (a test that
is about SQLite itself is marked ``sqlite_only``). On PostgreSQL each test gets databases of
its own, one per central data folder: two stores on one folder share a database, as two
processes on one SQLite file do; two folders are two databases. A database is copied from a
template migrated once per worker, and after its test emptied (every row deleted, every
identity restarted) for the next: ten times quicker than another copy on a busy machine.

``FLEET_TEST_DATABASES=sqlite`` (the quick lane) runs SQLite only.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psycopg

from central.core.store import MIGRATIONS, CentralStore
from simulation.postgres import LocalPostgres

BACKENDS = tuple(os.environ.get("FLEET_TEST_DATABASES", "sqlite,postgresql").split(","))
TEMPLATE = "fleet_template"


class Backend:
    """The database the running test's central uses: ``url_for(data_dir)`` is None on SQLite."""

    def __init__(self) -> None:
        self.name = "sqlite"
        self._server: LocalPostgres | None = None
        self._in_use: dict[str, str] = {}
        """This test's databases, by the data folder they stand for."""
        self._free: list[str] = []
        self._count = 0
        self._emptying: bytes | None = None

    @property
    def postgres(self) -> bool:
        return self.name == "postgresql"

    def server(self) -> LocalPostgres:
        """This worker's PostgreSQL (started at first use, with the schema's template)."""
        if self._server is None:
            root = Path(tempfile.mkdtemp(prefix="fleet-test-pg-", dir="/tmp"))
            self._server = LocalPostgres(root, durable=False).start()
            self._admin(f"CREATE DATABASE {TEMPLATE}")
            CentralStore(root / "template", self._server.url(TEMPLATE)).close()
        return self._server

    def _admin(self, sql: str, database: str = "postgres") -> None:
        assert self._server is not None
        with psycopg.connect(self._server.url(database), autocommit=True) as conn:
            conn.execute(sql.encode())  # names made here, never from input

    def url_for(self, data_dir: str | os.PathLike[str]) -> str | None:
        """The database of central's ``data_dir`` in this test (a free one, or a new copy of the template)."""
        if not self.postgres:
            return None
        server = self.server()
        folder = str(Path(data_dir).resolve())
        if folder not in self._in_use:
            if self._free:
                self._in_use[folder] = self._free.pop()
            else:
                self._count += 1
                self._in_use[folder] = name = f"t_{self._count}"
                self._admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return server.url(self._in_use[folder])

    def release(self, data_dir: str | os.PathLike[str]) -> None:
        """Done with this folder's database before the test ends (a property test's example):
        emptied now and handed to the next folder, instead of a new copy for each example."""
        name = self._in_use.pop(str(Path(data_dir).resolve()), None)
        if name is not None:
            if self._empty(name):
                self._free.append(name)
            else:
                self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def _empty(self, name: str) -> bool:
        """Delete every row and restart every identity; False when the test left a schema it changed."""
        assert self._server is not None
        self._admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
        with psycopg.connect(self._server.url(name), autocommit=True) as conn:
            if self._emptying is None:
                tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
                sequences = [
                    r[0] for r in conn.execute("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
                ]
                self._emptying = (
                    "BEGIN;"
                    + "".join(f"DELETE FROM {t};" for t in tables if t != "schema_version")
                    + "".join(f"ALTER SEQUENCE {s} RESTART;" for s in sequences)
                    + "COMMIT;"
                ).encode()
            try:
                conn.execute(self._emptying)
                version = conn.execute("SELECT version FROM schema_version").fetchone()
            except psycopg.Error:
                return False
        return version == (len(MIGRATIONS),)

    def use(self, name: str) -> None:
        self.name = name

    def finish_test(self) -> None:
        """Empty the test's databases for the next (its central processes have stopped); back to SQLite."""
        for name in self._in_use.values():
            if self._empty(name):
                self._free.append(name)
            else:
                self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self._in_use.clear()
        self.name = "sqlite"

    def stop(self) -> None:
        if self._server is not None:
            self._server.remove()
            self._server = None


BACKEND = Backend()
"""This worker's: one test runs at a time in a worker."""


def database_section(data_dir: str | os.PathLike[str]) -> str:
    """The ``[database]`` table for a central config file written by a test ("" on SQLite)."""
    url = BACKEND.url_for(data_dir)
    return f'\n[database]\nurl = "{url}"\n' if url else ""
