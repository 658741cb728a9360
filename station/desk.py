"""The station desk: pool cameras checked out to officers for a shift, and checked back in.

It decides from the station's own database alone, so it works while central is down: the
officers and registry entries mirrored from the feed, the dockings seen here, and the open
checkouts. Each checkout or check-in and its outbox event commit in one transaction.
Conflicts only central can see (the same officer checked out at two stations while offline)
are found there, from the events, and listed for a supervisor.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import msgspec

from fleet.battery import unfit_for_shift
from fleet.clock import utc_now
from fleet.errors import BadRequest, BatteryGateRefused, Conflict, NotFound
from fleet.events import CheckedIn, CheckedOut, OfficerId, StationPolicy
from fleet.protocol import UNPRINTABLE, Battery, DeviceInfo, Serial
from station.store import StationStore
from station.store.checkouts import Checkout

UNAVAILABLE = {"repair": "in repair", "lost": "reported lost", "retired": "retired", "in_stock": "still in stock"}


@dataclass(frozen=True)
class Charge:
    """What the desk knows of a docked camera's charge: the dock's reading, then charging since."""

    level_at_dock: float | None
    docked_at: datetime
    estimated_pct: float | None
    docking_id: int
    """The docking's row here: dockings and checkouts are ordered by row ids, never by the clock."""
    battery: Battery | None = None
    """The pack as the dock read it (health, temperature), for the battery gate."""


def estimate_charge(
    level_at_dock: float | None, docked_at: datetime, now: datetime, policy: StationPolicy
) -> float | None:
    """The dock reports the level when docked; a dock charges empty → full in ``recharge_hours``."""
    if level_at_dock is None:
        return None
    hours = max(0.0, (now - docked_at).total_seconds() / 3600)
    return min(100.0, level_at_dock + hours * 100.0 / policy.recharge_hours)


def _valid(kind, value: str, what: str) -> str:
    """The id as typed at the desk, trimmed and checked like central will check it."""
    try:
        return msgspec.convert(value.strip(), kind)
    except msgspec.ValidationError:
        raise BadRequest(f"{value.strip()!r} is not a valid {what}") from None


def _printable(value: str, what: str) -> str:
    """Free text sent to central with a checkout (who, why): central's audit keeps it, where
    PostgreSQL keeps no NUL (it refused the whole checkout), and its pages show it."""
    if UNPRINTABLE.search(value):
        raise BadRequest(f"the {what} has a control character or a bidirectional mark: type it again")
    return value


@dataclass(frozen=True)
class Standing:
    """A pool camera docked here as the desk sees it now (the desk page's rack)."""

    serial: str
    state: Literal["available", "out", "charging", "refused", "undocked", "unavailable"]
    """``refused``: by the battery gate (a supervisor may override); ``undocked``: checked in by hand."""
    why: str
    officer_id: str | None = None
    since: datetime | None = None
    """When it went out, for a camera ``out``."""


