"""Central's tests run on both databases: SQLite, and PostgreSQL started by the tests themselves.

``tests/central/conftest.py`` parametrises every central test over ``BACKENDS`` (a test that
is about SQLite itself is marked ``sqlite_only``). On PostgreSQL each of the worker's tests
gets databases of its own, copied from a template migrated once per worker (a copy takes
~30 ms), and named after the test's data folder: two stores on one folder share a database,
as two processes on one SQLite file do; two folders are two databases.

``FLEET_TEST_DATABASES=sqlite`` (the quick lane) runs SQLite only.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import psycopg

from simulation.postgres import LocalPostgres

BACKENDS = tuple(os.environ.get("FLEET_TEST_DATABASES", "sqlite,postgresql").split(","))
TEMPLATE = "fleet_template"


class Backend:
    """The database the running test's central uses: ``url_for(data_dir)`` is None on SQLite."""

    def __init__(self) -> None:
        self.name = "sqlite"
        self._server: LocalPostgres | None = None
        self._made: set[str] = set()

    @property
    def postgres(self) -> bool:
        return self.name == "postgresql"

    def server(self) -> LocalPostgres:
        """This worker's PostgreSQL (started at first use, with the schema's template)."""
        if self._server is None:
            root = Path(tempfile.mkdtemp(prefix="fleet-test-pg-", dir="/tmp"))
            self._server = LocalPostgres(root, durable=False).start()
            from central.core.store import CentralStore

            self._admin(f"CREATE DATABASE {TEMPLATE}")
            CentralStore(root / "template", self._server.url(TEMPLATE)).close()
        return self._server

    def _admin(self, sql: str) -> None:
        assert self._server is not None
        with psycopg.connect(self._server.url(), autocommit=True) as conn:
            conn.execute(sql.encode())  # names made here, never from input

    def url_for(self, data_dir: str | os.PathLike[str]) -> str | None:
        """The database of central's ``data_dir`` in this test (made from the template at first use)."""
        if not self.postgres:
            return None
        server = self.server()
        name = "t_" + hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:24]
        if name not in self._made:
            self._admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
            self._made.add(name)
        return server.url(name)

    def use(self, name: str) -> None:
        self.name = name

    def finish_test(self) -> None:
        """Drop the test's databases (its central processes have stopped) and go back to SQLite."""
        for name in self._made:
            self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self._made.clear()
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
