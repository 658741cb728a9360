"""P3 events: station telemetry and events into central, durably acknowledged, in events per second.

Target: ≥ 50,000 events/s on 2 cores with batching. Central runs as a real process
(``fleet central serve``) with one token per station; every batch body is encoded before the
clock starts (per docking: one CameraDocked with full battery telemetry, then its four
ClipIngested, so ~20 % / ~80 %, for cameras ``BWV-000000``… spread over the stations). Sender
threads each own distinct stations and post each station's batches in seq order on their own
``httpx.Client``; every answer must be 200 with ``acked_seq`` = the batch's last seq.

Side by side, in the same rounds (alternating order, a fresh database each time, so seqs
start again at 1):
- *baseline*: the same events inserted in-process into a bare SQLite table shaped like
  central's ``events`` (WAL, ``synchronous=FULL``, one ``executemany`` transaction per
  batch): the durable-insert ceiling, with no HTTP, no decoding and no projection;
- *in-process*: central's own ``EventLog.ingest`` on the same batches (decode, store, one
  transaction per batch), without HTTP, which shows what HTTP costs; then the projection
  applies them all, in transactions sized as its worker sizes them (``in_process_applied``:
  applying alone, with nothing acknowledged beside it).

*in-process* and *http* run on each database (``engines``): SQLite, and PostgreSQL started
for the run (``bench.databases``, durable). For *http* the time until the projection has
applied every event is measured too: "applied per second" beside "acknowledged per second".
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import msgspec

from bench.common import machine, median, save
from bench.databases import ENGINES, Databases, settings_section
from bench.upload import ADMIN, free_port
from fleet.clock import to_iso, utc_now
from fleet.events import CameraDocked, ClipIngested, EventBatch, EventEnvelope, kind_of
from fleet.protocol import Battery, DeviceInfo

LONDON_BOROUGHS = [
    "Barking and Dagenham",
    "Barnet",
    "Bexley",
    "Brent",
    "Bromley",
    "Camden",
    "Croydon",
    "Ealing",
    "Enfield",
    "Greenwich",
    "Hackney",
    "Hammersmith and Fulham",
    "Haringey",
    "Harrow",
    "Havering",
    "Hillingdon",
    "Hounslow",
    "Islington",
    "Kensington and Chelsea",
    "Kingston upon Thames",
    "Lambeth",
    "Lewisham",
    "Merton",
    "Newham",
    "Redbridge",
    "Richmond upon Thames",
    "Southwark",
    "Sutton",
    "Tower Hamlets",
    "Waltham Forest",
    "Wandsworth",
    "Westminster",
]
CLIPS_PER_DOCKING = 4  # one CameraDocked then its clips: ~20 % docked, ~80 % clips, as a station sends them
ENDPOINT = "/api/v1/events/"


@dataclass(frozen=True)
class Station:
    station_id: str
    borough: str
    token: str


@dataclass(frozen=True)
class Batch:
    station: Station
    last_seq: int
    body: bytes
    """The encoded EventBatch, as it goes on the wire."""
    rows: list[tuple[int, str, str, bytes]]
    """(seq, kind, station_at, event body) of each event, for the bare-SQLite baseline."""


def make_stations(count: int) -> list[Station]:
    return [
        Station(f"st-{i:02d}", LONDON_BOROUGHS[i % len(LONDON_BOROUGHS)], f"bench-station-{i:02d}-token")
        for i in range(count)
    ]


class Central:
    """A real ``fleet central serve`` process on a free port, with a token per station."""

    def __init__(
        self, root: Path, stations: list[Station], data_dir: Path | None = None, url: str | None = None
    ) -> None:
        self.port = free_port()
        root.mkdir(parents=True, exist_ok=True)
        config = root / "central.toml"
        lines = [
            f"port = {self.port}",
            f'data_dir = "{data_dir or root / "data"}"',
            f'admin_token = "{ADMIN}"',
            'log_level = "error"',  # the health job warns about idle stations
        ]
        if url:
            lines += ["[database]", f'url = "{url}"']
        for s in stations:
            lines += [f"[stations.{s.station_id}]", f'borough = "{s.borough}"', f'token = "{s.token}"']
        config.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fleet.cli", "central", "serve", "--config", str(config)], start_new_session=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"central exited with {self.proc.returncode} while starting")
            try:
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("central did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=30)


# -- the workload ----------------------------------------------------------------------------


def _docking(rng: random.Random, serial: str, at: datetime, clips: int) -> CameraDocked:
    """A docking with full battery telemetry (~5 % of cameras won't last a shift, ~1 % run hot)."""
    full = rng.randint(2300, 2480) if rng.random() < 0.05 else rng.randint(2530, 3000)
    return CameraDocked(
        device=DeviceInfo(
            serial=serial,
            model="Axon Body 3",
            firmware="1.12.4",
            docked_at=at,
            battery=Battery(
                level_pct=round(rng.uniform(5, 100), 1),
                voltage_mv=rng.randint(3500, 4200),
                temperature_c=round(rng.uniform(46, 55) if rng.random() < 0.01 else rng.uniform(18, 40), 1),
                cycle_count=rng.randint(20, 900),
                full_charge_mah=full,
                design_mah=3000,
            ),
            storage_used_bytes=rng.randint(0, 64 << 30),
        ),
        folder=f"{serial}-{at:%Y%m%dT%H%M%S}",
        clip_count=clips,
    )


def _batch(station: Station, envelopes: list[EventEnvelope]) -> Batch:
    """A batch encoded as it goes on the wire, with its rows for the bare-SQLite baseline."""
    encode = msgspec.json.encode
    body = encode(EventBatch(sent_at=utc_now(), events=envelopes))
    rows = [(e.seq, kind_of(e.event), to_iso(e.at), encode(e.event)) for e in envelopes]
    return Batch(station, envelopes[-1].seq, body, rows)


def _station_events(
    rng: random.Random, station: int, stations: int, count: int, devices: int, start: datetime
) -> Iterator[CameraDocked | ClipIngested]:
    """``count`` events of one station: dockings of its own cameras, each followed by its clips."""
    own = range(station, devices, stations)  # a camera docks at its home station
    at = start
    produced = 0
    while produced < count:
        serial = f"BWV-{rng.choice(own):06d}"
        at += timedelta(seconds=rng.uniform(5, 60))
        yield _docking(rng, serial, at, CLIPS_PER_DOCKING)
        produced += 1
        for _ in range(min(CLIPS_PER_DOCKING, count - produced)):
            yield ClipIngested(
                clip_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                device_serial=serial,
                recorded_at=at - timedelta(hours=rng.uniform(1, 10)),
                size=rng.randint(10 << 20, 800 << 20),
                sha256=rng.randbytes(32).hex(),
                evidential=rng.random() < 0.1,
                tags=["stop_search"] if rng.random() < 0.2 else [],
                duration_s=round(rng.uniform(10, 1800), 1),
            )
            produced += 1


def make_batches(
    stations: list[Station],
    total: int,
    batch: int,
    devices: int = 20_000,
    seed: int = 3,
    after: list[list[Batch]] | None = None,
) -> list[list[Batch]]:
    """Every station's batches, in seq order, encoded once (seqs from 1 per station, or from the end
    of each station's batches in ``after``: a plan sent before this one, ``known_fleet``)."""
    rng = random.Random(seed)
    start = utc_now() - timedelta(days=1)
    plan = []
    for i, station in enumerate(stations):
        count = total // len(stations) + (1 if i < total % len(stations) else 0)
        events = _station_events(rng, i, len(stations), count, devices, start)
        first = after[i][-1].last_seq if after and after[i] else 0
        batches, seq, at = [], first, start
        while chunk := list(itertools.islice(events, batch)):
            envelopes = []
            for event in chunk:
                seq += 1
                # the station's clock: its clips are ingested right after the docking
                if isinstance(event, CameraDocked):
                    assert event.device.docked_at is not None  # _station_events dates every docking
                    at = event.device.docked_at
                else:
                    at += timedelta(milliseconds=50)
                envelopes.append(EventEnvelope(seq=seq, at=at, event=event))
            batches.append(_batch(station, envelopes))
        plan.append(batches)
    return plan


def known_fleet(stations: list[Station], batch: int, devices: int = 20_000, seed: int = 5) -> list[list[Batch]]:
    """Every camera docked once at its home station, two to three days ago: sent and applied before the
    clock starts, so that the plan measured (``make_batches(…, after=this)``) is a force's ordinary
    day, every camera known to central. Without it, most of the plan's dockings are of cameras new to
    central (registered, their first settings, firmware and custody records): a roll-out's first day."""
    rng = random.Random(seed)
    start = utc_now() - timedelta(days=3)
    plan = []
    for i, station in enumerate(stations):
        own = range(i, devices, len(stations))
        step = timedelta(days=1) / max(1, len(own))
        envelopes = [
            EventEnvelope(seq=seq, at=start + step * seq, event=_docking(rng, f"BWV-{n:06d}", start + step * seq, 0))
            for seq, n in enumerate(own, start=1)
        ]
        plan.append([_batch(station, envelopes[b : b + batch]) for b in range(0, len(envelopes), batch)])
    return plan


# -- running the same batches three ways ------------------------------------------------------


def _round_robin(per_station: list[list[Batch]]) -> Iterator[Batch]:
    """One batch of each of a sender's stations in turn, each station's in seq order."""
    for group in itertools.zip_longest(*per_station):
        yield from (b for b in group if b is not None)


def in_threads(
    plan: list[list[Batch]], senders: int, sender: Callable[[], AbstractContextManager[Callable[[Batch], None]]]
) -> float:
    """Seconds for ``senders`` threads, each owning distinct stations, to send every batch.

    ``sender()`` gives one thread its send function (and its own resources, such as a
    client); the clock starts once every thread holds one.
    """
    barrier = threading.Barrier(senders + 1)
    errors: list[BaseException] = []

    def work(stations: list[list[Batch]]) -> None:
        try:
            with sender() as send:
                barrier.wait()
                for b in _round_robin(stations):
                    send(b)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(plan[i::senders],)) for i in range(senders)]
    for t in threads:
        t.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    start = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    return seconds


