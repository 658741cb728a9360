"""Dashboard: footage (search, retention and hold actions, playback) and the audit trail.

Footage pages are for supervisors and admins, as the clip API is; information managers find
clips by their record, hold them and print their custody, never playing them. A supervisor or
information manager for one borough sees that borough's cameras' clips. Playback streams from the clip API, so every
view is audited there. Custody reports link to the API's printable page and CSV.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Request, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template

from central.access.auth import Caller, user_with
from central.access.scope import FORCE_WIDE, LISTS, Scoped, in_form, in_path, touches
from central.access.users import CLIP_FINDERS, CUSTODY_READERS
from central.core.database import Dialect
from central.core.providers import Injected
from central.core.store import CentralStore
from central.evidence import audit
from central.evidence.clip_records import ClipRecords
from central.evidence.holds import held_clips
from central.evidence.retention import CategoriesRequest, HoldRequest, ReleaseRequest, RestoreRequest, RetentionService
from central.registry.assignments import AssignmentService, AttributeRequest
from central.web import local_time
from central.web.dashboard import FORM, DashboardPages, allowed, back, field, filter_query, page
from fleet.clock import from_iso, to_iso, utc_now
from fleet.config import CentralSettings
from fleet.errors import BadRequest, NotFound

STATES = {
    "": "any",
    "kept": "kept",
    "held": "held",
    "review": "due for review",
    "unattributed": "attributed to nobody",
    "deleted": "soft-deleted",
    "purged": "purged",
}


def state_sql(dialect: Dialect, state: str) -> str:
    """The condition on a clip (alias ``c``) of a state in STATES: the small sets through their own
    index, the others by the retention of each clip met in time order."""
    return {
        "kept": "EXISTS (SELECT 1 FROM clip_retention r WHERE r.clip_id = c.clip_id AND r.deleted_at IS NULL)",
        "deleted": "EXISTS (SELECT 1 FROM clip_retention r WHERE r.clip_id = c.clip_id "
        "AND r.deleted_at IS NOT NULL AND r.purged_at IS NULL)",
        "purged": "EXISTS (SELECT 1 FROM clip_retention r WHERE r.clip_id = c.clip_id AND r.purged_at IS NOT NULL)",
        "review": f"c.clip_id IN (SELECT clip_id FROM clip_retention {dialect.indexed_by('clip_retention_review_due')} "
        f"WHERE {dialect.flag_set('review')} AND deleted_at IS NULL AND retain_until <= :now)",
        "held": f"c.clip_id IN ({held_clips(dialect)})",
        "unattributed": "c.clip_id IN (SELECT clip_id FROM attributions "
        f"{dialect.indexed_by('attributions_unattributed')} WHERE officer_id IS NULL)",
    }[state]


SMALL_SETS = {"review", "held", "unattributed"}
"""States whose clips are few: found through their own index and sorted, not by scanning all clips by time."""
PAGE = 50
ACTIONS = (
    "ingest",
    "upload-verified",
    "view",
    "download",
    "categorise",
    "hold",
    "release",
    "case-add",
    "review",
    "soft-delete",
    "restore",
    "purge",
    "assign",
    "unassign",
    "check-out",
    "check-in",
    "attribute",
    "register",
    "lifecycle",
    "login",
    "login-failed",
    "login-lockout",
    "login-throttled",
    "logout",
    "user-add",
    "user-role",
    "token-create",
    "token-revoke",
    "config-change",
    "rollout-commit",
)
"""Suggested in the audit page's action filter (any action can be typed)."""


@dataclass
class ChainCheck:
    """The audit page's last check of the chain while central runs: (when, report, anchors read, by whom)."""

    last: tuple[datetime, audit.ChainReport, int, str] | None = None


class ClipRow(msgspec.Struct, kw_only=True):
    clip_id: str
    recorded_at: datetime
    device_serial: str
    officer_id: str | None
    station_id: str | None
    categories: list[str]
    retain_until: datetime | None
    deleted_at: datetime | None
    purged_at: datetime | None
    size: int


MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?)?")
"""A search's time bound, in London time as the pages show times (``local_time``): a day, or a
day and a time (a complaint's "about 14:30"), as a browser's date or datetime-local field sends it."""


def _moment(value: str | None, name: str) -> str | None:
    if not value:
        return None
    try:
        if not MOMENT.fullmatch(value):
            raise ValueError(value)
        return to_iso(local_time.moment_typed(value))
    except ValueError:
        raise BadRequest(
            f"{name}: {value!r} is not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM)"
        ) from None


