"""The roll-out at central: the plan, allocation proposals a planner commits, progress vs plan.

Allocation pairs concrete cameras from the registry with concrete officers, honouring each
borough's policy (central's ``[fleet]`` assignment modes): personal issue pairs one camera
with one officer; a pool borough gets cameras allocated to its stations in proportion to
their dock slots. A proposal changes nothing until a planner commits it; commit checks
every item again and applies all of them in one transaction (assignments, lifecycle,
history, audit, changes for the stations), or none, naming what went stale.

Progress counts, per borough and week: planned (the plan's officers equipped), delivered
(cameras allocated or issued to the borough), issued (a camera handed to an officer:
personal issue, or its first pool checkout) and in service (docked with clips).
"""

from __future__ import annotations

import functools
import itertools
import os
from collections import Counter, defaultdict
from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import FromQuery, JSONBody, PathParameter, QueryParameter

from central.access.auth import Caller, user_with
from central.access.scope import FORCE_WIDE, no_borough
from central.core.csvhttp import CSV, IMPORT_ERRORS, csv_body, csv_response
from central.core.database import Database
from central.core.openapi import errors
from central.core.providers import Injected
from central.evidence import audit
from central.registry import assignments
from central.registry.models import NOT_HANDED_OUT, withdrawal_of
from central.rollout import swap
from central.rollout.plan import Plan, Wave, week_of, week_start
from central.rollout.plan import plan as make_plan
from central.rollout.scenario import Rollout, load_rollout
from central.rollout.sizing import cameras_for, split_by_slots
from central.rollout.storage import StorageForecast, forecast
from fleet import csvio
from fleet.clock import from_iso, to_iso, utc_now
from fleet.config import CentralSettings
from fleet.errors import BadRequest, ConfigError, Conflict, NotFound, ServiceUnavailable
from fleet.events import DeviceEntry, OfficerId, PersonalIssue
from fleet.protocol import Serial

PLAN_ERRORS = errors(404, 503)
"""A route that reads the plan: 404 when no scenario is configured, 503 when its files are invalid."""

MAX_PROBLEMS = 20
ProposalPath = Annotated[int, PathParameter(ge=1, le=2**62, description="the proposal's number")]


class ProposalItem(msgspec.Struct, kw_only=True):
    """One row of a proposal (also its CSV row)."""

    device_serial: Serial
    borough: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    mode: Literal["personal", "pool"]
    officer_id: OfficerId | None = None
    """Personal issue: the officer who gets the camera."""
    station_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    """Pool: the station whose pool it joins."""
    replaces: Serial | None = None
    """The camera of a withdrawn model this one replaces (``central.rollout.replacements``)."""


class BoroughCount(msgspec.Struct, kw_only=True):
    borough: str
    mode: str
    cameras: int
    officers_left_without: int = 0
    """Officers the proposal could not equip: not enough cameras in stock."""


class Proposal(msgspec.Struct, kw_only=True):
    id: int
    state: str
    created_at: datetime
    created_by: str
    description: str
    decided_at: datetime | None = None
    decided_by: str | None = None
    boroughs: list[BoroughCount]
    items: list[ProposalItem]


class ProposeRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    boroughs: list[Annotated[str, msgspec.Meta(min_length=1, max_length=64)]] = []
    """Which boroughs; empty means every borough in the plan."""
    week: Annotated[int, msgspec.Meta(ge=1, le=520)] | None = None
    """Allocate what the plan has equipped by the end of this week (not yet issued)."""
    count: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    """Or at most this many cameras per borough; neither means everyone still without one."""


class ProgressRow(msgspec.Struct, kw_only=True):
    """Cumulative by the end of the week."""

    week: int
    starts: date
    borough: str
    """A borough, or "all"."""
    planned: int
    """Officers the plan has equipped."""
    delivered: int
    issued: int
    in_service: int


class Progress(msgspec.Struct, kw_only=True):
    current_week: int
    rows: list[ProgressRow]


