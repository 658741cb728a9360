"""Swapping a withdrawn model's cameras for others: which need a replacement, what stops one, how far it is.

A withdrawn camera (``central.registry.models``) is replaced like for like: one personally
issued gets a camera issued to the same officer, one in a station's pool a camera in the same
pool. Replacements are items of ordinary roll-out proposals (``replaces`` names the withdrawn
camera), reviewed and committed as any other. The officer keeps the withdrawn camera (and its
clips stay theirs) until it is handed in; it is **returned** once retired.

Each withdrawn camera is at one stage, the first of these that holds:

- ``returned``: retired;  ``lost``: lost (counted apart: it may turn up, and is then returned);
- ``replacement_issued``: a committed proposal replaced it, and the replacement has been in an
  officer's hands since (a personal issue is that at commit; a pool camera at its first checkout);
- ``replacement_allocated``: a committed proposal replaced it; the replacement not handed out yet;
- ``proposed``: an open proposal replaces it;
- ``in_stores``: in stock or in repair, with no replacement: it only needs retiring;
- ``in_service``: still with its borough, not replaced.

The swap is complete when every camera is returned (or lost).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

from central.registry.models import Withdrawal

Stage = Literal[
    "in_service", "in_stores", "proposed", "replacement_allocated", "replacement_issued", "returned", "lost"
]
STAGES: tuple[str, ...] = (
    "in_service",
    "in_stores",
    "proposed",
    "replacement_allocated",
    "replacement_issued",
    "returned",
    "lost",
)
STORES = "(stores)"
"""The row of cameras in no borough (in stock or in repair)."""

_LIVE_REPLACEMENT = (
    "SELECT 1 FROM rollout_items i JOIN rollout_proposals p ON p.id = i.proposal_id "
    "WHERE i.replaces = {serial} AND p.state IN ('proposed', 'committed')"
)


class SwapRow(msgspec.Struct, kw_only=True):
    """A borough's withdrawn cameras by stage (or every borough's: ``all``)."""

    borough: str
    cameras: int = 0
    in_service: int = 0
    in_stores: int = 0
    proposed: int = 0
    replacement_allocated: int = 0
    replacement_issued: int = 0
    returned: int = 0
    lost: int = 0


class SwapCamera(msgspec.Struct, kw_only=True):
    serial: str
    lifecycle: str
    borough: str | None
    home_station: str | None
    holder: str | None
    """The officer holding it now (personal issue, or a pool checkout in progress)."""
    holder_mode: str | None
    stage: Stage
    replacement: str | None = None
    proposal_id: int | None = None


class SwapStatus(msgspec.Struct, kw_only=True):
    model: str
    withdrawal: Withdrawal
    complete: bool
    """Every camera of the model returned (or lost)."""
    outstanding: int
    """Cameras not returned nor lost."""
    total: SwapRow
    boroughs: list[SwapRow]


@dataclass(frozen=True)
class Need:
    """A withdrawn camera in service that needs a replacement, and where the replacement goes."""

    serial: str
    borough: str
    mode: Literal["personal", "pool"]
    officer_id: str | None
    station_id: str | None


def needing_replacement(db, model: str, boroughs: list[str]) -> list[Need]:
    """The model's cameras in service with no replacement proposed or committed, by borough and
    serial: each personally issued one (for its officer, in the officer's borough) and each in a
    station's pool (for the same station). A camera in a borough with neither (delivered, never
    placed) needs no replacement, only returning."""
    rows = db.execute(
        f"""SELECT d.serial, d.borough, d.home_station, d.assignment_mode, a.officer_id, o.borough
            FROM devices d
            LEFT JOIN assignments a ON a.device_serial = d.serial AND a.ended_at IS NULL AND a.mode = 'personal'
            LEFT JOIN officers o ON o.officer_id = a.officer_id
            WHERE d.model = ? AND d.lifecycle IN ('allocated', 'issued', 'in_service')
              AND NOT EXISTS ({_LIVE_REPLACEMENT.format(serial="d.serial")})""",
        [model],
    ).fetchall()
    needs: dict[str, Need] = {}
    wanted = set(boroughs)
    for serial, borough, home, mode, officer, officer_borough in rows:
        if serial in needs:
            continue
        if officer is not None:
            need = Need(serial, officer_borough or borough, "personal", officer, None)
        elif home is not None and mode in (None, "pool") and borough is not None:
            need = Need(serial, borough, "pool", None, home)
        else:
            continue
        if not wanted or need.borough in wanted:
            needs[serial] = need
    return sorted(needs.values(), key=lambda n: (n.borough, n.serial))


def problems(db, proposal_id: int | None) -> list[str]:
    """What stops the items being checked (the roll-out's ``checking`` table) where withdrawn
    models are concerned: a camera of one handed out, a replacement of what is not a withdrawn
    camera in service, a camera replaced twice."""
    found = [
        f"{serial}: model {model} is withdrawn; its cameras are never handed out again"
        for serial, model in db.execute(
            "SELECT c.device_serial, d.model FROM checking c JOIN devices d ON d.serial = c.device_serial "
            "JOIN withdrawn_models w ON w.model = d.model"
        )
    ]
    found += [
        f"{replaced}: replaced {n} times in this proposal"
        for replaced, n in db.execute(
            "SELECT replaces, count(*) FROM checking WHERE replaces IS NOT NULL GROUP BY replaces HAVING count(*) > 1"
        )
    ]
    for serial, replaced, known, lifecycle, withdrawn in db.execute(
        "SELECT c.device_serial, c.replaces, d.serial, d.lifecycle, w.model FROM checking c "
        "LEFT JOIN devices d ON d.serial = c.replaces LEFT JOIN withdrawn_models w ON w.model = d.model "
        "WHERE c.replaces IS NOT NULL AND (d.serial IS NULL OR w.model IS NULL OR d.lifecycle IN ('retired', 'lost'))"
    ):
        why = (
            "not in the registry"
            if known is None
            else "not of a withdrawn model"
            if withdrawn is None
            else f"{lifecycle} already"
        )
        found.append(f"{serial}: replaces {replaced}, which is {why}")
    found += [
        f"{serial}: replaces {replaced}, which proposal {other} replaces already"
        for serial, replaced, other in db.execute(
            "SELECT c.device_serial, c.replaces, i.proposal_id FROM checking c "
            "JOIN rollout_items i ON i.replaces = c.replaces JOIN rollout_proposals p ON p.id = i.proposal_id "
            "WHERE p.state IN ('proposed', 'committed')" + (" AND i.proposal_id != ?" if proposal_id else ""),
            [proposal_id] if proposal_id else [],
        )
    ]
    return found


def cameras(db, model: str) -> list[SwapCamera]:
    """Every camera of the model with its stage, by borough (the stores first), holder and serial."""
    rows = db.execute(
        f"""SELECT d.serial, d.lifecycle, d.borough, d.home_station, a.officer_id, a.mode,
                   r.device_serial, r.proposal_id, r.state,
                   (SELECT count(*) FROM assignments x WHERE x.device_serial = r.device_serial
                      AND x.started_at >= r.decided_at)
            FROM devices d
            LEFT JOIN assignments a ON a.id = (SELECT id FROM assignments {db.dialect.indexed_by("assignments_open")}
                                               WHERE device_serial = d.serial AND ended_at IS NULL
                                               ORDER BY started_at DESC LIMIT 1)
            LEFT JOIN (SELECT i.replaces, i.device_serial, i.proposal_id, p.state, p.decided_at
                       FROM rollout_items i JOIN rollout_proposals p ON p.id = i.proposal_id
                       WHERE i.replaces IS NOT NULL AND p.state IN ('proposed', 'committed')) r
                   ON r.replaces = d.serial
            WHERE d.model = ?""",
        [model],
    ).fetchall()
    found: dict[str, SwapCamera] = {}
    for serial, lifecycle, borough, home, holder, holder_mode, replacement, proposal, state, handed in rows:
        stage: Stage
        if lifecycle == "retired":
            stage = "returned"
        elif lifecycle == "lost":
            stage = "lost"
        elif state == "committed":
            stage = "replacement_issued" if handed else "replacement_allocated"
        elif state == "proposed":
            stage = "proposed"
        elif lifecycle in ("in_stock", "repair"):
            stage = "in_stores"
        else:
            stage = "in_service"
        camera = SwapCamera(
            serial=serial,
            lifecycle=lifecycle,
            borough=borough,
            home_station=home,
            holder=holder,
            holder_mode=holder_mode,
            stage=stage,
            replacement=replacement,
            proposal_id=proposal,
        )
        if serial not in found or state == "committed":  # a committed replacement outranks an open one
            found[serial] = camera
    return sorted(found.values(), key=lambda c: (c.borough or "", c.holder or "", c.serial))


def status(model: str, withdrawal: Withdrawal, listed: list[SwapCamera]) -> SwapStatus:
    """The swap's figures, by borough and in all."""
    rows: dict[str, SwapRow] = {}
    total = SwapRow(borough="all")
    for camera in listed:
        row = rows.setdefault(camera.borough or STORES, SwapRow(borough=camera.borough or STORES))
        for counted in (row, total):
            counted.cameras += 1
            setattr(counted, camera.stage, getattr(counted, camera.stage) + 1)
    outstanding = total.cameras - total.returned - total.lost
    return SwapStatus(
        model=model,
        withdrawal=withdrawal,
        complete=outstanding == 0,
        outstanding=outstanding,
        total=total,
        boroughs=sorted(rows.values(), key=lambda r: (r.borough == STORES, r.borough)),
    )
