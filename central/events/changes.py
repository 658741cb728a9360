"""The changes feed: what stations mirror (officers, registry entries, personal issues, policy).

Every change is a row with a global cursor (SQLite's AUTOINCREMENT, PostgreSQL's identity:
never reused; cursors follow commit order, as writes are serialised, by BEGIN IMMEDIATE or the
advisory lock) and the borough it concerns (NULL: every borough). A station asks for changes
after its cursor; with none, central holds the request (long poll) until one arrives or
``wait`` runs out. History is trimmed to the
configured length; a cursor older than that is answered 410 ``cursor_expired`` and the
station reloads ``/changes/snapshot``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Annotated

import anyio.to_thread
import msgspec
from litestar import Controller, get
from litestar.params import QueryParameter

from central.access.auth import Caller, Principal, station_or_user_with
from central.access.scope import in_query, touches
from central.core.database import Database
from central.core.notifications import CHANGES, notify
from central.core.openapi import errors
from central.core.providers import Injected
from central.evidence.holds import held_clips_of_borough
from central.firmware.deployments import active_offers
from central.registry import assignments
from central.registry import devices as registry_devices
from central.registry import officers as registry_officers
from fleet.config import CentralSettings
from fleet.errors import BadRequest, CursorExpired
from fleet.events import (
    CameraUpdate,
    Change,
    ChangeItem,
    ChangePage,
    ClipHold,
    DeviceEntry,
    Officer,
    PersonalIssue,
    Snapshot,
    StationPolicy,
)

PAGE_LIMIT = 1000
HISTORY_SQL = "SELECT (SELECT MIN(cursor) FROM changes), (SELECT COALESCE(MAX(cursor), 0) FROM changes)"
"""The oldest and newest cursor, read by every long poll. Two subqueries: SQLite answers a lone
MIN or MAX from the key's ends, but ``SELECT MIN(cursor), MAX(cursor)`` scans every row
(16 ms at 100,000 changes; ``fleet simulate`` found it at 40 % of central's busy time)."""
MAX_WAIT_S = 30.0
_encoder = msgspec.json.Encoder()
_item_decoder = msgspec.json.Decoder(ChangeItem)


def _key(item: ChangeItem) -> tuple[str, str]:
    match item:
        case Officer():
            return "officer", item.officer_id
        case DeviceEntry():
            return "device", item.serial
        case PersonalIssue():
            return "personal_issue", item.device_serial
        case StationPolicy():
            return "policy", ""
        case ClipHold():
            return "clip_hold", item.clip_id
        case CameraUpdate():
            return "camera_update", item.serial


def policy_for(settings: CentralSettings, borough: str) -> StationPolicy:
    fleet = settings.fleet
    return StationPolicy(
        assignment_mode=fleet.assignment_mode(borough),
        min_checkout_pct=fleet.min_checkout_pct,
        recharge_hours=fleet.recharge_hours,
        shift_hours=fleet.shift_hours,
        rated_runtime_hours=fleet.rated_runtime_hours,
        replace_below_soh_pct=fleet.replace_below_soh_pct,
        over_temperature_c=fleet.over_temperature_c,
    )


class ChangeLog:
    """Writes and reads of the feed; ``emit`` runs inside the caller's transaction."""

    def __init__(self, writer: Database, settings: CentralSettings) -> None:
        self.writer = writer
        self.settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: dict[str, asyncio.Event] = {}
        """Per borough, the event its long polls wait on: a change wakes only the stations it concerns."""
        self._touched: set[str] = set()
        self._touched_lock = threading.Lock()
        self._closing = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Long polls wake on changes made in this process (others are found by polling)."""
        self._loop = loop

    def emit(self, db, item: ChangeItem, *boroughs: str | None) -> None:
        self.emit_many(db, [(item, boroughs)])

    def heard(self, borough: str | None) -> None:
        """Another replica committed a change for ``borough`` (None: anything may have changed)."""
        if self._loop is None:
            return
        if borough is None:
            self._loop.call_soon_threadsafe(self._wake, True)
            return
        self._touch([borough])

    def _touch(self, boroughs: list[str]) -> None:
        """Wake these boroughs' long polls in this process: one wake-up for a whole run of changes
        (a projection batch emits hundreds), not one each."""
        if self._loop is None or not boroughs:
            return
        with self._touched_lock:
            first = not self._touched
            self._touched.update(boroughs)
        if first:
            self._loop.call_soon_threadsafe(self._wake)

    def emit_many(self, db, items: list[tuple[ChangeItem, tuple[str | None, ...]]]) -> None:
        """``emit`` for many items at once (a bulk import): (item, the boroughs it concerns) each,
        in one statement and one notification a borough."""
        rows = []
        for item, boroughs in items:
            kind, key = _key(item)
            body = _encoder.encode(item)
            rows += [(b, kind, key, body) for b in dict.fromkeys(b for b in boroughs if b)]
        if not rows:
            return
        db.executemany("INSERT INTO changes (borough, kind, key, body) VALUES (?, ?, ?, ?)", rows)
        concerned = list(dict.fromkeys(r[0] for r in rows))
        for borough in concerned:
            notify(db, CHANGES, borough)  # the long polls on the other replicas
        self._touch(concerned)

    def close(self) -> None:
        """Shutting down: every long poll returns now (callable from a signal handler)."""
        self._closing = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake, True)

    def _wake(self, everyone: bool = False) -> None:
        with self._touched_lock:
            touched, self._touched = self._touched, set()
        for borough in list(self._changed) if everyone else touched:
            event = self._changed.pop(borough, None)
            if event is not None:
                event.set()

    def publish_policies(self) -> int:
        """At start-up: send each borough's station policy if it differs from the last one sent."""
        boroughs = sorted({entry.borough for entry in self.settings.stations.values()})
        sent = 0
        with self.writer.write() as db:
            for borough in boroughs:
                policy = policy_for(self.settings, borough)
                row = db.execute(
                    "SELECT body FROM changes WHERE kind = 'policy' AND borough = ? ORDER BY cursor DESC LIMIT 1",
                    [borough],
                ).fetchone()
                if row is None or bytes(row[0]) != _encoder.encode(policy):
                    self.emit(db, policy, borough)
                    sent += 1
        return sent

    def page(self, borough: str, since: int, limit: int = PAGE_LIMIT) -> ChangePage:
        with self.writer.snapshot() as db:  # one consistent view of the page and the head cursor
            oldest, head = db.execute(HISTORY_SQL).fetchone()
            if since > head or (oldest is not None and since < oldest - 1):
                raise CursorExpired(
                    f"cursor {since} is outside central's history ({oldest}..{head}); reload /api/v1/changes/snapshot"
                )
            rows = db.execute(
                "SELECT cursor, body FROM changes WHERE (borough = ? OR borough IS NULL) "
                "AND cursor > ? ORDER BY cursor LIMIT ?",
                [borough, since, limit + 1],
            ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        changes = [Change(cursor=r[0], item=_item_decoder.decode(r[1])) for r in rows]
        # With nothing (more) for this borough, jump to the head: other boroughs' changes are skipped.
        return ChangePage(changes=changes, cursor=rows[-1][0] if more else head, more=more)

    async def wait_page(self, borough: str, since: int, wait_s: float) -> ChangePage:
        deadline = time.monotonic() + min(wait_s, MAX_WAIT_S)
        while True:
            changed = self._changed.setdefault(borough, asyncio.Event())
            # On a worker thread: a writer's transaction (the projection's) must not stall the event loop.
            page = await anyio.to_thread.run_sync(self.page, borough, since)
            remaining = deadline - time.monotonic()
            if page.changes or remaining <= 0 or self._closing:
                return page
            try:
                await asyncio.wait_for(changed.wait(), timeout=min(1.0, remaining))
            except TimeoutError:
                pass

    def snapshot(self, borough: str) -> Snapshot:
        with self.writer.snapshot() as db:  # the cursor and what it reflects, of one moment
            head = db.execute("SELECT COALESCE(MAX(cursor), 0) FROM changes").fetchone()[0]
            officers = registry_officers.of_borough(db, borough)
            devices = registry_devices.entries_of_borough(db, borough)
            issues = assignments.personal_issues_of_borough(db, borough)
            held = held_clips_of_borough(db, borough, self.settings)
            offers = active_offers(db, borough)
        return Snapshot(
            cursor=head,
            officers=officers,
            devices=devices,
            personal_issues=issues,
            policy=policy_for(self.settings, borough),
            held_clips=held,
            camera_updates=offers,
        )

    def trim(self) -> int:
        """Keep the newest ``change_history`` changes (the maintenance job calls this)."""
        with self.writer.write() as db:
            head = db.execute("SELECT COALESCE(MAX(cursor), 0) FROM changes").fetchone()[0]
            return db.execute(
                "DELETE FROM changes WHERE cursor <= ?", [head - self.settings.fleet.change_history]
            ).rowcount


def _borough_of(principal: Principal, borough: str | None) -> str:
    """Stations read their own borough's feed (their scope allows no other); users name the
    borough they want to see."""
    if principal.is_station:
        return borough or principal.station()[1]
    if borough is None:
        raise BadRequest("name the borough whose changes you want (?borough=...)")
    return borough


class ChangesController(Controller):
    path = "/api/v1/changes"
    tags = ["sync"]
    guards = [station_or_user_with("fleet_manager")]

    @get(
        "/",
        summary="Changes for a station's borough after a cursor (long poll)",
        responses=errors(410),
        scope=touches(in_query("borough", "borough")),
        on_loop="a long poll waits for changes (ChangeLog.wait_page reads on a worker thread)",
    )
    async def changes(
        self,
        principal: Caller,
        changes: Injected[ChangeLog],
        since: Annotated[int, QueryParameter(ge=0, description="the cursor of the last change applied")] = 0,
        wait: Annotated[
            float,
            QueryParameter(ge=0, le=MAX_WAIT_S, description="seconds to hold the request when there is nothing new"),
        ] = 0.0,
        borough: Annotated[str | None, QueryParameter(description="users only: which borough")] = None,
    ) -> ChangePage:
        return await changes.wait_page(_borough_of(principal, borough), since, wait)

    @get(
        "/snapshot",
        summary="Everything a station mirrors, with the cursor to follow on from",
        scope=touches(in_query("borough", "borough")),
        sync_to_thread=True,
    )
    def snapshot(
        self,
        principal: Caller,
        changes: Injected[ChangeLog],
        borough: Annotated[str | None, QueryParameter(description="users only")] = None,
    ) -> Snapshot:
        return changes.snapshot(_borough_of(principal, borough))