def _proposal_detail(db, proposal_id: int, left_without: dict[str, int] | None = None) -> Proposal:
    head = db.execute(
        "SELECT id, state, created_at, created_by, description, decided_at, decided_by "
        "FROM rollout_proposals WHERE id = ?",
        [proposal_id],
    ).fetchone()
    if head is None:
        raise NotFound(f"no roll-out proposal {proposal_id}")
    items = [
        ProposalItem(device_serial=r[0], borough=r[1], mode=r[2], officer_id=r[3], station_id=r[4], replaces=r[5])
        for r in db.execute(
            "SELECT device_serial, borough, mode, officer_id, station_id, replaces FROM rollout_items "
            "WHERE proposal_id = ? "
            "ORDER BY borough, officer_id NULLS FIRST, station_id NULLS FIRST, device_serial",
            [proposal_id],
        )
    ]
    counts = Counter((i.borough, i.mode) for i in items)
    left_without = left_without or {}
    boroughs = [
        BoroughCount(borough=b, mode=m, cameras=n, officers_left_without=left_without.get(b, 0))
        for (b, m), n in sorted(counts.items())
    ]
    boroughs += [
        BoroughCount(borough=b, mode="personal", cameras=0, officers_left_without=n)
        for b, n in sorted(left_without.items())
        if n and not any(x.borough == b for x in boroughs)
    ]
    return Proposal(
        id=head[0],
        state=head[1],
        created_at=from_iso(head[2]),
        created_by=head[3],
        description=head[4],
        decided_at=from_iso(head[5]) if head[5] else None,
        decided_by=head[6],
        boroughs=boroughs,
        items=items,
    )


