"""Fleet queries at Met scale: 20,000 cameras, 30,000 officers, 1,000,000 battery readings.

Target: p95 < 100 ms for the device list filtered by borough and by battery flag, and for
one device's detail (registry entry, assignments, lifecycle history, battery history up to
365 points, audit trail). Central runs as a real process (``fleet central serve``) over a
database built here: ``CentralStore`` creates it (the real schema and migrations), then the
tables are filled with plain ``executemany`` in a few big transactions and ``ANALYZE``d.
The queries go through HTTP with the admin token, one at a time, the four kinds interleaved;
latencies are measured at the client (request sent to body read).
"""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import httpx
import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.common import machine, save
from bench.events import LONDON_BOROUGHS, Central
from bench.upload import ADMIN
from fleet.clock import to_iso, utc_now
from fleet.protocol import Battery, DeviceInfo

STATIONS_PER_BOROUGH = 3
CHUNK = 50_000
ROLES = ["response", "response", "neighbourhood", "neighbourhood", "armed", "other"]
LIFECYCLES = [("in_service", 0.90), ("issued", 0.04), ("allocated", 0.03), ("in_stock", 0.02), ("lost", 0.01)]


def _slug(borough: str) -> str:
    return borough.lower().replace(" ", "-")


def _stations(borough: str) -> list[str]:
    return [f"{_slug(borough)}-{k}" for k in range(STATIONS_PER_BOROUGH)]


def _chunks(rows: Iterable[tuple], size: int = CHUNK) -> Iterator[list[tuple]]:
    chunk: list[tuple] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- building the database ------------------------------------------------------------------


class _Device(msgspec.Struct):
    serial: str
    borough: str | None
    station: str | None
    lifecycle: str
    soh: float
    cycles: int


def _devices(rng: random.Random, count: int, now: datetime) -> tuple[list[_Device], list[tuple]]:
    """The registry rows, with battery state and flags as the projection and health job leave them."""
    encode = msgspec.json.encode
    states, weights = zip(*LIFECYCLES, strict=True)
    devices, rows = [], []
    for n in range(count):
        serial = f"BWV-{n:06d}"
        state = rng.choices(states, weights)[0]
        borough = None if state == "in_stock" else LONDON_BOROUGHS[n % len(LONDON_BOROUGHS)]
        station = rng.choice(_stations(borough)) if borough else None
        short = rng.random() < 0.05  # a full charge no longer lasts a 10 h shift: SoH < 83.3 %
        soh = round(rng.uniform(70, 83) if short else rng.uniform(84, 100), 2)
        hot = rng.random() < 0.01
        temp = round(rng.uniform(46, 55) if hot else rng.uniform(18, 40), 1)
        cycles, level = rng.randint(50, 900), round(rng.uniform(5, 100), 1)
        recent = rng.random() < 0.99  # ~1 % have not docked for over a week: stale
        docked = now - (timedelta(hours=rng.uniform(0, 72)) if recent else timedelta(days=rng.uniform(8, 60)))
        docked_at = to_iso(docked) if state != "in_stock" else None
        stale = int(state in ("issued", "in_service") and docked < now - timedelta(days=7))
        replace_by = to_iso(now + timedelta(days=rng.uniform(10, 80) if short else rng.uniform(120, 1500)))
        telemetry = (
            encode(
                DeviceInfo(
                    serial=serial,
                    model="Axon Body 3",
                    firmware="1.12.4",
                    docked_at=docked,
                    battery=Battery(
                        level_pct=level,
                        voltage_mv=rng.randint(3500, 4200),
                        temperature_c=temp,
                        cycle_count=cycles,
                        full_charge_mah=int(3000 * soh / 100),
                        design_mah=3000,
                    ),
                    storage_used_bytes=rng.randint(0, 64 << 30),
                )
            ).decode()
            if docked_at
            else None
        )
        devices.append(_Device(serial, borough, station, state, soh, cycles))
        rows.append(
            (
                serial,
                "Axon Body 3",
                "1.12.4",
                state,
                borough,
                station,
                "bench",
                to_iso(now - timedelta(days=400)),
                docked_at,
                station if docked_at else None,
                docked_at,
                docked_at,
                telemetry,
                soh,
                cycles,
                temp,
                level,
                replace_by,
                int(short),
                int(hot),
                int(rng.random() < 0.005),
                stale,
            )
        )
    return devices, rows


