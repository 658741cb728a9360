"""A camera's settings over time: each change of its effective profile, and whether the camera
confirmed carrying it.

The only writer of ``camera_settings``. A row is one version of a camera's effective profile
(``central.firmware.profiles``), written where it changes, in that change's transaction:

- a profile is set or removed (``ProfileService.set``): every camera the scope applies to;
- the registry moves a camera (borough, a personal issue begun or ended, its holder's role
  changed): ``observe`` with the cameras it touched;
- a camera reports a profile deployment applied (its ``device.json`` after the update, the station
  having checked its ``profile_sha256`` against the offer): ``confirm`` marks the version the
  deployment offered it as **confirmed**, with when and where.

A row is written only when the settings differ from the camera's latest, so a change that leaves a
camera's settings as they were (a profile of another borough) writes nothing for it. A version
never confirmed is **pending** while it is the latest, **superseded** once another came after it
(the camera never carried it). The settings a camera reports are never taken from it: a camera
says only that it applied what was offered (and its hash), so what is shown is central's own
record of the offer, never the camera's words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal

import msgspec

from central.core.pagination import cursor_id, decode_cursor, encode_cursor
from central.firmware.resolution import cameras_resolved
from fleet.clock import from_iso, to_iso, utc_now
from fleet.errors import BadRequest
from fleet.events import CameraUpdateResult
from fleet.profiles import PRECEDENCE, CameraSettings, ResolvedSetting, effective, explain

Status = Literal["confirmed", "pending", "superseded"]
PAGE = 50
MAX_PAGE = 200

_encoder = msgspec.json.Encoder()
_sources = msgspec.json.Decoder(list[ResolvedSetting])


class SettingsVersion(msgspec.Struct, kw_only=True):
    """One version of a camera's settings: what they were, where each came from, why they changed
    and whether the camera confirmed carrying them."""

    id: int
    at: datetime
    """When central's view of the camera's settings changed (or, for a version first heard of in a
    camera's report, when the report was applied)."""
    cause: str
    """What changed them: ``profile borough:Camden set``, ``issued to PC1234 (armed)``, ..."""
    actor: str
    settings: CameraSettings
    source: str
    """Where they came from, the most specific scope first: ``from: role armed, borough Camden, force default``."""
    lines: list[str]
    """Each setting and its scope: ``mount = head from: role armed (over borough Camden = shoulder)``."""
    status: Status
    confirmed_at: datetime | None = None
    """When the camera's report that it applied them was applied at central."""
    deployment_id: int | None = None
    """The profile deployment that delivered them."""
    station_id: str | None = None
    """The station that read the camera's report."""


class SettingsHistory(msgspec.Struct, kw_only=True):
    serial: str
    carried: SettingsVersion | None
    """The settings the camera last confirmed (None: it never confirmed any)."""
    items: list[SettingsVersion]
    """Newest first, a page at a time."""
    next_cursor: str | None = None


def _printable(text: str) -> str:
    """A cause as one printable line: a person's reason may hold line breaks, terminal escapes or a
    bidirectional override, which would forge lines in ``fleet central profile history``'s output."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _text(settings: CameraSettings) -> str:
    """A camera's whole settings as JSON, the form a profile deployment's offer keeps them in."""
    return _encoder.encode(msgspec.structs.asdict(settings)).decode()


def _from(resolved: list[ResolvedSetting]) -> str:
    scopes = {r.source for r in resolved}
    order = sorted(
        scopes, key=lambda s: -1 if s == "built-in" else next(i for i, k in enumerate(PRECEDENCE) if _kind(s) == k)
    )
    return "from: " + ", ".join(reversed(order))


def _kind(label: str) -> str:
    return "default" if label == "force default" else label.split(" ", 1)[0]


def _latest(db, serials: Sequence[str]) -> dict[str, tuple[str, str | None, int | None, str | None]]:
    """{serial: (its latest settings, and the camera's confirmation of those settings as it stands:
    when, by which deployment, at which station)}."""
    rows = db.execute(
        "SELECT serial, settings, confirmed_at, deployment_id, station_id FROM camera_settings WHERE id IN ("
        f"SELECT max(id) FROM camera_settings WHERE {db.dialect.any_of('serial')} GROUP BY serial)",
        [db.dialect.many(serials)],
    ).fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def _carried(db, serials: Sequence[str]) -> dict[str, tuple[str, str, int | None, str | None]]:
    """{serial: (the settings it last confirmed, when, deployment, station)}."""
    rows = db.execute(
        "SELECT serial, settings, confirmed_at, deployment_id, station_id FROM ("
        "SELECT serial, settings, confirmed_at, deployment_id, station_id, "
        "row_number() OVER (PARTITION BY serial ORDER BY confirmed_at DESC, id DESC) AS n "
        f"FROM camera_settings WHERE confirmed_at IS NOT NULL AND {db.dialect.any_of('serial')}) c WHERE n = 1",
        [db.dialect.many(serials)],
    ).fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def observe(db, serials: Iterable[str], cause: str, actor: str, now: str | None = None) -> int:
    """These cameras' effective profiles may have changed (inside the change's transaction): a row
    for each whose settings now differ from its latest. Settings the camera already carries (a
    profile set back) are confirmed at once, by the confirmation they had. How many rows were written."""
    serials = list(dict.fromkeys(serials))
    if not serials:
        return 0
    now = now or to_iso(utc_now())
    resolved = cameras_resolved(db, serials)
    latest = _latest(db, list(resolved))
    rows: list[dict[str, object]] = []
    texts: dict[int, tuple[str, str]] = {}  # cameras alike share their resolution (``cameras_resolved``)
    cause, actor = _printable(cause)[:500], _printable(actor)[:200]
    for serial, (_, settings) in resolved.items():
        if id(settings) not in texts:
            texts[id(settings)] = (_text(effective(settings)), _encoder.encode(settings).decode())
        text, sources = texts[id(settings)]
        if serial in latest and latest[serial][0] == text:
            continue
        rows.append({"serial": serial, "at": now, "cause": cause, "actor": actor, "settings": text, "sources": sources})
    if not rows:
        return 0
    carried = _carried(db, [str(r["serial"]) for r in rows])
    for r in rows:
        if (c := carried.get(str(r["serial"]))) is not None and c[0] == r["settings"]:
            r.update(confirmed_at=c[1], deployment_id=c[2], station_id=c[3])
    db.execute(
        "INSERT INTO camera_settings (serial, at, cause, actor, settings, sources, confirmed_at, deployment_id, "
        "station_id) SELECT v.serial, v.at, v.cause, v.actor, v.settings, v.sources, v.confirmed_at, "
        "v.deployment_id, v.station_id FROM "
        + db.dialect.rows_of(
            "serial TEXT, at TEXT, cause TEXT, actor TEXT, settings TEXT, sources TEXT, confirmed_at TEXT, "
            "deployment_id BIGINT, station_id TEXT"
        ),
        [db.dialect.rows({"confirmed_at": None, "deployment_id": None, "station_id": None, **r} for r in rows)],
    )
    return len(rows)


def in_scope(db, kind: str, name: str) -> list[str]:
    """The cameras a profile scope applies to (not retired): ``default`` every one, a model's, a
    borough's, or those personally issued now to an officer of a role."""
    if kind == "default":
        sql, params = "SELECT serial FROM devices WHERE lifecycle <> 'retired'", []
    elif kind in ("model", "borough"):
        sql, params = f"SELECT serial FROM devices WHERE {kind} = ? AND lifecycle <> 'retired'", [name]
    else:
        sql = (
            "SELECT a.device_serial FROM assignments a JOIN officers o ON o.officer_id = a.officer_id "
            "WHERE a.ended_at IS NULL AND a.mode = 'personal' AND o.role = ?"
        )
        params = [name]
    return [r[0] for r in db.execute(sql, params)]