class RolloutService:
    """Plan, proposals, commit and progress over central's one store."""

    def __init__(self, writer: Database, changes, settings: CentralSettings) -> None:
        self.writer = writer
        self.changes = changes
        self.settings = settings

    # -- the plan ----------------------------------------------------------------------------

    def rollout(self) -> Rollout:
        return self._loaded()[0]

    def _loaded(self) -> tuple[Rollout, Plan]:
        files = self.settings.rollout
        if files.boroughs is None or files.scenario is None:
            raise NotFound(
                "no roll-out scenario is configured: set [rollout] boroughs and scenario in central's config"
            )
        try:
            return _load_cached(files.boroughs, files.scenario, _mtimes(files.boroughs, files.scenario))
        except ConfigError as exc:
            raise ServiceUnavailable(
                f"central's roll-out files are invalid, ask its operators to fix them: {exc}"
            ) from None

    def plan(self) -> Plan:
        rollout = self.rollout()
        plan = self._loaded()[1]
        differ = [
            b for b in rollout.boroughs if rollout.scenario.policy_of(b) != self.settings.fleet.assignment_mode(b)
        ]
        if not differ:
            return plan
        return msgspec.structs.replace(
            plan,
            warnings=[
                *plan.warnings,
                (
                    f"the scenario plans {', '.join(differ[:5])}{' and more' if len(differ) > 5 else ''} "
                    "with another policy than central's [fleet] assignment modes; allocation follows central's"
                ),
            ],
        )

    def storage(self) -> StorageForecast:
        rollout = self.rollout()
        return forecast(self.plan(), rollout.scenario)

    # -- proposals ---------------------------------------------------------------------------

    def propose(self, request: ProposeRequest, actor: str) -> Proposal:
        """Pair cameras in stock with officers still without one; nothing changes until commit."""
        rollout = self.rollout()
        wanted = list(dict.fromkeys(request.boroughs or rollout.order()))  # each borough once
        unknown = [b for b in wanted if b not in rollout.boroughs]
        if unknown:
            raise BadRequest(f"unknown borough {unknown[0]!r}: not in the roll-out's boroughs file")
        planned = _planned_by_week(self.plan(), request.week) if request.week is not None else None
        roles = rollout.scenario.roles
        now = to_iso(utc_now())
        items: list[ProposalItem] = []
        left_without: dict[str, int] = {}
        with self.writer.write() as db:
            stock = self._free_devices(db, None)
            for borough in wanted:
                # Cameras already delivered to the borough go first, then the force's stock.
                devices = self._free_devices(db, borough)
                mode = self.settings.fleet.assignment_mode(borough)
                if mode == "personal":
                    officers = self._officers_without_camera(db, borough, roles)
                    want = len(officers)
                    if planned is not None:
                        want = max(0, min(want, planned.get(borough, 0) - self._equipped_officers(db, borough)))
                    if request.count is not None:
                        want = min(want, request.count)
                    take = _take(devices, stock, want)
                    items += [
                        ProposalItem(device_serial=serial, borough=borough, mode="personal", officer_id=officer)
                        for serial, officer in zip(take, officers, strict=False)
                    ]
                    left_without[borough] = want - len(take)
                else:
                    officer_count = db.execute(
                        f"SELECT count(*) FROM officers WHERE borough = ? AND active != 0 AND role IN "
                        f"({', '.join('?' * len(roles))})",
                        [borough, *roles],
                    ).fetchone()[0]
                    if planned is not None:
                        officer_count = min(officer_count, planned.get(borough, 0))
                    target = cameras_for(officer_count, "pool", rollout.scenario.charging)
                    placed = self._pool_cameras(db, borough)
                    want = max(0, target - sum(placed.values()))
                    if request.count is not None:
                        want = min(want, request.count)
                    take = _take(devices, stock, want)
                    stations = _fill_stations(rollout.boroughs[borough].stations, placed, len(take))
                    items += [
                        ProposalItem(device_serial=serial, borough=borough, mode="pool", station_id=station)
                        for serial, station in zip(take, stations, strict=True)
                    ]
                    left_without[borough] = 0
            if not items:
                raise Conflict(
                    "nothing to allocate: every officer in scope has a camera (or the plan has not reached "
                    "them yet), or there are no cameras in stock"
                )
            description = _describe(request)
            proposal_id = self._store(db, items, actor, now, description)
            return _proposal_detail(db, proposal_id, left_without)

    def propose_replacements(self, model: str, boroughs: list[str], actor: str) -> Proposal:
        """Pair each camera of a withdrawn model still in service (``swap.needing_replacement``) with
        a camera free to hand out, its borough's first, then the stock's; nothing changes until commit."""
        now = to_iso(utc_now())
        with self.writer.write() as db:
            if withdrawal_of(db, model) is None:
                raise Conflict(f"model {model[:64]!r} is not withdrawn: withdraw it first (docs/firmware.md)")
            needs = swap.needing_replacement(db, model, boroughs)
            if not needs:
                raise Conflict(
                    f"nothing to replace: every camera of {model}"
                    + (f" in {', '.join(boroughs)}" if boroughs else "")
                    + " in service has a replacement proposed or committed, or none is in service"
                )
            stock = self._free_devices(db, None)
            items: list[ProposalItem] = []
            short: Counter[str] = Counter()
            for borough, group in itertools.groupby(needs, key=lambda n: n.borough):  # needs come by borough
                wanting = list(group)
                taken = _take(self._free_devices(db, borough), stock, len(wanting))
                short[borough] = len(wanting) - len(taken)
                items += [
                    ProposalItem(
                        device_serial=serial,
                        borough=borough,
                        mode=need.mode,
                        officer_id=need.officer_id,
                        station_id=need.station_id,
                        replaces=need.serial,
                    )
                    for serial, need in zip(taken, wanting, strict=False)
                ]
            if not items:
                raise Conflict(
                    f"no camera is free to replace {model}'s {len(needs)}: none in stock (nor delivered and "
                    "unplaced) of a model in service; register more, then propose again"
                )
            problems = self._problems(db, items, proposal_id=None)
            if problems:
                raise Conflict(_listing("the replacements cannot be proposed", problems))
            description = f"replacing withdrawn {model}" + (f" in {', '.join(boroughs)}" if boroughs else "")
            proposal_id = self._store(db, items, actor, now, description)
            return _proposal_detail(db, proposal_id, dict(short))

    def import_proposal(self, items: list[ProposalItem], actor: str, description: str = "imported CSV") -> Proposal:
        """A planner's own spreadsheet as a proposal: checked as at commit, then stored for review."""
        if not items:
            raise BadRequest("the CSV has no rows")
        rollout_boroughs = self.rollout().boroughs if self.settings.rollout.boroughs else None
        with self.writer.write() as db:
            problems = self._problems(db, items, proposal_id=None)
            if rollout_boroughs is not None:
                problems += [
                    f"{i.device_serial}: unknown borough {i.borough!r}"
                    for i in items
                    if i.borough not in rollout_boroughs
                ]
            if problems:
                raise Conflict(_listing("the proposal cannot be accepted", problems))
            proposal_id = self._store(db, items, actor, to_iso(utc_now()), description)
            return _proposal_detail(db, proposal_id)

    def proposal(self, proposal_id: int) -> Proposal:
        with self.writer.read() as db:
            return _proposal_detail(db, proposal_id)

    def proposals(self, state: str | None, limit: int) -> list[Proposal]:
        with self.writer.read() as db:
            ids = [
                r[0]
                for r in db.execute(
                    "SELECT id FROM rollout_proposals"
                    + (" WHERE state = ?" if state else "")
                    + " ORDER BY id DESC LIMIT ?",
                    [state, limit] if state else [limit],
                )
            ]
            summaries = []
            for proposal_id in ids:
                detail = _proposal_detail(db, proposal_id)
                summaries.append(msgspec.structs.replace(detail, items=[]))
            return summaries

    def discard(self, proposal_id: int, actor: str) -> Proposal:
        now = to_iso(utc_now())
        with self.writer.write() as db:
            self._open(db, proposal_id)
            db.execute(
                "UPDATE rollout_proposals SET state = 'discarded', decided_at = ?, decided_by = ? WHERE id = ?",
                [now, actor, proposal_id],
            )
            audit.record(
                db, actor=actor, action="rollout-discard", object_type="rollout_proposal", object_id=str(proposal_id)
            )
            return _proposal_detail(db, proposal_id)

    def commit(self, proposal_id: int, actor: str) -> Proposal:
        """Apply every item or none: assignments, lifecycle, history, audit, and the stations' changes."""
        now = to_iso(utc_now())
        since = from_iso(now)
        with self.writer.write() as db:
            self._open(db, proposal_id)
            items = _proposal_detail(db, proposal_id).items
            problems = self._problems(db, items, proposal_id=proposal_id)
            if problems:
                raise Conflict(
                    _listing(
                        f"proposal {proposal_id} is out of date; nothing was committed. Discard it and allocate again",
                        problems,
                    )
                )
            personal = [i for i in items if i.mode == "personal"]
            pool = [i for i in items if i.mode == "pool"]
            where = f"roll-out proposal {proposal_id}"
            models = assignments.allocate(db, items, actor, now, where)
            audit.record_many(
                db,
                [
                    dict(
                        actor=actor,
                        action="assign" if i.mode == "personal" else "allocate",
                        object_type="device",
                        object_id=i.device_serial,
                        at=since,
                        detail=f"{where}: "
                        + (
                            f"personal issue to {i.officer_id}, {i.borough}"
                            if i.mode == "personal"
                            else f"pool camera for {i.station_id}, {i.borough}"
                        ),
                    )
                    for i in items
                ],
            )
            audit.record_many(
                db,
                [
                    dict(
                        actor=actor,
                        action="replace",
                        object_type="device",
                        object_id=i.replaces,
                        at=since,
                        detail=f"{where}: replaced by {i.device_serial}; to be returned",
                    )
                    for i in items
                    if i.replaces is not None
                ],
            )
            for i in items:
                entry = DeviceEntry(
                    serial=i.device_serial,
                    model=models.get(i.device_serial, ""),
                    lifecycle="issued" if i.mode == "personal" else "allocated",
                    borough=i.borough,
                    home_station=i.station_id,
                    assignment_mode=i.mode,
                )
                self.changes.emit(db, entry, i.borough)
                if i.mode == "personal":
                    self.changes.emit(
                        db,
                        PersonalIssue(device_serial=i.device_serial, officer_id=i.officer_id, since=since),
                        i.borough,
                    )
            db.execute(
                "UPDATE rollout_proposals SET state = 'committed', decided_at = ?, decided_by = ? WHERE id = ?",
                [now, actor, proposal_id],
            )
            audit.record(
                db,
                actor=actor,
                action="rollout-commit",
                object_type="rollout_proposal",
                object_id=str(proposal_id),
                detail=f"{len(personal)} personal issues, {len(pool)} pool cameras",
                at=since,
            )
            return _proposal_detail(db, proposal_id)

    # -- progress ----------------------------------------------------------------------------

    def progress(self, borough: str | None = None, today: date | None = None) -> Progress:
        plan = self.plan()
        if borough is not None and borough not in {b.borough for b in plan.boroughs}:
            raise NotFound(f"no borough {borough!r} in the roll-out plan")
        start = plan.start
        today = today or utc_now().date()
        current = max(1, week_of(start, today))
        last_week = max(current, len(plan.weeks))
        # Each camera's first delivery, issue and service, as plan weeks (week_of, computed in SQL:
        # ~20,000 cameras, each three times); clamped to week 1 below, where None (not yet) stays None.
        with self.writer.read() as db:

            def plan_week(first: str) -> str:
                return f"{db.dialect.days_between(first, ':start')} / 7 + 1"

            first_delivery = plan_week(
                "(SELECT min(at) FROM device_history h WHERE h.serial = d.serial "
                "AND h.to_state IN ('allocated', 'issued', 'in_service'))"
            )
            first_issue = plan_week("(SELECT min(started_at) FROM assignments a WHERE a.device_serial = d.serial)")
            first_service = plan_week(
                "(SELECT min(at) FROM device_history h WHERE h.serial = d.serial AND h.to_state = 'in_service')"
            )
            firsts = db.execute(
                f"SELECT d.borough, {first_delivery}, {first_issue}, {first_service} FROM devices d "
                "WHERE d.borough IS NOT NULL" + (" AND d.borough = :borough" if borough else ""),
                {"start": start.isoformat(), "borough": borough},
            ).fetchall()
        counts: dict[str, defaultdict[str, Counter[int]]] = {
            kind: defaultdict(Counter) for kind in ("delivered", "issued", "in_service")
        }
        delivered_c, issued_c, in_service_c = counts["delivered"], counts["issued"], counts["in_service"]
        for b, delivered, issued, in_service in firsts:
            if delivered is not None:
                delivered_c[b][max(1, delivered)] += 1
            if issued is not None:
                issued_c[b][max(1, issued)] += 1
            if in_service is not None:
                in_service_c[b][max(1, in_service)] += 1
        planned_weekly: dict[str, Counter] = defaultdict(Counter)
        for wave in plan.waves:
            planned_weekly[wave.borough][wave.week] += wave.officers
        names = [borough] if borough else [b.borough for b in plan.boroughs]
        rows: list[ProgressRow] = []
        # Running totals per borough: [planned, delivered, issued, in_service] (the hot loop: 32 × ~60 weeks).
        running = {name: [0, 0, 0, 0] for name in names}
        weekly = {
            name: (planned_weekly[name], counts["delivered"][name], counts["issued"][name], counts["in_service"][name])
            for name in names
        }
        for week in range(1, last_week + 1):
            starts = week_start(start, week)
            total = [0, 0, 0, 0]
            for name in names:
                r, (planned, delivered, issued, in_service) = running[name], weekly[name]
                r[0] += planned[week]
                r[1] += delivered[week]
                r[2] += issued[week]
                r[3] += in_service[week]
                rows.append(
                    ProgressRow(
                        week=week,
                        starts=starts,
                        borough=name,
                        planned=r[0],
                        delivered=r[1],
                        issued=r[2],
                        in_service=r[3],
                    )
                )
                total[0] += r[0]
                total[1] += r[1]
                total[2] += r[2]
                total[3] += r[3]
            if not borough:
                rows.append(
                    ProgressRow(
                        week=week,
                        starts=starts,
                        borough="all",
                        planned=total[0],
                        delivered=total[1],
                        issued=total[2],
                        in_service=total[3],
                    )
                )
        return Progress(current_week=current, rows=rows)

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _free_devices(db, borough: str | None) -> list[str]:
        """Cameras free to hand out, in serial order: in stock (``borough`` None), or delivered to
        ``borough`` and not yet placed; never held, never in an open proposal, never of a withdrawn model."""
        where = (
            "lifecycle = 'in_stock'"
            if borough is None
            else "lifecycle = 'allocated' AND borough = ? AND home_station IS NULL "
            "AND (assignment_mode IS NULL OR assignment_mode = 'personal')"
        )
        return [
            r[0]
            for r in db.execute(
                f"""SELECT serial FROM devices d WHERE {where} AND {NOT_HANDED_OUT}
               AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.device_serial = d.serial AND a.ended_at IS NULL)
               AND NOT EXISTS (SELECT 1 FROM rollout_items i JOIN rollout_proposals p ON p.id = i.proposal_id
                               WHERE i.device_serial = d.serial AND p.state = 'proposed')
               ORDER BY serial""",
                [borough] if borough else [],
            )
        ]

    @staticmethod
    def _pool_cameras(db, borough: str) -> Counter:
        """Pool cameras a borough has per station (working ones, and those in open proposals)."""
        placed: Counter = Counter()
        for station, n in db.execute(
            "SELECT home_station, count(*) FROM devices WHERE borough = ? AND lifecycle NOT IN "
            "('retired', 'lost', 'repair', 'in_stock') AND (assignment_mode = 'pool' OR "
            "(assignment_mode IS NULL AND home_station IS NOT NULL)) GROUP BY home_station",
            [borough],
        ):
            placed[station] += n
        for station, n in db.execute(
            "SELECT i.station_id, count(*) FROM rollout_items i JOIN rollout_proposals p ON p.id = i.proposal_id "
            "WHERE p.state = 'proposed' AND i.borough = ? AND i.mode = 'pool' GROUP BY i.station_id",
            [borough],
        ):
            placed[station] += n
        return placed

    @staticmethod
    def _officers_without_camera(db, borough: str, roles) -> list[str]:
        return [
            r[0]
            for r in db.execute(
                f"""SELECT officer_id FROM officers o WHERE borough = ? AND active != 0
                AND role IN ({", ".join("?" * len(roles))})
                AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.officer_id = o.officer_id AND a.ended_at IS NULL)
                AND NOT EXISTS (SELECT 1 FROM rollout_items i JOIN rollout_proposals p ON p.id = i.proposal_id
                                WHERE i.officer_id = o.officer_id AND p.state = 'proposed')
                ORDER BY team, officer_id""",
                [borough, *roles],
            )
        ]

    @staticmethod
    def _equipped_officers(db, borough: str) -> int:
        """Officers of the borough issued a camera, or in an open proposal for one."""
        return (
            db.execute(
                """SELECT count(DISTINCT a.officer_id) FROM assignments a
                             JOIN officers o ON o.officer_id = a.officer_id
                             WHERE o.borough = ? AND a.mode = 'personal'""",
                [borough],
            ).fetchone()[0]
            + db.execute(
                """SELECT count(*) FROM rollout_items i JOIN rollout_proposals p ON p.id = i.proposal_id
                          WHERE p.state = 'proposed' AND i.borough = ? AND i.mode = 'personal'""",
                [borough],
            ).fetchone()[0]
        )

    @staticmethod
    def _open(db, proposal_id: int) -> None:
        row = db.execute("SELECT state FROM rollout_proposals WHERE id = ?", [proposal_id]).fetchone()
        if row is None:
            raise NotFound(f"no roll-out proposal {proposal_id}")
        if row[0] != "proposed":
            raise Conflict(f"proposal {proposal_id} is already {row[0]}")

    def _problems(self, db, items: list[ProposalItem], proposal_id: int | None) -> list[str]:
        """Everything that stops these items being applied now (set-based: one query per rule)."""
        problems: list[str] = []
        db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS checking (device_serial TEXT, officer_id TEXT, mode TEXT, "
            "borough TEXT, station_id TEXT, replaces TEXT)"
        )
        db.execute("DELETE FROM checking")
        db.executemany(
            "INSERT INTO checking VALUES (?, ?, ?, ?, ?, ?)",
            [(i.device_serial, i.officer_id, i.mode, i.borough, i.station_id, i.replaces) for i in items],
        )
        for serial, n in db.execute(
            "SELECT device_serial, count(*) FROM checking GROUP BY device_serial HAVING count(*) > 1"
        ):
            problems.append(f"{serial}: listed {n} times")
        for officer, n in db.execute(
            "SELECT officer_id, count(*) FROM checking WHERE officer_id IS NOT NULL "
            "GROUP BY officer_id HAVING count(*) > 1"
        ):
            problems.append(f"officer {officer}: listed {n} times (one camera per officer)")
        for serial, mode in db.execute(
            "SELECT device_serial, mode FROM checking WHERE "
            "(mode = 'personal' AND (officer_id IS NULL OR station_id IS NOT NULL)) OR "
            "(mode = 'pool' AND (station_id IS NULL OR officer_id IS NOT NULL))"
        ):
            problems.append(
                f"{serial}: a {mode} item needs "
                + ("an officer_id and no station_id" if mode == "personal" else "a station_id and no officer_id")
            )
        for serial, lifecycle, borough, home in db.execute(
            "SELECT c.device_serial, d.lifecycle, d.borough, d.home_station FROM checking c "
            "LEFT JOIN devices d ON d.serial = c.device_serial WHERE d.serial IS NULL OR NOT ("
            "d.lifecycle = 'in_stock' OR (d.lifecycle = 'allocated' AND d.borough = c.borough "
            "AND d.home_station IS NULL))"
        ):
            problems.append(
                f"{serial}: "
                + (
                    "not in the registry"
                    if lifecycle is None
                    else f"is {lifecycle}"
                    + (f" in {borough}" if borough else "")
                    + (f" at {home}" if home else "")
                    + ", not free to hand out"
                )
            )
        for serial, officer in db.execute(
            "SELECT c.device_serial, a.officer_id FROM checking c JOIN assignments a "
            "ON a.device_serial = c.device_serial AND a.ended_at IS NULL"
        ):
            problems.append(f"{serial}: already held by {officer}")
        for officer, active, borough, wanted in db.execute(
            "SELECT c.officer_id, o.active, o.borough, c.borough FROM checking c LEFT JOIN officers o "
            "ON o.officer_id = c.officer_id WHERE c.officer_id IS NOT NULL AND "
            "(o.officer_id IS NULL OR o.active = 0 OR o.borough != c.borough)"
        ):
            problems.append(
                f"officer {officer}: "
                + ("unknown" if active is None else "inactive" if not active else f"is in {borough}, not {wanted}")
            )
        for officer, serial in db.execute(
            "SELECT c.officer_id, a.device_serial FROM checking c JOIN assignments a "
            "ON a.officer_id = c.officer_id AND a.ended_at IS NULL WHERE c.officer_id IS NOT NULL "
            # A replacement's officer keeps the camera it replaces until that one is returned.
            "AND (c.replaces IS NULL OR a.device_serial != c.replaces)"
        ):
            problems.append(f"officer {officer}: already holds {serial}")
        problems += swap.problems(db, proposal_id)
        for serial, other in db.execute(
            "SELECT c.device_serial, i.proposal_id FROM checking c JOIN rollout_items i "
            "ON i.device_serial = c.device_serial JOIN rollout_proposals p ON p.id = i.proposal_id "
            "WHERE p.state = 'proposed'" + (" AND i.proposal_id != ?" if proposal_id is not None else ""),
            [proposal_id] if proposal_id is not None else [],
        ):
            problems.append(f"{serial}: also in open proposal {other}")
        station_borough = {station: entry.borough for station, entry in self.settings.stations.items()}
        if self.settings.rollout.boroughs:
            station_borough |= {st: name for name, b in self.rollout().boroughs.items() for st in b.stations}
        for i in items:
            policy = self.settings.fleet.assignment_mode(i.borough)
            if i.mode != policy:
                problems.append(f"{i.device_serial}: {i.borough}'s policy is {policy}, not {i.mode}")
            if i.station_id is None:
                continue
            if i.station_id not in station_borough:
                problems.append(f"{i.device_serial}: unknown station {i.station_id!r}")
            elif station_borough[i.station_id] != i.borough:
                problems.append(
                    f"{i.device_serial}: station {i.station_id} is in {station_borough[i.station_id]}, not {i.borough}"
                )
        db.execute("DELETE FROM checking")
        return problems

    @staticmethod
    def _store(db, items: list[ProposalItem], actor: str, now: str, description: str) -> int:
        proposal_id = db.execute(
            "INSERT INTO rollout_proposals (created_at, created_by, description) VALUES (?, ?, ?) RETURNING id",
            [now, actor, description],
        ).fetchone()[0]
        db.executemany(
            "INSERT INTO rollout_items (proposal_id, device_serial, borough, mode, officer_id, "
            "station_id, replaces) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(proposal_id, i.device_serial, i.borough, i.mode, i.officer_id, i.station_id, i.replaces) for i in items],
        )
        audit.record(
            db,
            actor=actor,
            action="rollout-propose",
            object_type="rollout_proposal",
            object_id=str(proposal_id),
            detail=f"{len(items)} cameras: {description}",
        )
        return proposal_id