class Desk:
    def __init__(
        self,
        store: StationStore,
        station_id: str,
        borough: str | None = None,
        *,
        on_event: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.mirror = store.mirror
        self.station_id = station_id
        self.borough = borough
        self.on_event = on_event or (lambda: None)

    def policy(self) -> StationPolicy:
        return self.mirror.policy() or StationPolicy()

    def charge(self, serial: str, now: datetime | None = None, policy: StationPolicy | None = None) -> Charge | None:
        """The camera's charge from its last docking here, unless it was checked out from that docking."""
        now = now or utc_now()
        with self.store.writer.read():
            dock = self.store.queue.last_docking(serial)
            last_out = self.store.checkouts.last_docking_id(serial)
        if dock is None or (last_out is not None and last_out >= dock.docking_id):
            return None
        try:
            level = (json.loads(dock.device_json).get("battery") or {}).get("level_pct")
        except ValueError:
            level = None
        try:
            pack = msgspec.json.decode(dock.device_json, type=DeviceInfo).battery
        except msgspec.ValidationError:  # a reading this version cannot judge: the gate knows nothing against it
            pack = None
        return Charge(
            level,
            dock.ingested_at,
            estimate_charge(level, dock.ingested_at, now, policy or self.policy()),
            dock.docking_id,
            pack,
        )

    def checkout(
        self, serial: str, officer_id: str, *, by: str, override: str | None = None, now: datetime | None = None
    ) -> Checkout:
        """Hand a pool camera to an officer, or refuse with the reason and what to do instead (409).

        ``override``: a supervisor's reason for handing out a camera the battery gate refuses
        (sent to central with the checkout and audited there); it never overrides the charge."""
        now = now or utc_now()
        override = _printable(override or "", "reason").strip() or None
        serial, officer_id = _valid(Serial, serial, "camera serial"), _valid(OfficerId, officer_id, "officer id")
        by = _printable(by, "name of who hands it out")
        policy = self.policy()
        officer = self.mirror.officer(officer_id)
        if officer is None:
            raise NotFound(
                f"officer {officer_id} is not on this station's list (synced from central); "
                "check the number, or wait for the next sync if they were added today"
            )
        if not officer.active:
            raise Conflict(f"officer {officer_id} is marked inactive")
        if self.borough is not None and officer.borough != self.borough:
            raise Conflict(f"officer {officer_id} now belongs to {officer.borough}, not {self.borough}")
        device = self.mirror.device(serial)
        if device is not None and device.lifecycle in UNAVAILABLE:
            raise Conflict(f"camera {serial} is {UNAVAILABLE[device.lifecycle]}; it cannot be checked out")
        mode = device.assignment_mode if device and device.assignment_mode else policy.assignment_mode
        checkouts = self.store.checkouts
        with self.store.writer.write():
            if (issued := self.mirror.issued_to(serial)) is not None:
                raise Conflict(f"camera {serial} is personally issued to officer {issued}, not a pool camera")
            if mode == "personal":
                raise Conflict(f"camera {serial} is for personal issue (not pool); a supervisor assigns it at central")
            if (own := self.mirror.personal_camera(officer_id)) is not None:
                raise Conflict(f"officer {officer_id} has personal-issue camera {own}; one camera per officer")
            if (held := checkouts.holder(serial)) is not None:
                raise Conflict(f"camera {serial} is already checked out to officer {held}")
            if (holding := checkouts.held_by(officer_id)) is not None:
                raise Conflict(f"officer {officer_id} already has camera {holding} checked out; check it in first")
            charge = self.charge(serial, now)
            if charge is None:
                raise Conflict(
                    f"camera {serial} has not been docked here since it was last out: dock it first, "
                    "so its clips are taken off and its charge is known"
                )
            if charge.estimated_pct is None or charge.estimated_pct < policy.min_checkout_pct:
                known = "unknown" if charge.estimated_pct is None else f"about {charge.estimated_pct:.0f}%"
                raise Conflict(
                    f"camera {serial} is charged to {known}; pool checkouts need at least "
                    f"{policy.min_checkout_pct:.0f}%{self._instead(serial, now)}"
                )
            unfit = unfit_for_shift(charge.battery, policy.health())
            if unfit and override is None:
                raise BatteryGateRefused(
                    f"camera {serial} should not go out: {'; '.join(unfit)}{self._instead(serial, now)}, "
                    "or a supervisor may hand this one out with a reason"
                )
            checkouts.check_out(serial, officer_id, now, charge.estimated_pct, by, charge.docking_id)
            self.store.outbox.append(
                [
                    CheckedOut(
                        device_serial=serial,
                        officer_id=officer_id,
                        battery_pct=round(charge.estimated_pct, 1),
                        by=by,
                        override=override if unfit else None,
                    )
                ],
                at=now,
            )
        self.on_event()
        return Checkout(
            device_serial=serial, officer_id=officer_id, out_at=now, battery_pct=charge.estimated_pct, out_by=by
        )

    def standing(
        self, serial: str, now: datetime | None = None, policy: StationPolicy | None = None
    ) -> Standing | None:
        """Where a camera docked here stands at the desk now; None for a camera that is not the
        pool's (personally issued, or for personal issue). The same checks as ``checkout``."""
        now = now or utc_now()
        policy = policy or self.policy()
        last = self.store.checkouts.history(serial, limit=1)
        if last and last[0].in_at is None:
            out = last[0]
            return Standing(
                serial, "out", f"with officer {out.officer_id}", officer_id=out.officer_id, since=out.out_at
            )
        device = self.mirror.device(serial)
        mode = device.assignment_mode if device and device.assignment_mode else policy.assignment_mode
        if mode == "personal" or self.mirror.issued_to(serial) is not None:
            return None
        if device is not None and device.lifecycle in UNAVAILABLE:
            return Standing(serial, "unavailable", UNAVAILABLE[device.lifecycle])
        charge = self.charge(serial, now, policy)
        if charge is None:
            return Standing(serial, "undocked", "not docked here since it was last out: dock it first")
        if charge.estimated_pct is None or charge.estimated_pct < policy.min_checkout_pct:
            known = "unknown" if charge.estimated_pct is None else f"about {charge.estimated_pct:.0f}%"
            return Standing(serial, "charging", f"charged to {known}; needs {policy.min_checkout_pct:.0f}%")
        if unfit := unfit_for_shift(charge.battery, policy.health()):
            return Standing(serial, "refused", "; ".join(unfit))
        return Standing(serial, "available", f"charged to about {charge.estimated_pct:.0f}%")

    def rack(self, now: datetime | None = None, limit: int = 500) -> list[Standing]:
        """The pool cameras docked here, each as it stands now, the most recently docked first."""
        now, policy = now or utc_now(), self.policy()
        found = (self.standing(serial, now, policy) for serial in self.store.queue.recently_docked(limit=limit))
        return [standing for standing in found if standing is not None]

    def ready(self, now: datetime | None = None, limit: int = 3, *, but: str | None = None) -> list[str]:
        """Pool cameras in this station's docks that would pass every check now: charged, fit for
        a shift, not out, not personal issue or unavailable. Up to ``limit``, most recently docked first."""
        now, policy = now or utc_now(), self.policy()
        found = []
        for serial in self.store.queue.recently_docked(limit=500):
            if serial == but:
                continue
            standing = self.standing(serial, now, policy)
            if standing is not None and standing.state == "available":
                found.append(serial)
                if len(found) == limit:
                    break
        return found

    def _instead(self, serial: str, now: datetime) -> str:
        ready = self.ready(now, but=serial)
        if ready:
            return f"; take another camera instead (ready now: {', '.join(ready)})"
        return "; no other camera here is ready now: dock one to charge, or ask a neighbouring station"

    def checkin(self, serial: str, *, by: str, now: datetime | None = None) -> Checkout:
        """Take a camera back by hand (docking it checks it in by itself)."""
        now = now or utc_now()
        serial, by = _valid(Serial, serial, "camera serial"), _printable(by, "name of who takes it back")
        with self.store.writer.write():
            officer_id = self.store.checkouts.check_in(serial, now, "manual", by)
            if officer_id is None:
                raise NotFound(f"camera {serial} is not checked out at this station")
            self.store.outbox.append(
                [CheckedIn(device_serial=serial, officer_id=officer_id, reason="manual", by=by)], at=now
            )
        self.on_event()
        return self.history(serial, limit=1)[0]

    def open_checkouts(self) -> list[Checkout]:
        return self.store.checkouts.open_checkouts()

    def history(self, serial: str | None = None, limit: int = 100) -> list[Checkout]:
        return self.store.checkouts.history(serial, limit)
