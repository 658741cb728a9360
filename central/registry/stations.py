"""Stations as central sees them: last contact, backlog, clock skew; stale ones listed.

Every event batch (an empty one is a heartbeat) updates a station's row, so "last heard
from" and its backlog (oldest un-synced clip) come from the station itself. The row also
keeps the event log's place in the station's events (``central.events.log``): how far they
are acknowledged and applied, and the latest station time accepted. The event log writes
it through the functions below, inside its own transactions.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.params import PathParameter

from central.access.auth import Caller, station_or_user_with, user_with
from central.access.scope import LISTS, Scoped, in_path, touches
from central.core.database import Database
from central.core.providers import Injected
from central.events import claims
from fleet.clock import from_iso, to_iso, utc_now
from fleet.config import CentralSettings
from fleet.errors import NotFound
from fleet.events import Backlog


class StationHealth(msgspec.Struct, kw_only=True):
    station_id: str
    borough: str
    last_seen_at: datetime | None
    stale: bool
    """Not heard from for longer than ``[fleet] stale_station_hours`` (or never)."""
    acked_seq: int = 0
    applied_seq: int = 0
    """Events applied to fleet state so far (the projection catches up with ``acked_seq``)."""
    clock_skew_s: float | None = None
    """The station's clock minus central's, at its last batch."""
    pending_clips: int = 0
    pending_bytes: int = 0
    oldest_pending_recorded_at: datetime | None = None
    oldest_pending_age_h: float | None = None
    failed_clips: int = 0
    failed_folders: int = 0
    checked_out: int = 0
    refused_events: int = 0
    """Events refused because they claimed more than this station may (``central.events.claims``)."""


class Sample(msgspec.Struct, kw_only=True):
    at: datetime
    pending_clips: int
    pending_bytes: int
    lag_h: float | None
    """Age of the oldest clip not yet at central (None: nothing waiting)."""


SAMPLE_DAYS = 30
"""How long the backlog history is kept."""


def heard_from(db, station_id: str, borough: str) -> int:
    """A batch from this station (of this borough, by its token): its row, made if new; its acked seq."""
    db.execute(
        "INSERT INTO stations (station_id, borough) VALUES (?, ?) "
        "ON CONFLICT (station_id) DO UPDATE SET borough = excluded.borough",
        [station_id, borough],
    )
    return db.execute("SELECT acked_seq FROM stations WHERE station_id = ?", [station_id]).fetchone()[0]


def note_batch(db, station_id: str, acked: int, received: str, clock_skew_s: float, backlog: Backlog | None) -> None:
    """What a batch told central: events acknowledged up to ``acked``, when, the station's clock
    skew and, if it sent one, its backlog."""
    db.execute(
        """UPDATE stations SET acked_seq = ?, last_seen_at = ?, clock_skew_s = ?,
               backlog = COALESCE(?, backlog), pending_clips = COALESCE(?, pending_clips),
               pending_bytes = COALESCE(?, pending_bytes),
               oldest_pending_recorded_at = CASE WHEN ? = 1 THEN ? ELSE oldest_pending_recorded_at END
           WHERE station_id = ?""",
        [
            acked,
            received,
            clock_skew_s,
            msgspec.json.encode(backlog).decode() if backlog else None,
            backlog.pending_clips if backlog else None,
            backlog.pending_bytes if backlog else None,
            int(backlog is not None),
            to_iso(backlog.oldest_pending_recorded_at) if backlog and backlog.oldest_pending_recorded_at else None,
            station_id,
        ],
    )


def behind(db) -> list[tuple[str, str, int, int]]:
    """(station, borough, applied seq, acked seq) of the stations with events acknowledged, not applied."""
    return db.execute(
        "SELECT station_id, borough, applied_seq, acked_seq FROM stations "
        "WHERE applied_seq < acked_seq ORDER BY station_id"
    ).fetchall()


def applied(db, seqs: dict[str, int]) -> None:
    """Each station's events are applied up to its seq here."""
    db.execute(
        f"UPDATE stations SET applied_seq = v.seq FROM {db.dialect.rows_of('station TEXT, seq BIGINT')} "
        "WHERE stations.station_id = v.station",
        [db.dialect.rows({"station": station, "seq": seq} for station, seq in seqs.items())],
    )


def borough_of(db, station_id: str) -> str | None:
    """The borough a station's token spoke for when central last heard from it (None: never)."""
    row = db.execute("SELECT borough FROM stations WHERE station_id = ?", [station_id]).fetchone()
    return row[0] if row else None


def applying(db, station_id: str) -> bool:
    """Whether central holds events of this station acknowledged and not applied yet (a report it
    sent, of a clip's ingest say, may be among them)."""
    row = db.execute("SELECT applied_seq < acked_seq FROM stations WHERE station_id = ?", [station_id]).fetchone()
    return bool(row and row[0])


def latest_at(db, station_ids: Iterable[str]) -> dict[str, str | None]:
    """The latest station time of an event central accepted from each of these stations (None: none
    yet; ``central.events.claims``)."""
    ids = list(station_ids)
    found = dict(
        db.execute(
            f"SELECT station_id, latest_at FROM stations WHERE {db.dialect.any_of('station_id')}",
            [db.dialect.many(ids)],
        ).fetchall()
    )
    return {station: found.get(station) for station in ids}


