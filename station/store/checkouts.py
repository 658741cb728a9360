"""The ``checkouts`` table: pool cameras out with an officer, and back.

At most one open checkout per camera and per officer (unique partial indexes). The desk
opens and closes them by hand; a docking closes the camera's open one by itself. Each
remembers the docking it was charged from, so "docked since it was last out" compares row
ids, which only grow, never station times, which can step back.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from fleet.clock import from_iso, to_iso
from fleet.sqlite import Writer


class Checkout(msgspec.Struct, kw_only=True, frozen=True):
    """A pool camera out with an officer (``in_at`` None: still out); what the desk API answers."""

    device_serial: str
    officer_id: str
    out_at: datetime
    battery_pct: float | None
    out_by: str
    in_at: datetime | None = None
    in_reason: str | None = None


class Checkouts:
    """Every read and write of the ``checkouts`` table."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def holder(self, serial: str) -> str | None:
        """The officer the camera is checked out to now, if any."""
        with self.writer.read() as db:
            row = db.execute(
                "SELECT officer_id FROM checkouts WHERE device_serial = ? AND in_at IS NULL", [serial]
            ).fetchone()
        return row[0] if row else None

    def held_by(self, officer_id: str) -> str | None:
        """The camera the officer has checked out now, if any."""
        with self.writer.read() as db:
            row = db.execute(
                "SELECT device_serial FROM checkouts WHERE officer_id = ? AND in_at IS NULL", [officer_id]
            ).fetchone()
        return row[0] if row else None

    def last_docking_id(self, serial: str) -> int | None:
        """The docking the camera was last checked out from."""
        with self.writer.read() as db:
            return db.execute("SELECT MAX(docking_id) FROM checkouts WHERE device_serial = ?", [serial]).fetchone()[0]

    def check_out(
        self, serial: str, officer_id: str, at: datetime, battery_pct: float | None, by: str, docking_id: int
    ) -> None:
        with self.writer.write() as db:
            db.execute(
                "INSERT INTO checkouts (device_serial, officer_id, out_at, battery_pct, out_by, docking_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [serial, officer_id, to_iso(at), battery_pct, by, docking_id],
            )

    def check_in(self, serial: str, at: datetime, reason: str, by: str) -> str | None:
        """Close the camera's open checkout; return whose it was (None: it was not out)."""
        with self.writer.write() as db:
            row = db.execute(
                "SELECT officer_id FROM checkouts WHERE device_serial = ? AND in_at IS NULL", [serial]
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE checkouts SET in_at = ?, in_reason = ?, in_by = ? WHERE device_serial = ? AND in_at IS NULL",
                [to_iso(at), reason, by, serial],
            )
        return row[0]

    def open_count(self) -> int:
        with self.writer.read() as db:
            return db.execute("SELECT COUNT(*) FROM checkouts WHERE in_at IS NULL").fetchone()[0]

    def open_checkouts(self) -> list[Checkout]:
        return self._select("WHERE in_at IS NULL ORDER BY out_at", [])

    def history(self, serial: str | None = None, limit: int = 100) -> list[Checkout]:
        where, params = ("WHERE device_serial = ?", [serial]) if serial else ("", [])
        return self._select(f"{where} ORDER BY id DESC LIMIT ?", [*params, limit])

    def _select(self, tail: str, params: list) -> list[Checkout]:
        with self.writer.read() as db:
            rows = db.execute(
                "SELECT device_serial, officer_id, out_at, battery_pct, out_by, in_at, in_reason "
                f"FROM checkouts {tail}",
                params,
            ).fetchall()
        return [
            Checkout(
                device_serial=r[0],
                officer_id=r[1],
                out_at=from_iso(r[2]),
                battery_pct=r[3],
                out_by=r[4],
                in_at=from_iso(r[5]) if r[5] else None,
                in_reason=r[6],
            )
            for r in rows
        ]
