"""The fleet health job: battery forecasts, stale cameras, stale stations, feed history.

Per-docking flags (short shift, over-temperature, capacity drop) are set as events are
applied; the trend forecast needs a device's reading history, so it is recomputed here,
in batches, for devices with new readings ("dirty"). Runs on apscheduler at central.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from central.core.database import Database
from central.registry import battery
from central.registry.stations import StationService
from fleet.clock import from_iso, to_iso, utc_now
from fleet.config import CentralSettings

log = logging.getLogger(__name__)
TREND_READINGS = 60
"""The forecast fits a device's most recent readings (two months of daily docking)."""
BATCH = 500


@dataclass
class HealthReport:
    forecasts: int = 0
    stale_devices: int = 0
    newly_stale_devices: int = 0
    stale_stations: list[str] | None = None
    changes_trimmed: int = 0


class FleetHealth:
    def __init__(self, writer: Database, settings: CentralSettings, stations: StationService, changes) -> None:
        self.writer = writer
        self.settings = settings
        self.policy = battery.health_policy(settings.fleet)
        self.stations = stations
        self.changes = changes
        self._stale_stations: set[str] = set()

    def run(self, now: datetime | None = None) -> HealthReport:
        now = now or utc_now()
        report = HealthReport()
        report.forecasts = self.refresh_forecasts()
        report.stale_devices, report.newly_stale_devices = self.mark_stale_devices(now)
        everyone = self.stations.all(now)
        self.stations.record_samples(everyone, now)  # the sync-lag history the stations page draws
        stations = {s.station_id: s for s in everyone if s.stale}
        stale = set(stations)
        for station_id in sorted(stale - self._stale_stations):
            seen = stations[station_id].last_seen_at
            log.warning(
                "station %s %s",
                station_id,
                f"has not been heard from since {seen:%Y-%m-%d %H:%M}Z" if seen else "has never reported to central",
            )
        self._stale_stations = stale
        report.stale_stations = sorted(stale)
        report.changes_trimmed = self.changes.trim()
        return report

    def refresh_forecasts(self) -> int:
        done = 0
        while True:
            with self.writer.read() as db:
                dirty = db.dialect.flag_set("battery_dirty")  # the partial index's condition
                docked = dict(
                    db.execute(f"SELECT serial, last_docked_at FROM devices WHERE {dirty} LIMIT ?", [BATCH]).fetchall()
                )
                serials = list(docked)
                histories = {
                    s: [
                        battery.Reading(
                            at=from_iso(r[0]),
                            full_charge_mah=r[1],
                            design_mah=r[2],
                            cycle_count=r[3],
                            temperature_c=r[4],
                            level_pct=r[5],
                        )
                        for r in db.execute(
                            "SELECT at, full_mah, design_mah, cycle_count, temperature_c, level_pct FROM "
                            "battery_readings WHERE serial = ? ORDER BY at DESC LIMIT ?",
                            [s, TREND_READINGS],
                        )
                    ]
                    for s in serials
                }
            if not serials:
                return done
            updates = []
            for serial, readings in histories.items():
                assessed = battery.assess(readings, self.policy) if readings else None
                when = assessed.predicted_replace_at if assessed else None
                updates.append((to_iso(when) if when else None, serial, docked[serial]))
            with self.writer.write() as db:  # a docking applied meanwhile keeps its device dirty
                db.executemany(
                    "UPDATE devices SET replace_by = ?, battery_dirty = 0 WHERE serial = ? "
                    f"AND {db.dialect.same('last_docked_at', '?')}",
                    updates,
                )
            done += len(updates)

    def mark_stale_devices(self, now: datetime) -> tuple[int, int]:
        """Cameras in use that have not docked for ``stale_device_days`` (possibly lost)."""
        cutoff = to_iso(now - timedelta(days=self.settings.fleet.stale_device_days))
        with self.writer.write() as db:
            newly = db.execute(
                """UPDATE devices SET flag_stale = 1 WHERE flag_stale = 0
                   AND lifecycle IN ('issued', 'in_service') AND last_docked_at IS NOT NULL AND last_docked_at < ?""",
                [cutoff],
            ).rowcount
            stale = db.dialect.flag_set("flag_stale")  # the partial index's condition
            db.execute(
                f"UPDATE devices SET flag_stale = 0 WHERE {stale} AND (last_docked_at >= ? "
                "OR lifecycle NOT IN ('issued', 'in_service'))",
                [cutoff],
            )
            total = db.execute(f"SELECT COUNT(*) FROM devices WHERE {stale}").fetchone()[0]
        if newly:
            log.warning(
                "%d camera(s) newly stale: not docked for %s days", newly, self.settings.fleet.stale_device_days
            )
        return total, newly
