"""Central's final state for the checker, read through central's own database layer.

The same reads on SQLite (``central.db`` under the data folder) and on PostgreSQL (a cluster
of replicas sharing one database): ``CentralStore`` opens whichever the cluster runs on, and
every query below is written once, as central's own are. Reads take no lock, so they may
run while central serves.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from central.core.store import CentralStore
from central.evidence import audit
from tests.faults.checker import CentralEvent


@dataclass(frozen=True)
class StationRow:
    station_id: str
    borough: str
    acked_seq: int
    applied_seq: int
    clock_skew_s: float | None


@dataclass(frozen=True)
class CentralState:
    events: list[CentralEvent]
    stations: dict[str, StationRow]
    readings: Counter[str]
    """Battery readings per camera serial (one a docking applied)."""
    audit: audit.ChainReport

    def behind(self) -> dict[str, tuple[int, int]]:
        """Stations whose acknowledged events are not all applied: (applied_seq, acked_seq)."""
        return {
            s.station_id: (s.applied_seq, s.acked_seq) for s in self.stations.values() if s.applied_seq < s.acked_seq
        }


def open_store(data_dir: Path, database_url: str | None) -> CentralStore:
    """Central's database as central opens it: SQLite under ``data_dir``, or PostgreSQL at ``database_url``."""
    return CentralStore(data_dir, database_url, readers=1)


def read_state(data_dir: Path, database_url: str | None) -> CentralState:
    store = open_store(data_dir, database_url)
    try:
        with store.writer.read() as db:
            events = [
                CentralEvent(r[0], r[1], r[2], json.loads(bytes(r[3])))
                for r in db.execute("SELECT station_id, seq, kind, body FROM events").fetchall()
            ]
            stations = {
                r[0]: StationRow(*r)
                for r in db.execute(
                    "SELECT station_id, borough, acked_seq, applied_seq, clock_skew_s FROM stations"
                ).fetchall()
            }
            readings = Counter(
                dict(db.execute("SELECT serial, COUNT(*) FROM battery_readings GROUP BY serial").fetchall())
            )
        return CentralState(events, stations, readings, audit.verify_database(store.writer))
    finally:
        store.close()


def bookkeeping(data_dir: Path, database_url: str | None) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
    """Stations whose acknowledged events are not all applied ((applied_seq, acked_seq) each), and
    per borough the last cursor of the changes feed its stations must mirror."""
    store = open_store(data_dir, database_url)
    try:
        with store.writer.read() as db:
            rows = db.execute("SELECT station_id, applied_seq, acked_seq FROM stations WHERE applied_seq < acked_seq")
            behind = {r[0]: (r[1], r[2]) for r in rows.fetchall()}
            last = dict(db.execute("SELECT borough, MAX(cursor) FROM changes GROUP BY borough").fetchall())
            boroughs = [r[0] for r in db.execute("SELECT DISTINCT borough FROM stations").fetchall()]
    finally:
        store.close()
    everyone = last.get(None, 0)
    return behind, {b: max(last.get(b, 0), everyone) for b in boroughs}