def _readings(rng: random.Random, devices: list[_Device], count: int, now: datetime) -> Iterator[tuple]:
    """``count`` readings spread evenly over the cameras and the last year, yielded in time order
    (as dockings arrive), so one camera's readings are scattered through the table."""
    per, extra = divmod(count, len(devices))
    slots = per + (1 if extra else 0)
    year = timedelta(days=365)
    for k in range(slots):
        for i, d in enumerate(devices):
            if k == per and i >= extra:
                break
            at = now - year + year * (k + rng.random()) / slots
            age = (slots - k) / slots  # a year ago the pack was healthier and younger
            yield (
                d.serial,
                to_iso(at),
                d.station,
                round(min(100.0, d.soh + 4 * age), 2),
                max(0, d.cycles - int(300 * age)),
                round(rng.uniform(18, 40), 1),
                round(rng.uniform(5, 100), 1),
                int(3000 * min(100.0, d.soh + 4 * age) / 100),
                3000,
            )


def _officers(rng: random.Random, count: int, now: datetime) -> Iterator[tuple]:
    for n in range(count):
        borough = rng.choice(LONDON_BOROUGHS)
        role = rng.choice(ROLES)
        yield (
            f"MP{n:06d}",
            borough,
            f"{borough} {role} {rng.randint(1, 12)}",
            role,
            f"Officer {n:06d}",
            int(rng.random() > 0.02),
            to_iso(now - timedelta(days=rng.uniform(0, 365))),
        )


def _assignments(rng: random.Random, devices: list[_Device], officers: int, count: int, now: datetime) -> list[tuple]:
    """Open assignments: one per camera held, one camera per officer, personal or pool."""
    held = [d for d in devices if d.lifecycle in ("issued", "in_service")]
    chosen = rng.sample(held, min(count, len(held), officers))
    holders = rng.sample(range(officers), len(chosen))
    rows = []
    for d, officer in zip(chosen, holders, strict=True):
        personal = rng.random() < 0.4
        started = now - (timedelta(days=rng.uniform(1, 300)) if personal else timedelta(hours=rng.uniform(0, 10)))
        rows.append(
            (
                d.serial,
                f"MP{officer:06d}",
                "personal" if personal else "pool",
                to_iso(started),
                None if personal else d.station,
                "bench" if personal else f"desk@{d.station}",
            )
        )
    return rows