def _take(first: list[str], then: list[str], count: int) -> list[str]:
    """Up to ``count`` serials from ``first``, then ``then``; taken serials leave both lists."""
    taken = first[:count]
    rest = count - len(taken)
    taken += then[:rest]
    chosen = set(taken)
    first[:] = [s for s in first if s not in chosen]
    then[:] = [s for s in then if s not in chosen]
    return taken


def _fill_stations(slots: dict[str, int], placed: Counter, count: int) -> list[str]:
    """Stations for ``count`` new pool cameras: toward each station's share by dock slots of the
    borough's whole pool, so wave after wave fills every station, not the first one."""
    goal = split_by_slots(sum(placed.values()) + count, slots)
    short = {station: max(0, goal[station] - placed.get(station, 0)) for station in goal}
    order: list[str] = []
    for station in sorted(short, key=lambda st: (-short[st], st)):
        order += [station] * short[station]
    while len(order) < count:  # more placed than the goal somewhere: spread the rest by slots
        order += [st for st, n in split_by_slots(count - len(order), slots).items() for _ in range(n)]
    return order[:count]


def _describe(request: ProposeRequest) -> str:
    parts = [", ".join(request.boroughs) if request.boroughs else "every borough"]
    if request.week is not None:
        parts.append(f"as planned by week {request.week}")
    if request.count is not None:
        parts.append(f"at most {request.count} per borough")
    return "; ".join(parts)