def confirm(db, run: Sequence[tuple[CameraUpdateResult, str]]) -> None:
    """Cameras' reports of profile deployments applied (after ``deployments.apply_results``, in the
    projection's transaction; ``run``: each report and the station that read it). The version the
    deployment offered the camera is confirmed; one that no row holds (offered before a change not
    recorded here) is added, confirmed, and the camera's effective settings observed after it."""
    pairs = {(e.deployment_id, e.serial): station for e, station in run if e.ok}
    if not pairs:
        return
    rows = db.execute(
        "SELECT c.deployment_id, c.serial, c.profile FROM deployment_cameras c "
        "JOIN deployments p ON p.id = c.deployment_id "
        "WHERE p.kind = 'profiles' AND c.state = 'updated' AND c.profile IS NOT NULL "
        f"AND {db.dialect.any_of('c.serial')} ORDER BY c.deployment_id",
        [db.dialect.many({serial for _, serial in pairs})],
    ).fetchall()
    now = to_iso(utc_now())
    for deployment_id, serial, offered in rows:
        if (deployment_id, serial) not in pairs:
            continue
        station = pairs[(deployment_id, serial)]
        text = _text(msgspec.json.decode(offered, type=CameraSettings))
        if db.execute(
            "SELECT 1 FROM camera_settings WHERE serial = ? AND deployment_id = ?", [serial, deployment_id]
        ).fetchone():
            continue  # confirmed already (a repeat of the report)
        match = db.execute(
            "SELECT id FROM camera_settings WHERE serial = ? AND settings = ? AND confirmed_at IS NULL "
            "ORDER BY id DESC LIMIT 1",
            [serial, text],
        ).fetchone()
        if match is not None:
            db.execute(
                "UPDATE camera_settings SET confirmed_at = ?, deployment_id = ?, station_id = ? WHERE id = ?",
                [now, deployment_id, station, match[0]],
            )
            continue
        db.execute(
            "INSERT INTO camera_settings (serial, at, cause, actor, settings, sources, confirmed_at, deployment_id, "
            "station_id) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?)",
            [
                serial,
                now,
                f"deployment {deployment_id}'s settings, reported applied",
                f"dock:{station}",
                text,
                now,
                deployment_id,
                station,
            ],
        )
        observe(db, [serial], "the profiles as they are now (changed since the deployment's offer)", "central", now)


