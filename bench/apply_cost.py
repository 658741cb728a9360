"""What applying one event costs: CPU of central's process and of PostgreSQL's backend, and WAL.

    .venv/bin/python -m bench.apply_cost URL EVENTS BATCH     # PostgreSQL (a database made for the run)
    .venv/bin/python -m bench.apply_cost sqlite EVENTS BATCH  # SQLite, in a temporary folder

``EVENTS`` events from 8 stations (``bench.events.make_batches``) are acknowledged through
``EventLog.ingest`` (untimed), then applied by ``EventLog.apply_pending(limit=BATCH)`` until
none is left. Prints one JSON line: events, wall seconds, the client's CPU µs an event (this
process), the server's (every process of the PostgreSQL server, from ``/proc/<pid>/stat``: a server
of the run's own; and the writing connection's backend alone, ``writer_us``) and WAL bytes an event
(``pg_current_wal_lsn``), PostgreSQL only. CPU time is less noisy than wall time
on a shared host, so it compares code before and after a change: run this module from each
tree (``PYTHONPATH=TREE``, from a folder that is neither) against copies of one server.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.events import make_batches, make_stations
from bench.upload import ADMIN

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """``/proc/<pid>/stat``'s fields after the command's name (field 3, the state, first)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _backend_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a PostgreSQL backend (same machine)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICKS


def _server_cpu_s(backend: int) -> float:
    """CPU seconds of the whole PostgreSQL server of ``backend``: the postmaster, every process it runs
    now (backends, the WAL writer, the checkpointer, autovacuum) and those it ran that ended
    (their time is the postmaster's children's). A server of the benchmark's own, doing nothing else."""
    postmaster = int(_stat(backend)[1])
    fields = _stat(postmaster)
    total = sum(int(f) for f in fields[11:15])
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                child = _stat(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(child[1]) == postmaster:
                total += int(child[11]) + int(child[12])
    return total / TICKS


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> dict:
    from central.core.services import build_services
    from central.core.store import CentralStore
    from fleet.config import CentralSettings, settings_from_dict

    where, total, batch = argv[0], int(argv[1]), int(argv[2])
    url = None if where == "sqlite" else where
    fleet = make_stations(8)
    plan = make_batches(fleet, total, 1000)
    root = Path(tempfile.mkdtemp(prefix="apply-cost-"))
    settings = settings_from_dict(
        {
            "data_dir": str(root / "data"),
            "admin_token": ADMIN,
            "stations": {s.station_id: {"borough": s.borough, "token": s.token} for s in fleet},
            **({"database": {"url": url}} if url else {}),
        },
        CentralSettings,
    )
    store = CentralStore.open(settings)
    try:
        events = build_services(settings, store).events
        for batches in plan:
            for b in batches:
                events.ingest(b.station.station_id, b.station.borough, b.body)
        with store.writer.write() as db:
            backend = db.execute("SELECT pg_backend_pid(), pg_current_wal_lsn()").fetchone() if url else None
        writer_cpu = _backend_cpu_s(backend[0]) if backend else 0.0
        server_cpu = _server_cpu_s(backend[0]) if backend else 0.0
        wall, cpu = time.perf_counter(), _self_cpu_s()
        applied = 0
        while count := events.apply_pending(limit=batch):
            applied += count
        wall, cpu = time.perf_counter() - wall, _self_cpu_s() - cpu
        result = {"events": applied, "batch": batch, "wall_s": round(wall, 3), "events_per_s": round(applied / wall)}
        result["client_us"] = round(cpu / applied * 1e6, 2)
        if backend:
            result["writer_us"] = round((_backend_cpu_s(backend[0]) - writer_cpu) / applied * 1e6, 2)
            result["server_us"] = round((_server_cpu_s(backend[0]) - server_cpu) / applied * 1e6, 2)
            with store.writer.write() as db:
                wal = db.execute("SELECT pg_current_wal_lsn() - CAST(? AS pg_lsn)", [backend[1]]).fetchone()[0]
            result["wal_bytes"] = round(float(wal) / applied)
        return result
    finally:
        store.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