def _check_ack(b: Batch, acked: int) -> None:
    if acked != b.last_seq:
        raise RuntimeError(f"{b.station.station_id}: acked_seq {acked}, expected {b.last_seq}")


def over_http(
    root: Path,
    stations: list[Station],
    plan: list[list[Batch]],
    senders: int,
    url: str | None = None,
    before: list[list[Batch]] | None = None,
) -> float:
    """Seconds to acknowledge ``plan`` over HTTP (``APPLIED_S``: until it is applied too). ``before``:
    batches sent and applied first, untimed (``known_fleet``)."""
    central = Central(root, stations, url=url)
    headers = {
        s.station_id: {"Authorization": f"Bearer {s.token}", "Content-Type": "application/json"} for s in stations
    }
    decode = msgspec.json.Decoder(dict).decode

    @contextmanager
    def sender() -> Iterator[Callable[[Batch], None]]:
        with httpx.Client(base_url=central.url, timeout=120) as client:

            def send(b: Batch) -> None:
                r = client.post(ENDPOINT, content=b.body, headers=headers[b.station.station_id])
                if r.status_code != 200:
                    raise RuntimeError(f"{b.station.station_id} seq ..{b.last_seq}: {r.status_code} {r.text[:300]}")
                _check_ack(b, decode(r.content)["acked_seq"])

            yield send

    try:
        if before:
            in_threads(before, senders, sender)
            wait_applied(central, sum(b[-1].last_seq for b in before if b))
        start = time.perf_counter()
        acked_s = in_threads(plan, senders, sender)
        wait_applied(central, sum(b[-1].last_seq for b in plan if b))
        APPLIED_S.setdefault("postgresql" if url else "sqlite", []).append(time.perf_counter() - start)
        return acked_s
    finally:
        central.stop()