def read(db, serial: str, cursor: str | None = None, limit: int = PAGE) -> SettingsHistory:
    """The camera's versions, newest first, ``limit`` (at most ``MAX_PAGE``) at a time."""
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit is 1 to {MAX_PAGE}")
    before = cursor_id(decode_cursor(cursor, 1)[0]) if cursor is not None else None
    columns = "id, at, cause, actor, settings, sources, confirmed_at, deployment_id, station_id"
    newest = db.execute("SELECT max(id) FROM camera_settings WHERE serial = ?", [serial]).fetchone()[0]
    rows = db.execute(
        f"SELECT {columns} FROM camera_settings WHERE serial = ?"
        + (" AND id < ?" if before is not None else "")
        + " ORDER BY id DESC LIMIT ?",
        [serial, *([before] if before is not None else []), limit + 1],
    ).fetchall()
    carried = db.execute(
        f"SELECT {columns} FROM camera_settings WHERE serial = ? AND confirmed_at IS NOT NULL "
        "ORDER BY confirmed_at DESC, id DESC LIMIT 1",
        [serial],
    ).fetchone()
    items = [_version(r, newest) for r in rows[:limit]]
    return SettingsHistory(
        serial=serial,
        carried=_version(carried, newest) if carried else None,
        items=items,
        next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None,
    )


def _version(r, newest: int) -> SettingsVersion:
    settings = msgspec.json.decode(r[4], type=CameraSettings)
    resolved = _sources.decode(r[5]) if r[5] else None
    if r[6] is not None:
        status: Status = "confirmed"
    else:
        status = "pending" if r[0] == newest else "superseded"
    return SettingsVersion(
        id=r[0],
        at=from_iso(r[1]),
        cause=r[2],
        actor=r[3],
        settings=settings,
        source=_from(resolved) if resolved else f"from: deployment {r[7]}'s offer",
        lines=explain(resolved)
        if resolved
        else [f"{k} = {v} from: deployment {r[7]}'s offer" for k, v in msgspec.structs.asdict(settings).items()],
        status=status,
        confirmed_at=from_iso(r[6]) if r[6] else None,
        deployment_id=r[7],
        station_id=r[8],
    )