def build(data_dir: Path, devices: int, officers: int, readings: int, assignments: int, console: Console) -> dict:
    """Create central's database with the real schema, fill it in big transactions, ANALYZE."""
    from central.core.database import SqliteDatabase
    from central.core.store import CentralStore

    rng = random.Random(7)
    now = utc_now()
    timings: dict[str, float] = {}
    store = CentralStore(data_dir)
    conn = cast(SqliteDatabase, store.writer).db  # filled on SQLite directly, in big transactions
    try:
        with Progress(
            TextColumn("{task.description:<18}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:

            def fill(table: str, sql: str, rows: Iterable[tuple], total: int) -> None:
                task = progress.add_task(table, total=total)
                start = time.perf_counter()
                for chunk in _chunks(rows):
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany(sql, chunk)
                    conn.execute("COMMIT")
                    progress.advance(task, len(chunk))
                timings[table] = time.perf_counter() - start

            fleet, device_rows = _devices(rng, devices, now)
            fill(
                "devices",
                """INSERT INTO devices (serial, model, firmware, lifecycle, borough, home_station,
                     registered_by, registered_at, last_docked_at, last_station, last_upload_at, last_clip_at,
                     telemetry, battery_soh, battery_cycles, battery_temp_c, battery_level, replace_by,
                     flag_short_shift, flag_over_temp, flag_capacity_drop, flag_stale, battery_dirty)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)""",
                device_rows,
                devices,
            )
            fill(
                "device_history",
                "INSERT INTO device_history (serial, at, actor, place, from_state, to_state, reason) "
                "VALUES (?, ?, 'bench', NULL, ?, ?, ?)",
                ((d.serial, to_iso(now - timedelta(days=400)), None, d.lifecycle, "registered") for d in fleet),
                devices,
            )
            fill(
                "officers",
                "INSERT INTO officers (officer_id, borough, team, role, name, active, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                _officers(rng, officers, now),
                officers,
            )
            held = _assignments(rng, fleet, officers, assignments, now)
            fill(
                "assignments",
                "INSERT INTO assignments (device_serial, officer_id, mode, started_at, station_id, started_by) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                held,
                len(held),
            )
            fill(
                "battery_readings",
                "INSERT INTO battery_readings (serial, at, station_id, soh_pct, cycle_count, temperature_c, "
                "level_pct, full_mah, design_mah) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _readings(rng, fleet, readings, now),
                readings,
            )
            task = progress.add_task("ANALYZE", total=1)
            start = time.perf_counter()
            conn.execute("ANALYZE")
            timings["analyze"] = time.perf_counter() - start
            progress.advance(task)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        counts = {
            t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("devices", "officers", "battery_readings", "assignments", "device_history")
        }
    finally:
        store.close()
    return {
        "seconds": timings,
        "rows": counts,
        "serials": [d.serial for d in fleet],
        "db_bytes": (data_dir / "central.db").stat().st_size,
    }


# -- querying -------------------------------------------------------------------------------


def _percentiles(ms: list[float]) -> dict:
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return {
        "p50_ms": statistics.median(ms),
        "p95_ms": cuts[94],
        "max_ms": max(ms),
        "mean_ms": statistics.fmean(ms),
        "requests": len(ms),
    }


def measure(url: str, serials: list[str], requests: int, warmup: int = 20) -> dict:
    rng = random.Random(11)
    queries: dict[str, Callable[[], tuple[str, dict[str, str | int] | None]]] = {
        "list_by_borough": lambda: ("/api/v1/devices/", {"borough": rng.choice(LONDON_BOROUGHS), "limit": 100}),
        "list_short_shift": lambda: ("/api/v1/devices/", {"flag": "short_shift", "limit": 100}),
        "list_over_temp_in_borough": lambda: (
            "/api/v1/devices/",
            {"flag": "over_temp", "borough": rng.choice(LONDON_BOROUGHS), "limit": 100},
        ),
        "device_detail": lambda: (f"/api/v1/devices/{rng.choice(serials)}", None),
    }
    ms: dict[str, list[float]] = {name: [] for name in queries}
    sizes: dict[str, list[int]] = {name: [] for name in queries}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60) as client:
        for i in range(warmup + requests):
            for name, make in queries.items():
                path, params = make()
                start = time.perf_counter()
                r = client.get(path, params=params)
                elapsed = (time.perf_counter() - start) * 1000
                if r.status_code != 200:
                    raise RuntimeError(f"GET {path} {params}: {r.status_code} {r.text[:300]}")
                if i >= warmup:
                    ms[name].append(elapsed)
                    body = r.json()
                    sizes[name].append(len(body["items"]) if "items" in body else len(body["battery"]))
    return {name: {**_percentiles(values), "mean_items": statistics.fmean(sizes[name])} for name, values in ms.items()}


def run(
    devices: int = 20_000,
    officers: int = 30_000,
    readings: int = 1_000_000,
    requests: int = 300,
    assignments: int | None = None,
) -> dict:
    console = Console(stderr=True)
    root = Path(tempfile.mkdtemp(prefix="bench-fleet-", dir=Path.cwd()))
    try:
        data_dir = root / "data"
        start = time.perf_counter()
        built = build(
            data_dir, devices, officers, readings, assignments if assignments is not None else devices * 3 // 4, console
        )
        build_s = time.perf_counter() - start
        central = Central(root, [], data_dir=data_dir)
        try:
            console.print(f"querying: {requests} × 4 requests")
            latencies = measure(central.url, built["serials"], requests)
        finally:
            central.stop()
        return {
            "machine": machine(),
            "devices": devices,
            "officers": officers,
            "readings": readings,
            "rows": built["rows"],
            "db_MiB": built["db_bytes"] / (1 << 20),
            "build_s": build_s,
            "build_seconds": built["seconds"],
            "queries": latencies,
            "target_p95_ms": 100,
            "directory": str(root.parent),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    import json

    result = run()
    save("fleet", result)
    print(json.dumps(result, indent=2))