APPLIED_S: dict[str, list[float]] = {}
"""Per database, per HTTP round: seconds from the first batch until the projection had applied every event."""


def wait_applied(central: Central, events: int, timeout: float = 600) -> None:
    """Poll central's stations until every acknowledged event is applied to fleet state."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=central.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30) as client:
        while time.monotonic() < deadline:
            stations = client.get("/api/v1/stations/").raise_for_status().json()
            if sum(s["applied_seq"] for s in stations) >= events:
                return
            time.sleep(0.05)
    raise RuntimeError("the projection did not catch up within the timeout")


def in_process(
    root: Path, stations: list[Station], plan: list[list[Batch]], senders: int, url: str | None = None
) -> float:
    from central.core.services import build_services
    from central.core.store import CentralStore
    from fleet.config import CentralSettings, settings_from_dict

    settings = settings_from_dict(
        {
            "data_dir": str(root / "data"),
            "admin_token": ADMIN,
            "stations": {s.station_id: {"borough": s.borough, "token": s.token} for s in stations},
            **settings_section(url),
        },
        CentralSettings,
    )
    store = CentralStore.open(settings)
    try:
        events = build_services(settings, store).events

        @contextmanager
        def sender() -> Iterator[Callable[[Batch], None]]:
            yield lambda b: _check_ack(b, events.ingest(b.station.station_id, b.station.borough, b.body).acked_seq)

        seconds = in_threads(plan, senders, sender)
        with store.writer.read() as db:
            stored = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        expected = sum(len(b.rows) for batches in plan for b in batches)
        if stored != expected:
            raise RuntimeError(f"in-process: {stored} events stored, expected {expected}")
        IN_PROCESS_APPLIED_S.setdefault("postgresql" if url else "sqlite", []).append(apply_everything(events))
        return seconds
    finally:
        store.close()


IN_PROCESS_APPLIED_S: dict[str, list[float]] = {}
"""Per database, per in-process round: seconds for the projection to apply every acknowledged event."""


def apply_everything(events) -> float:
    """Seconds to apply every acknowledged event, a transaction at a time as the projection worker
    sizes them when no station is sending (without its pauses: nothing else wants the writer here)."""
    from central.events.log import ProjectionWorker

    batch = ProjectionWorker.BATCH_MIN
    start = time.perf_counter()
    while True:
        began = time.perf_counter()
        applied = events.apply_pending(limit=batch)
        if not applied:
            return time.perf_counter() - start
        batch = ProjectionWorker.next_batch(
            batch, applied, time.perf_counter() - began, ProjectionWorker.QUIET_TRANSACTION_S
        )


def bare_sqlite(root: Path, stations: list[Station], plan: list[list[Batch]], senders: int) -> float:
    """The ceiling: the same rows, one executemany transaction per batch, WAL + synchronous=FULL."""
    root.mkdir(parents=True)
    conn = sqlite3.connect(root / "events.db", isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("""CREATE TABLE events (station_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
                        station_at TEXT NOT NULL, received_at TEXT NOT NULL, body BLOB NOT NULL,
                        PRIMARY KEY (station_id, seq)) WITHOUT ROWID""")
    lock = threading.Lock()  # one writer at a time, as central's Writer

    def insert(b: Batch) -> None:
        station_id, received = b.station.station_id, to_iso(utc_now())
        rows = [(station_id, seq, kind, at, received, body) for seq, kind, at, body in b.rows]
        with lock:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO events (station_id, seq, kind, station_at, received_at, body) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")

    @contextmanager
    def sender() -> Iterator[Callable[[Batch], None]]:
        yield insert

    try:
        return in_threads(plan, senders, sender)
    finally:
        conn.close()


def run(
    total: int = 200_000,
    batch: int = 1000,
    stations: int = 8,
    senders: int = 2,
    rounds: int = 3,
    engines: tuple[str, ...] = ENGINES,
) -> dict:
    root = Path(tempfile.mkdtemp(prefix="bench-events-", dir=Path.cwd()))
    found = Databases(root / "databases")
    ways: dict[str, Callable[..., float]] = {"baseline": bare_sqlite}
    for engine in engines:

        def fresh(way: Callable[..., float], engine: str = engine) -> Callable[..., float]:
            return lambda *args: way(*args, found.url(engine))  # a new database each round

        ways[f"in_process_{engine}"] = fresh(in_process)
        ways[f"http_{engine}"] = fresh(over_http)
    APPLIED_S.clear()
    IN_PROCESS_APPLIED_S.clear()
    try:
        fleet = make_stations(stations)
        start = time.perf_counter()
        plan = make_batches(fleet, total, batch)
        encode_s = time.perf_counter() - start
        events = sum(len(b.rows) for batches in plan for b in batches)
        body_bytes = sum(len(b.body) for batches in plan for b in batches)
        seconds: dict[str, list[float]] = {name: [] for name in ways}
        names = list(ways)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate who goes first
                where = root / f"round{r}-{name}"
                seconds[name].append(ways[name](where, fleet, plan, senders))
                shutil.rmtree(where, ignore_errors=True)
        rates = {name: [events / s for s in values] for name, values in seconds.items()}
        medians = {name: median(values) for name, values in rates.items()}
        return {
            "machine": machine(),
            "events": events,
            "batch": batch,
            "stations": stations,
            "senders": senders,
            "rounds": rounds,
            "batches": sum(len(b) for b in plan),
            "body_bytes": body_bytes,
            "encode_s": encode_s,
            "seconds": seconds,
            "events_per_s": rates,
            "median_events_per_s": medians,
            "ratio_vs_baseline": {name: medians[name] / medians["baseline"] for name in names},
            "http_applied_s": APPLIED_S,
            "in_process_applied_s": IN_PROCESS_APPLIED_S,
            "median_in_process_applied_events_per_s": {
                engine: median([events / t for t in times]) for engine, times in IN_PROCESS_APPLIED_S.items()
            },
            "median_http_applied_events_per_s": {
                engine: median([events / t for t in times]) for engine, times in APPLIED_S.items()
            },
            "target_events_per_s": {"sqlite": 50_000, "postgresql": 25_000},
            "directory": str(root.parent),
        }
    finally:
        found.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    import json

    result = run()
    save("events", result)
    print(json.dumps(result, indent=2))