def _listing(lead: str, problems: list[str]) -> str:
    shown = problems[:MAX_PROBLEMS]
    more = f"\nand {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
    return lead + ":\n" + "\n".join(shown) + more


def _planned_by_week(plan: Plan, week: int) -> dict[str, int]:
    totals: Counter = Counter()
    for wave in plan.waves:
        if wave.week <= week:
            totals[wave.borough] += wave.officers
    return dict(totals)


def _mtimes(*paths: str) -> tuple[float, ...]:
    try:
        return tuple(os.stat(p).st_mtime_ns for p in paths)
    except OSError:
        return (0,)


@functools.lru_cache(maxsize=4)
def _load_cached(boroughs: str, scenario: str, mtimes: tuple[float, ...]) -> tuple[Rollout, Plan]:
    """Read and plan again only when a file changed (the mtimes are part of the key)."""
    rollout = load_rollout(boroughs, scenario)
    return rollout, make_plan(rollout)


PLAN_FIGURES = no_borough("the force's roll-out plan and its figures, by borough: no one's records")


class RolloutController(Controller):
    path = "/api/v1/rollout"
    tags = ["rollout"]

    @get(
        "/plan",
        summary="The roll-out plan: waves, feasibility, binding constraint, remedies",
        guards=[user_with("viewer")],
        scope=PLAN_FIGURES,
        responses=PLAN_ERRORS,
        sync_to_thread=True,
    )
    def get_plan(self, principal: Caller, rollout: Injected[RolloutService]) -> Plan:
        return rollout.plan()

    @get(
        "/plan.csv",
        summary="The plan's waves as CSV (week, borough, officers, cameras, spares)",
        guards=[user_with("viewer")],
        scope=PLAN_FIGURES,
        media_type=CSV,
        responses=PLAN_ERRORS,
        sync_to_thread=True,
    )
    def get_plan_csv(self, principal: Caller, rollout: Injected[RolloutService]) -> Response:
        return csv_response(rollout.plan().waves, Wave, "rollout-plan.csv")

    @get(
        "/storage",
        summary="Storage forecast, month by month",
        guards=[user_with("viewer")],
        scope=PLAN_FIGURES,
        responses=PLAN_ERRORS,
        sync_to_thread=True,
    )
    def get_storage(self, principal: Caller, rollout: Injected[RolloutService]) -> StorageForecast:
        return rollout.storage()

    @get(
        "/progress",
        summary="Planned vs delivered vs issued vs in service, per borough and week",
        guards=[user_with("viewer")],
        scope=PLAN_FIGURES,
        responses=PLAN_ERRORS,
        sync_to_thread=True,
    )
    def get_progress(
        self, principal: Caller, rollout: Injected[RolloutService], borough: FromQuery[str | None] = None
    ) -> Progress:
        return rollout.progress(borough)

    @get(
        "/progress.csv",
        summary="Progress as CSV",
        guards=[user_with("viewer")],
        scope=PLAN_FIGURES,
        media_type=CSV,
        responses=PLAN_ERRORS,
        sync_to_thread=True,
    )
    def get_progress_csv(
        self, principal: Caller, rollout: Injected[RolloutService], borough: FromQuery[str | None] = None
    ) -> Response:
        return csv_response(rollout.progress(borough).rows, ProgressRow, "rollout-progress.csv")

    @post(
        "/proposals",
        status_code=201,
        summary="Propose cameras for officers (reviewed, then committed)",
        guards=[user_with("planner")],
        scope=FORCE_WIDE,
        responses={**PLAN_ERRORS, **errors(409)},
        sync_to_thread=True,
    )
    def propose(self, principal: Caller, rollout: Injected[RolloutService], data: JSONBody[ProposeRequest]) -> Proposal:
        return rollout.propose(data, principal.name)

    @post(
        "/proposals/import.csv",
        status_code=201,
        summary="A proposal from a CSV of device_serial, borough, mode, officer_id, station_id",
        guards=[user_with("planner")],
        scope=FORCE_WIDE,
        responses={**IMPORT_ERRORS, **errors(409, 503)},
        dependencies=csv_body("proposal"),
        sync_to_thread=True,
    )
    def import_csv(self, principal: Caller, csv: Injected[str], rollout: Injected[RolloutService]) -> Proposal:
        return rollout.import_proposal(csvio.read_csv(csv, kind=ProposalItem), principal.name)

    @get(
        "/proposals",
        summary="Proposals, newest first (without their items)",
        guards=[user_with("viewer")],
        scope=PLAN_FIGURES,
        sync_to_thread=True,
    )
    def list_proposals(
        self,
        principal: Caller,
        rollout: Injected[RolloutService],
        state_is: Annotated[Literal["proposed", "committed", "discarded"] | None, QueryParameter(name="state")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[Proposal]:
        return rollout.proposals(state_is, limit)

    @get(
        "/proposals/{proposal_id:int}",
        summary="One proposal with its items",
        guards=[user_with("viewer")],
        scope=FORCE_WIDE,
        sync_to_thread=True,
    )
    def get_proposal(self, principal: Caller, rollout: Injected[RolloutService], proposal_id: ProposalPath) -> Proposal:
        return rollout.proposal(proposal_id)

    @get(
        "/proposals/{proposal_id:int}/items.csv",
        summary="A proposal's items as CSV",
        guards=[user_with("viewer")],
        scope=FORCE_WIDE,
        media_type=CSV,
        sync_to_thread=True,
    )
    def get_proposal_csv(
        self, principal: Caller, rollout: Injected[RolloutService], proposal_id: ProposalPath
    ) -> Response:
        return csv_response(rollout.proposal(proposal_id).items, ProposalItem, f"rollout-proposal-{proposal_id}.csv")

    @post(
        "/proposals/{proposal_id:int}/commit",
        status_code=200,
        summary="Commit a proposal: all items or none",
        guards=[user_with("planner")],
        scope=FORCE_WIDE,
        responses=errors(409),
        sync_to_thread=True,
    )
    def commit(self, principal: Caller, rollout: Injected[RolloutService], proposal_id: ProposalPath) -> Proposal:
        return rollout.commit(proposal_id, principal.name)

    @post(
        "/proposals/{proposal_id:int}/discard",
        status_code=200,
        summary="Discard a proposal",
        guards=[user_with("planner")],
        scope=FORCE_WIDE,
        responses=errors(409),
        sync_to_thread=True,
    )
    def discard(self, principal: Caller, rollout: Injected[RolloutService], proposal_id: ProposalPath) -> Proposal:
        return rollout.discard(proposal_id, principal.name)
