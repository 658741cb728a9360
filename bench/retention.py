"""Retention job at scale: 2,000,000 clip records and 10,000 holds.

A central database with 2,000,000 verified clips recorded over the last year (5 % evidential,
2 % stop and search), attributed to 20,000 officers, and 10,000 active holds (6,000 on clips,
3,000 on an officer for a day, 1,000 on cases of 5 clips). Each measurement runs in a fresh
process so its peak RSS is its own: *assess* (categories and end of retention for every
clip), *run* (the daily job: soft-deletes every clip past retention that no hold protects,
each one audited in the hash chain), *purge run* (eight days later: the blobs of those clips
are deleted and the purges audited). Target: < 60 s, memory bounded (it works in batches).

On each database (``engines``): SQLite in the data folder, and PostgreSQL (``bench.databases``),
the same rows and steps side by side.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import machine
from bench.databases import ENGINES, databases, settings_section

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def _settings(root: Path, url: str | None = None):
    from fleet.config import CentralSettings, settings_from_dict

    return settings_from_dict(
        {
            "data_dir": str(root / "central"),
            "admin_token": "bench-admin-token",
            "stations": {"camden": {"borough": "Camden", "token": "bench-station-token"}},
            **settings_section(url),
        },
        CentralSettings,
    )


def build(root: Path, clips: int, holds: int, url: str | None = None) -> None:
    from central.core.services import build_services
    from central.core.store import CentralStore
    from fleet.clock import to_iso

    settings = _settings(root, url)
    store = CentralStore.open(settings)
    build_services(settings, store).retention.adopt_configured()
    rng = random.Random(7)
    officers = max(1, clips // 100)
    with store.writer.write() as db:
        db.executemany(
            "INSERT INTO officers (officer_id, borough, role, updated_at) VALUES (?, 'Camden', 'response', ?)",
            [(f"PC{i:05d}", to_iso(NOW)) for i in range(officers)],
        )
    recorded = []
    for start in range(0, clips, 100_000):
        rows, attributions = [], []
        for i in range(start, min(clips, start + 100_000)):
            at = to_iso(NOW - timedelta(seconds=rng.randrange(365 * 86400)))
            tags = ["stop_and_search"] if i % 50 == 0 else []
            clip_id = f"{i:032x}"
            recorded.append(at)
            rows.append(
                (
                    clip_id,
                    clip_id,
                    "0" * 64,
                    100,
                    "verified",
                    "camden",
                    f"BWV-{i % 20000:06d}",
                    at,
                    "c.mp4",
                    int(i % 20 == 0),
                    json.dumps(tags),
                    at,
                    clip_id,
                )
            )
            attributions.append((clip_id, f"BWV-{i % 20000:06d}", at, "camden", f"PC{i % officers:05d}"))
        with store.writer.write() as db:
            db.executemany(
                "INSERT INTO clips (clip_id, upload_id, sha256, size, state, station_id, device_serial, "
                "recorded_at, filename, evidential, tags, verified_at, blob_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.executemany(
                "INSERT INTO attributions (clip_id, device_serial, recorded_at, station_id, officer_id) "
                "VALUES (?, ?, ?, ?, ?)",
                attributions,
            )
            db.executemany("INSERT INTO clip_retention (clip_id) VALUES (?)", [(r[0],) for r in rows])
    with store.writer.write() as db:
        # (kind, clip_id, officer_id, window_from, window_to, case_ref): what each kind of hold names
        hold_rows: list[tuple[str, str | None, str | None, str | None, str | None, str | None]] = []
        case_rows: list[tuple[str, str, str, str]] = []
        for h in range(holds):
            kind = "clip" if h % 10 < 6 else "officer" if h % 10 < 9 else "case"
            if kind == "clip":
                hold_rows.append(("clip", f"{rng.randrange(clips):032x}", None, None, None, None))
            elif kind == "officer":
                day = NOW - timedelta(days=rng.randrange(365))
                hold_rows.append(
                    (
                        "officer",
                        None,
                        f"PC{rng.randrange(officers):05d}",
                        to_iso(day),
                        to_iso(day + timedelta(days=1)),
                        None,
                    )
                )
            else:
                ref = f"CASE-{h}"
                hold_rows.append(("case", None, None, None, None, ref))
                case_rows += [(ref, f"{rng.randrange(clips):032x}", to_iso(NOW), "bench") for _ in range(5)]
        db.executemany(
            "INSERT INTO holds (kind, clip_id, officer_id, window_from, window_to, case_ref, reason, "
            "created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, 'bench', ?, 'bench')",
            [(*r, to_iso(NOW)) for r in hold_rows],
        )
        db.executemany("INSERT INTO case_clips VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", case_rows)
        if db.dialect.postgres:
            db.execute("ANALYZE")  # as autovacuum would have by now, on a year's rows
    store.close()


def step(root: str, which: str, url: str | None = None) -> None:
    """One measured step, in this (fresh) process; prints JSON."""
    from central.core.services import build_services
    from central.core.store import CentralStore

    settings = _settings(Path(root), url)
    store = CentralStore.open(settings)
    retention = build_services(settings, store).retention
    start = time.perf_counter()
    if which == "assess":
        result = {"assessed": retention.assess()}
    elif which == "run":
        report = retention.run(NOW)
        result = {"soft_deleted": report.soft_deleted, "held_back": report.held_back, "purged": report.purged}
    else:
        report = retention.run(NOW + timedelta(days=8))
        result = {"soft_deleted": report.soft_deleted, "purged": report.purged}
    seconds = time.perf_counter() - start
    store.close()
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent that built the data.
    peak = (
        next(
            int(line.split()[1])
            for line in Path("/proc/self/status").read_text().splitlines()
            if line.startswith("VmHWM:")
        )
        / 1024
    )
    print(json.dumps({**result, "seconds": round(seconds, 2), "peak_rss_mib": round(peak, 1)}))


def _size_mib(root: Path, url: str | None) -> int:
    if url is None:
        return round(sum(p.stat().st_size for p in (root / "central").glob("central.db*")) / (1 << 20))
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return round((row[0] if row else 0) / (1 << 20))


def run(clips: int = 2_000_000, holds: int = 10_000, engines: tuple[str, ...] = ENGINES) -> dict:
    root = Path(tempfile.mkdtemp(prefix="bench-retention-", dir=Path.cwd()))
    results: dict[str, dict] = {}
    try:
        with databases(root) as found:
            for engine in engines:
                where = root / engine
                url = found.url(engine)
                start = time.perf_counter()
                build(where, clips, holds, url)
                built = time.perf_counter() - start
                steps = {}
                for which in ("assess", "run", "purge"):
                    out = subprocess.run(
                        [sys.executable, "-m", "bench.retention", str(where), which, *([url] if url else [])],
                        check=True,
                        capture_output=True,
                        text=True,
                    )
                    steps[which] = json.loads(out.stdout.strip().splitlines()[-1])
                results[engine] = {
                    "build_s": round(built, 1),
                    "db_mib": _size_mib(where, url),
                    "steps": steps,
                    "job_s": round(steps["run"]["seconds"] + steps["purge"]["seconds"], 2),
                }
        return {"machine": machine(), "clips": clips, "holds": holds, "target_s": 60, "engines": results}
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    step(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
