"""Dashboard page render times at Met scale: 20,000 devices, 1,000,000 clips.

The central database: 20,000 cameras across 32 boroughs with 20 battery readings each,
20,000 officers, 1,000,000 verified clips over a year with their attributions and one
audit record each (the hash chain), 10,000 holds, and the reference roll-out. Each page is
requested ``rounds`` times in process (Litestar's test client over ASGI: central's own time
with no network, an over-estimate of its server time by the client's overhead); the p95 and
median per page are reported, and the first request's time (``first_ms``: for the public
figures, the month computed before it is kept). Target: p95 < 150 ms, on SQLite and on PostgreSQL (``engines``).
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench import retention
from bench.common import machine
from bench.databases import ENGINES, databases, settings_section

ROOT = Path(__file__).resolve().parents[1]
BOROUGHS = [f"Borough {i:02d}" for i in range(32)]


def _settings(root: Path, url: str | None = None):
    from fleet.config import CentralSettings, settings_from_dict

    return settings_from_dict(
        {
            "data_dir": str(root / "central"),
            "admin_token": "bench-admin-token",
            "stations": {"camden": {"borough": "Camden", "token": "bench-station-token"}},
            "rollout": {
                "boroughs": str(ROOT / "config" / "boroughs.toml"),
                "scenario": str(ROOT / "config" / "rollout.toml"),
            },
            "retention": {"rules": str(ROOT / "config" / "retention.toml")},
            **settings_section(url),
        },
        CentralSettings,
    )


def build(root: Path, clips: int, devices: int, url: str | None = None) -> None:
    """retention.build's clips and holds, plus devices with battery histories and the audit chain."""
    from central.core.services import build_services
    from central.core.store import CentralStore
    from central.evidence import audit
    from fleet.clock import to_iso

    retention.build(root, clips, 10_000, url)
    settings = _settings(root, url)
    store = CentralStore.open(settings)
    service = build_services(settings, store).retention
    service.adopt_configured()
    service.assess()  # categories (5 % evidential, 2 % stop and search) and ends of retention, as in service
    rng = random.Random(11)
    now = retention.NOW
    with store.writer.write() as db:
        db.executemany(
            "INSERT INTO devices (serial, model, lifecycle, borough, registered_by, registered_at, last_docked_at, "
            "last_station, battery_soh, battery_cycles, battery_temp_c, flag_over_temp, flag_short_shift, replace_by) "
            "VALUES (?, 'Axon Body 2', ?, ?, 'bench', ?, ?, 'camden', ?, ?, 30, ?, ?, ?)",
            [
                (
                    f"BWV-{i:06d}",
                    ("in_service", "issued", "allocated", "repair")[i % 4],
                    BOROUGHS[i % 32],
                    to_iso(now - timedelta(days=400)),
                    to_iso(now - timedelta(hours=rng.randrange(72))),
                    70 + rng.random() * 30,
                    rng.randrange(900),
                    int(i % 400 == 0),
                    int(i % 150 == 0),
                    to_iso(now + timedelta(days=rng.randrange(10, 400))),
                )
                for i in range(devices)
            ],
        )
        db.executemany(
            "INSERT INTO battery_readings (serial, at, station_id, soh_pct, cycle_count, temperature_c, level_pct, "
            "full_mah, design_mah) VALUES (?, ?, 'camden', ?, ?, 30, 40, ?, 3000)",
            [
                (f"BWV-{i:06d}", to_iso(now - timedelta(days=3 * k)), 100 - k * 0.5, 100 + k, 3000 - k * 15)
                for i in range(devices)
                for k in range(20)
            ],
        )
    for start in range(0, clips, 100_000):
        with store.writer.write() as db:
            audit.record_many(
                db,
                [
                    dict(
                        actor="station:camden",
                        place="camden",
                        action="ingest",
                        object_type="clip",
                        object_id=f"{i:032x}",
                        at=now,
                        detail="copied from camera at the dock",
                    )
                    for i in range(start, min(clips, start + 100_000))
                ],
            )
    with store.writer.read() as db:  # outside a transaction, as VACUUM must be
        if db.dialect.postgres:
            # As autovacuum would have by now, a year into the force: statistics, and the
            # visibility map that lets an index answer alone (the category search).
            db.execute("VACUUM (ANALYZE)")
    store.close()


def measure(root: Path, rounds: int, clips: int, devices: int, url: str | None = None) -> dict[str, dict[str, float]]:
    from litestar.testing import TestClient

    from central.core.app import create_app

    headers = {"Authorization": "Bearer bench-admin-token"}
    serial, clip = f"BWV-{devices // 2:06d}", f"{clips // 2:032x}"
    pages = [
        "/",
        "/stations",
        "/devices",
        "/devices?flag=over_temp",
        f"/devices?q={serial[:-1]}",
        "/devices?borough=Borough%2007&lifecycle=repair",
        f"/devices/{serial}",
        "/officers",
        "/officers?q=PC0004",
        "/clips",
        "/clips?officer=PC00042",
        f"/clips?device={serial}",
        "/clips?state=held",
        "/clips?state=review",
        "/clips?category=stop_and_search",
        "/clips?category=use_of_force",
        f"/clips/{clip}",
        "/audit",
        f"/audit?object_type=clip&object_id={clip}",
        "/audit?action=ingest",
        "/rollout",
        "/rollout?borough=Camden",
        # the public figures (no login): the first request of each computes the month (``first_ms``)
        "/public/figures",
        "/public/figures.json?month=2026-10",
        "/public/figures.csv?month=2026-06",
    ]
    results = {}
    with TestClient(create_app(_settings(root, url)), base_url="https://bench.local") as client:
        for path in pages:
            start = time.perf_counter()
            assert client.get(path, headers=headers).status_code == 200, path  # warm, and a real page
            first = (time.perf_counter() - start) * 1000
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                response = client.get(path, headers=headers)
                times.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200, (path, response.status_code)
            times.sort()
            results[path] = {
                "median_ms": round(statistics.median(times), 1),
                "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
                "first_ms": round(first, 1),
            }
    return results


def run(clips: int = 1_000_000, devices: int = 20_000, rounds: int = 40, engines: tuple[str, ...] = ENGINES) -> dict:
    root = Path(tempfile.mkdtemp(prefix="bench-pages-", dir=Path.cwd()))
    results: dict[str, dict] = {}
    try:
        with databases(root) as found:
            for engine in engines:
                url = found.url(engine)
                start = time.perf_counter()
                build(root / engine, clips, devices, url)
                built = time.perf_counter() - start
                pages = measure(root / engine, rounds, clips, devices, url)
                worst = max(pages.items(), key=lambda kv: kv[1]["p95_ms"])
                results[engine] = {
                    "build_s": round(built, 1),
                    "pages": pages,
                    "worst_p95": {"page": worst[0], **worst[1]},
                }
        return {
            "machine": machine(),
            "clips": clips,
            "devices": devices,
            "rounds": rounds,
            "target_p95_ms": 150,
            "engines": results,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(run(clips=20_000, devices=2_000, rounds=5), indent=2))