def set_latest_at(db, latest: dict[str, str | None]) -> None:
    db.execute(
        f"UPDATE stations SET latest_at = v.at FROM {db.dialect.rows_of('station TEXT, at TEXT')} "
        "WHERE stations.station_id = v.station",
        [db.dialect.rows({"station": station, "at": at} for station, at in latest.items())],
    )


class StationService:
    def __init__(self, writer: Database, settings: CentralSettings) -> None:
        self.writer = writer
        self.settings = settings

    def record_samples(self, stations: list[StationHealth], now: datetime) -> None:
        """One sample of every station's backlog (the health job, every few minutes); 30 days kept."""
        with self.writer.write() as db:
            db.executemany(
                "INSERT INTO station_samples (station_id, at, pending_clips, pending_bytes, lag_h) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (station_id, at) DO UPDATE SET pending_clips = "
                "excluded.pending_clips, pending_bytes = excluded.pending_bytes, lag_h = excluded.lag_h",
                [
                    (s.station_id, to_iso(now), s.pending_clips, s.pending_bytes, s.oldest_pending_age_h)
                    for s in stations
                ],
            )
            db.execute("DELETE FROM station_samples WHERE at < ?", [to_iso(now - timedelta(days=SAMPLE_DAYS))])

    def samples(self, station_id: str | None, since: datetime, among: list[str] | None = None) -> list[Sample]:
        """One station's samples, or the force's (summed backlog, worst lag) per sample time; ``among``:
        only these stations' (a borough's)."""
        dialect = self.writer.dialect
        only = f" AND {dialect.any_of('station_id')}" if among is not None else ""
        sql = (
            "SELECT at, pending_clips, pending_bytes, lag_h FROM station_samples WHERE station_id = ? "
            "AND at >= ? ORDER BY at"
            if station_id
            else "SELECT at, sum(pending_clips), sum(pending_bytes), max(lag_h) FROM station_samples "
            f"{dialect.indexed_by('station_samples_at')} WHERE at >= ?{only} GROUP BY at ORDER BY at"
        )
        params = (
            [station_id, to_iso(since)]
            if station_id
            else [to_iso(since)] + ([dialect.many(among)] if among is not None else [])
        )
        with self.writer.read() as db:
            rows = db.execute(sql, params).fetchall()
        return [Sample(at=from_iso(r[0]), pending_clips=r[1], pending_bytes=r[2], lag_h=r[3]) for r in rows]

    def all(self, now: datetime | None = None) -> list[StationHealth]:
        now = now or utc_now()
        with self.writer.read() as db:
            rows = {
                r[0]: r
                for r in db.execute(
                    "SELECT station_id, borough, last_seen_at, acked_seq, clock_skew_s, backlog, pending_clips, "
                    "pending_bytes, oldest_pending_recorded_at, applied_seq FROM stations"
                )
            }
            refused = claims.counts_by_station(db)
        stale_after = timedelta(hours=self.settings.fleet.stale_station_hours)
        out = []
        for station_id in sorted(set(rows) | set(self.settings.stations)):
            configured = self.settings.stations.get(station_id)
            r = rows.get(station_id)
            seen = from_iso(r[2]) if r and r[2] else None
            oldest = from_iso(r[8]) if r and r[8] else None
            backlog = msgspec.json.decode(r[5]) if r and r[5] else {}
            out.append(
                StationHealth(
                    station_id=station_id,
                    borough=configured.borough if configured else rows[station_id][1],  # seen, or configured
                    last_seen_at=seen,
                    stale=seen is None or now - seen > stale_after,
                    acked_seq=r[3] if r else 0,
                    applied_seq=r[9] if r else 0,
                    clock_skew_s=r[4] if r else None,
                    pending_clips=r[6] if r else 0,
                    pending_bytes=r[7] if r else 0,
                    oldest_pending_recorded_at=oldest,
                    oldest_pending_age_h=round((now - oldest).total_seconds() / 3600, 2) if oldest else None,
                    failed_clips=backlog.get("failed_clips", 0),
                    failed_folders=backlog.get("failed_folders", 0),
                    checked_out=backlog.get("checked_out", 0),
                    refused_events=refused.get(station_id, 0),
                )
            )
        return out


class StationController(Controller):
    path = "/api/v1/stations"
    tags = ["stations"]

    @get(
        "/",
        summary="Every station: last contact, stale or not, backlog and oldest un-synced clip",
        guards=[user_with("viewer")],
        scope=LISTS,
        sync_to_thread=True,
    )
    def list_stations(self, within: Scoped, stations: Injected[StationService]) -> list[StationHealth]:
        return [s for s in stations.all() if within.borough in (None, s.borough)]

    @get(
        "/{station_id:str}",
        summary="One station's health",
        guards=[station_or_user_with("viewer")],
        scope=touches(in_path("station", "station_id")),
        sync_to_thread=True,
    )
    def get_station(
        self,
        principal: Caller,
        stations: Injected[StationService],
        station_id: Annotated[str, PathParameter(max_length=64)],
    ) -> StationHealth:
        for station in stations.all():
            if station.station_id == station_id:
                return station
        raise NotFound(f"no station {station_id}")


def acknowledged(db) -> dict[str, int]:
    """Each station's acknowledged seq (a backup's manifest says how far it holds each station's events)."""
    return dict(db.execute("SELECT station_id, acked_seq FROM stations ORDER BY station_id").fetchall())