def search_clips(
    store: CentralStore, filters: dict[str, str], within: str | None, before: tuple[str, str] | None
) -> list[ClipRow]:
    """Newest first, keyset-paged; every filter rides an index (officer, camera, time). ``within``:
    only the clips that borough's cameras recorded."""
    dialect = store.writer.dialect
    where, params = ["c.state = 'verified'"], {"now": to_iso(utc_now()), "limit": PAGE + 1}
    if filters["officer"]:
        where.append("a.officer_id = :officer")
        params["officer"] = filters["officer"]
    if filters["device"]:
        where.append("c.device_serial = :device")
        params["device"] = filters["device"]
    times = []  # on recorded_at alone: what clips_categorised answers by itself, with the category
    for key, op in (("recorded_from", ">="), ("recorded_to", "<")):
        moment = _moment(filters[key], key.replace("_", " "))
        if moment:
            times.append(f"c.recorded_at {op} :{key}")
            params[key] = moment
    if before:
        times.append("(c.recorded_at, c.clip_id) < (:b_at, :b_id)")
        params.update(b_at=before[0], b_id=before[1])
    where += times
    in_category = ""
    if filters["category"]:
        # Through clips_categorised: only the clips that have a category are looked at. Names are
        # [a-z0-9_], stored JSON-quoted, so '"name"' inside the array text matches exactly that category.
        in_category = f"c.categories != '[]' AND {dialect.contains('c.categories', ':category')}"
        where.append(in_category)
        params["category"] = f'"{filters["category"]}"'
    if filters["state"]:
        where.append(state_sql(dialect, filters["state"]))
    if within:
        where.append("c.device_serial IN (SELECT serial FROM devices WHERE borough = :within)")
        params["within"] = within
    # A category with nothing else but time: the page's clips are chosen among clips_categorised's
    # entries alone (a rare category passes over every categorised clip: entry by entry, not a
    # read of each clip's row), then read, the page's few sorted on their own.
    categorised_only = bool(in_category) and not (filters["officer"] or filters["device"] or filters["state"] or within)
    if categorised_only:
        where.append(
            f"c.clip_id IN (SELECT c.clip_id FROM clips c WHERE {' AND '.join([in_category, *times])} "
            "ORDER BY c.recorded_at DESC, c.clip_id DESC LIMIT :limit)"
        )
    # The page's clips are chosen first and only they are joined to their officer and retention: a
    # small set (12,000 held clips) is sorted on the clips' own columns, not after 12,000 lookups.
    page_of_clips = (
        "SELECT c.clip_id, c.recorded_at, c.device_serial, c.station_id, c.categories, c.size FROM clips c"
        + (" JOIN attributions a ON a.clip_id = c.clip_id" if filters["officer"] else "")
        + " WHERE "
        + " AND ".join(where)
        + (
            f" ORDER BY {dialect.unindexed('c.recorded_at')} DESC, c.clip_id DESC"
            if filters["state"] in SMALL_SETS or categorised_only
            else " ORDER BY c.recorded_at DESC, c.clip_id DESC"
        )
        + " LIMIT :limit"
    )
    sql = (
        "SELECT p.clip_id, p.recorded_at, p.device_serial, a.officer_id, p.station_id, p.categories, "
        f"r.retain_until, r.deleted_at, r.purged_at, p.size FROM ({page_of_clips}) p "
        "LEFT JOIN attributions a ON a.clip_id = p.clip_id LEFT JOIN clip_retention r ON r.clip_id = p.clip_id "
        "ORDER BY p.recorded_at DESC, p.clip_id DESC"
    )
    with store.writer.read() as db:
        rows = db.execute(sql, params).fetchall()
    return [
        ClipRow(
            clip_id=r[0],
            recorded_at=from_iso(r[1]),
            device_serial=r[2],
            officer_id=r[3],
            station_id=r[4],
            categories=json.loads(r[5]),
            retain_until=from_iso(r[6]) if r[6] else None,
            deleted_at=from_iso(r[7]) if r[7] else None,
            purged_at=from_iso(r[8]) if r[8] else None,
            size=r[9],
        )
        for r in rows
    ]


ClipIdPath = Annotated[str, PathParameter(min_length=1, max_length=64)]


