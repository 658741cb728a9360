"""The ``meta`` table: the station's few single values, each key kept by one owner.

``last_sync_ok_at`` (queue), ``outbox_acked_seq`` and ``outbox_rejoin_from`` (outbox), ``feed_cursor`` and
``station_policy`` (mirror), ``write_probe`` (the database's write probe, never committed),
``central_tls_problem`` (the store itself, for ``station.sync.link``), ``updates_version`` and
``updates_all_moved`` (updates).
Called with the connection of the owner's own read or write.
"""

from __future__ import annotations

import sqlite3


def get(db: sqlite3.Connection, key: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def put(db: sqlite3.Connection, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )
