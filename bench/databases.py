"""Central's two databases for the benchmarks: SQLite in the data folder, or a PostgreSQL server
started for the run (durable: fsync and synchronous commits on, as in a deployment)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from simulation.postgres import LocalPostgres

ENGINES = ("sqlite", "postgresql")
SERVER = {
    "shared_buffers": "'2GB'",
    "effective_cache_size": "'8GB'",
    "random_page_cost": "1.1",
    "max_wal_size": "'8GB'",
    "checkpoint_timeout": "'15min'",
}
"""The server as docs/deployment.md ("Sizing the server") recommends for a force's central: the
retention job rewrites millions of rows and the dashboard reads a year of clips."""


class Databases:
    """Hands out a fresh database per measurement: None (SQLite under the data folder) or a URL."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._server: LocalPostgres | None = None
        self._count = 0

    def url(self, engine: str) -> str | None:
        if engine == "sqlite":
            return None
        if engine != "postgresql":
            raise ValueError(f"unknown database engine {engine!r} (one of {', '.join(ENGINES)})")
        if self._server is None:
            self._server = LocalPostgres(self.root / "postgres", settings=SERVER).start()
        self._count += 1
        name = f"bench_{self._count}"
        with psycopg.connect(self._server.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}".encode())
        return self._server.url(name)

    def close(self) -> None:
        if self._server is not None:
            self._server.remove()
            self._server = None


@contextmanager
def databases(root: Path) -> Iterator[Databases]:
    found = Databases(root)
    try:
        yield found
    finally:
        found.close()


def settings_section(url: str | None) -> dict:
    """The ``database`` table of central's settings for ``url`` (empty on SQLite)."""
    return {"database": {"url": url}} if url else {}