class EvidencePages(DashboardPages):
    path = "/"

    @get("/clips", summary="Search clips", guards=[user_with(*CLIP_FINDERS)], scope=LISTS, sync_to_thread=True)
    def clips_page(
        self,
        request: Request,
        within: Scoped,
        retention: Injected[RetentionService],
        store: Injected[CentralStore],
        officer: Annotated[str | None, QueryParameter(max_length=64)] = None,
        device: Annotated[str | None, QueryParameter(max_length=64)] = None,
        recorded_from: Annotated[str | None, QueryParameter(max_length=64)] = None,
        recorded_to: Annotated[str | None, QueryParameter(max_length=64)] = None,
        category: Annotated[str | None, QueryParameter(max_length=64)] = None,
        clip_state: Annotated[str | None, QueryParameter(name="state", max_length=16)] = None,
        before: Annotated[str | None, QueryParameter(max_length=120)] = None,
    ) -> Template:
        filters = {
            "officer": officer or "",
            "device": device or "",
            "recorded_from": recorded_from or "",
            "recorded_to": recorded_to or "",
            "category": category or "",
            "state": clip_state or "",
        }
        if filters["state"] not in STATES:
            raise BadRequest(f"unknown state {clip_state!r}")
        categories = sorted(retention.rules().categories)
        if filters["category"] and filters["category"] not in categories:
            raise BadRequest(f"unknown category {category!r}; the rules have {', '.join(categories)}")
        keyset = None
        if before and "|" in before:
            recorded_at, _, last_clip = before.partition("|")
            keyset = (recorded_at, last_clip)
        rows = search_clips(store, filters, within.borough, keyset)
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        query = filter_query(filters)
        return page(
            request,
            "clips.html",
            rows=rows,
            filters=filters,
            states=STATES,
            categories=categories,
            query=query,
            next_before=f"{to_iso(rows[-1].recorded_at)}|{rows[-1].clip_id}" if more else None,
        )

    @get(
        "/clips/{clip_id:str}",
        summary="One clip: retention, holds, playback",
        guards=[user_with(*CLIP_FINDERS)],
        scope=touches(in_path("clip", "clip_id")),
        sync_to_thread=True,
    )
    def clip_page(
        self,
        request: Request,
        principal: Caller,
        clips: Injected[ClipRecords],
        assignments: Injected[AssignmentService],
        retention: Injected[RetentionService],
        clip_id: ClipIdPath,
    ) -> Template:
        clip = clips.clip(clip_id)
        if clip is None:
            raise NotFound(f"no clip {clip_id} at central")
        attribution = None
        try:
            attribution = assignments.attribution(clip_id)
        except NotFound:
            pass
        kept = retention.clip(clip_id)
        holds = retention.holds_by_id(kept.held_by)
        return page(
            request,
            "clip.html",
            clip=clip,
            attribution=attribution,
            r=kept,
            holds=holds,
            categories=sorted(retention.rules().categories),
            can_restore=allowed(request, "admin"),
            supervises=allowed(request, "supervisor"),
            can_custody=allowed(request, *CUSTODY_READERS),
            can_requests=allowed(request, "information_manager"),
        )

    @post(
        "/clips/{clip_id:str}/hold",
        summary="Hold a clip",
        guards=[user_with(*CLIP_FINDERS)],
        opt=FORM,
        scope=touches(in_path("clip", "clip_id")),
        sync_to_thread=True,
    )
    def hold(
        self,
        principal: Caller,
        form: Injected[FormMultiDict],
        retention: Injected[RetentionService],
        clip_id: ClipIdPath,
    ) -> Redirect:
        return _act(
            f"/clips/{clip_id}",
            "held",
            lambda: retention.place_hold(
                HoldRequest(kind="clip", clip_id=clip_id, reason=_reason(form)), principal.name
            ),
        )

    @post(
        "/clips/{clip_id:str}/release/{hold_id:int}",
        summary="Release a hold",
        guards=[user_with("supervisor")],
        opt=FORM,
        scope=touches(in_path("clip", "clip_id"), in_path("hold", "hold_id")),
        sync_to_thread=True,
    )
    def release(
        self,
        principal: Caller,
        form: Injected[FormMultiDict],
        retention: Injected[RetentionService],
        clip_id: ClipIdPath,
        hold_id: Annotated[int, PathParameter(ge=1, le=2**62)],
    ) -> Redirect:
        return _act(
            f"/clips/{clip_id}",
            "released",
            lambda: retention.release_hold(hold_id, ReleaseRequest(reason=_reason(form)), principal.name),
        )

    @post(
        "/clips/{clip_id:str}/categories",
        summary="Set categories",
        guards=[user_with("supervisor")],
        opt=FORM,
        scope=touches(in_path("clip", "clip_id")),
        sync_to_thread=True,
    )
    def categorise(
        self,
        principal: Caller,
        form: Injected[FormMultiDict],
        retention: Injected[RetentionService],
        clip_id: ClipIdPath,
    ) -> Redirect:
        return _act(
            f"/clips/{clip_id}",
            "categorised",
            lambda: retention.categorise(
                clip_id,
                CategoriesRequest(
                    categories=[str(c) for c in form.getall("category", [])][:32],
                    reason=_reason(form),
                    confirm=form.get("confirm") == "yes",
                ),
                principal.name,
            ),
        )

    @post(
        "/clips/{clip_id:str}/attribution",
        summary="Attribute a clip to an officer",
        guards=[user_with("supervisor")],
        opt=FORM,
        scope=touches(in_path("clip", "clip_id"), in_form("officer", "officer_id")),
        sync_to_thread=True,
    )
    def attribute(
        self,
        principal: Caller,
        form: Injected[FormMultiDict],
        assignments: Injected[AssignmentService],
        clip_id: ClipIdPath,
    ) -> Redirect:

        def attribute():
            request_ = msgspec.convert(
                {"officer_id": field(form, "officer_id", 64), "reason": _reason(form)}, AttributeRequest
            )
            assignments.attribute(clip_id, request_, principal.name)

        return _act(f"/clips/{clip_id}", "attributed", attribute)

    @post(
        "/clips/{clip_id:str}/restore",
        summary="Restore a soft-deleted clip",
        guards=[user_with("admin")],
        opt=FORM,
        scope=touches(in_path("clip", "clip_id")),
        sync_to_thread=True,
    )
    def restore(
        self,
        principal: Caller,
        form: Injected[FormMultiDict],
        retention: Injected[RetentionService],
        clip_id: ClipIdPath,
    ) -> Redirect:
        return _act(
            f"/clips/{clip_id}",
            "restored",
            lambda: retention.restore(clip_id, RestoreRequest(reason=_reason(form)), principal.name),
        )

    @get("/audit", summary="The audit trail", guards=[user_with("auditor")], scope=FORCE_WIDE, sync_to_thread=True)
    def audit_page(
        self,
        request: Request,
        principal: Caller,
        store: Injected[CentralStore],
        chain_check: Injected[ChainCheck],
        actor: Annotated[str | None, QueryParameter(max_length=64)] = None,
        action: Annotated[str | None, QueryParameter(max_length=32)] = None,
        object_type: Annotated[str | None, QueryParameter(max_length=32)] = None,
        object_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
        before: Annotated[int | None, QueryParameter(ge=1)] = None,
    ) -> Template:
        filters = {
            "actor": actor or "",
            "action": action or "",
            "object_type": object_type or "",
            "object_id": object_id or "",
        }
        where = [f"{k} = :{k}" for k, v in filters.items() if v] + (["id < :before"] if before else [])
        sql = (
            "SELECT id, at, actor, place, action, object_type, object_id, detail FROM audit"
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY id DESC LIMIT {PAGE + 1}"
        )
        with store.writer.read() as db:
            rows = db.execute(sql, {**filters, "before": before}).fetchall()
        more = len(rows) > PAGE
        return page(
            request,
            "audit.html",
            rows=rows[:PAGE],
            filters=filters,
            actions=ACTIONS,
            check=chain_check.last,
            query=filter_query(filters),
            next_before=rows[PAGE - 1][0] if more else None,
        )

    @post(
        "/audit/verify",
        summary="Recompute the audit chain now",
        guards=[user_with("auditor")],
        opt=FORM,
        scope=FORCE_WIDE,
        sync_to_thread=True,
    )
    def verify(
        self,
        principal: Caller,
        form: Injected[FormMultiDict],
        settings: Injected[CentralSettings],
        store: Injected[CentralStore],
        chain_check: Injected[ChainCheck],
    ) -> Redirect:
        published = audit.read_published(settings.anchors_file)
        report = audit.verify_database(store.writer, published)
        chain_check.last = (utc_now(), report, len(published), principal.name)
        return back("/audit", done="chain_intact") if report.intact else back("/audit", error="chain_broken")


def _reason(form) -> str:
    reason = field(form, "reason")
    if not reason:
        raise BadRequest("say why (a reason goes into the audit trail)")
    return reason


def _act(path: str, done: str, action) -> Redirect:
    """Run a retention action; back to the page with what happened (a refusal is the error
    page, with the service's reason)."""
    try:
        action()
    except msgspec.ValidationError as exc:
        raise BadRequest(str(exc)) from None
    return back(path, done=done)
