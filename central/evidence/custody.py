"""A clip's chain of custody: every audited step from the dock to central and every access.

From the audit chain (``central.evidence.audit``), oldest first: ingest at the station (copied off the
camera), upload verified at central, views, downloads, categories, holds, releases, deletion,
restore, purge. Served as JSON, CSV for spreadsheets and a printable HTML page (Jinja2) that
also says whether the audit chain verifies.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get
from litestar.params import PathParameter
from litestar.response import Template

from central.access.auth import Caller, user_with
from central.access.scope import in_path, touches
from central.access.users import CUSTODY_READERS
from central.core.csvhttp import CSV, csv_response
from central.core.providers import Injected
from central.core.store import CentralStore
from central.evidence import audit
from central.evidence.clip_records import ClipRecords
from central.registry.assignments import AssignmentService, Attribution
from fleet.clock import from_iso, to_iso, utc_now
from fleet.errors import NotFound
from fleet.protocol import ClipInfo

ClipIdPath = Annotated[str, PathParameter(min_length=1, max_length=64, description="the clip's id")]


class CustodyRecord(audit.AuditRecord, kw_only=True):
    id: int


def custody(db, clip_id: str) -> list[CustodyRecord]:
    rows = db.execute(
        "SELECT id, at, actor, place, action, object_type, object_id, detail FROM audit "
        "WHERE object_type = 'clip' AND object_id = ? ORDER BY id",
        [clip_id],
    ).fetchall()
    return [
        CustodyRecord(
            id=r[0],
            at=from_iso(r[1]),
            actor=r[2],
            place=r[3],
            action=r[4],
            object_type=r[5],
            object_id=r[6],
            detail=r[7],
        )
        for r in rows
    ]


def _records(
    store: CentralStore, clips: ClipRecords, assignments: AssignmentService, clip_id: str
) -> list[CustodyRecord]:
    with store.writer.read() as db:
        records = custody(db, clip_id)
    if not records and clips.clip(clip_id) is None:
        assignments.attribution(clip_id)  # reported by its station, not yet uploaded?
    return records


class CustodyController(Controller):
    path = "/api/v1/clips"
    tags = ["clips"]

    @get(
        "/{clip_id:str}/custody",
        summary="The clip's chain of custody, oldest first",
        guards=[user_with(*CUSTODY_READERS)],
        scope=touches(in_path("clip", "clip_id")),
        sync_to_thread=True,
    )
    def as_json(
        self,
        principal: Caller,
        store: Injected[CentralStore],
        clips: Injected[ClipRecords],
        assignments: Injected[AssignmentService],
        clip_id: ClipIdPath,
    ) -> list[CustodyRecord]:
        return _records(store, clips, assignments, clip_id)

    @get(
        "/{clip_id:str}/custody.csv",
        summary="The chain of custody as CSV",
        guards=[user_with(*CUSTODY_READERS)],
        media_type=CSV,
        scope=touches(in_path("clip", "clip_id")),
        sync_to_thread=True,
    )
    def as_csv(
        self,
        principal: Caller,
        store: Injected[CentralStore],
        clips: Injected[ClipRecords],
        assignments: Injected[AssignmentService],
        clip_id: ClipIdPath,
    ) -> Response:
        return csv_response(_records(store, clips, assignments, clip_id), CustodyRecord, f"custody-{clip_id}.csv")

    @get(
        "/{clip_id:str}/custody.html",
        summary="The chain of custody as a printable page",
        guards=[user_with(*CUSTODY_READERS)],
        scope=touches(in_path("clip", "clip_id")),
        sync_to_thread=True,
    )
    def as_html(
        self,
        principal: Caller,
        store: Injected[CentralStore],
        clips: Injected[ClipRecords],
        assignments: Injected[AssignmentService],
        clip_id: ClipIdPath,
    ) -> Template:
        records = _records(store, clips, assignments, clip_id)
        # The template shows whichever central has: the clip, its attribution, or only its id.
        clip: ClipInfo | Attribution | dict[str, str] | None = clips.clip(clip_id)
        if clip is None:  # reported by its station (ingested), not uploaded yet: what central knows
            try:
                clip = assignments.attribution(clip_id)
            except NotFound:
                clip = {"clip_id": clip_id}
        chain = audit.verify_database(store.writer)
        return Template(
            template_name="custody.html",
            context={
                "clip": clip,
                "records": records,
                "chain": chain,
                "printed": to_iso(utc_now()),
                "printed_by": principal.name,
            },
        )
