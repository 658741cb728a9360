"""The clip read API (docs/contracts.md §5): one clip, a filtered keyset-paginated list, the bytes."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Literal

from litestar import Controller, Request, Response, get
from litestar.openapi import ResponseSpec
from litestar.params import FromQuery, PathParameter, QueryParameter
from litestar.response import Stream

from central.access.auth import Caller, user_with
from central.access.scope import LISTS, Scoped, in_path, touches
from central.core.openapi import errors
from central.core.pagination import decode_time_cursor, encode_cursor
from central.core.providers import Injected
from central.core.ranges import parse_range
from central.evidence.clip_records import ClipRecords
from central.uploads.blobstore import BlobStore
from fleet.errors import BadRequest, NotFound
from fleet.protocol import ClipInfo, ClipPage

ClipId = Annotated[str, PathParameter(min_length=1, max_length=64, description="the clip's UUID")]
log = logging.getLogger(__name__)


def _cursor_encode(clip: ClipInfo) -> str:
    from fleet.clock import to_iso

    return encode_cursor(to_iso(clip.recorded_at), clip.clip_id)


def _cursor_decode(cursor: str) -> tuple[str, str]:
    return decode_time_cursor(cursor)


class ClipController(Controller):
    """Footage: for admins and supervisors only (a supervisor with a borough: the clips its
    stations took in). Seeing a camera's battery does not grant seeing its clips."""

    path = "/api/v1/clips"
    tags = ["clips"]
    guards = [user_with("supervisor")]

    @get("/", summary="List clips, oldest recording first, filtered", scope=LISTS, sync_to_thread=True)
    def list_clips(
        self,
        within: Scoped,
        clips: Injected[ClipRecords],
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        cursor: FromQuery[str | None] = None,
        station_id: FromQuery[str | None] = None,
        device_serial: FromQuery[str | None] = None,
        clip_state: Annotated[Literal["receiving", "verified"] | None, QueryParameter(name="state")] = None,
        evidential: FromQuery[bool | None] = None,
        recorded_from: FromQuery[datetime | None] = None,
        recorded_to: FromQuery[datetime | None] = None,
    ) -> ClipPage:
        for name, moment in (("recorded_from", recorded_from), ("recorded_to", recorded_to)):
            if moment is not None and moment.tzinfo is None:
                raise BadRequest(f"{name} needs a time zone, e.g. 2026-11-20T14:00:00Z")
        items = clips.list_clips(
            limit=limit + 1,
            after=_cursor_decode(cursor) if cursor else None,
            filters={
                "borough": within.borough,
                "station_id": station_id,
                "device_serial": device_serial,
                "state": clip_state,
                "evidential": evidential,
                "recorded_from": recorded_from,
                "recorded_to": recorded_to,
            },
        )
        more = len(items) > limit
        items = items[:limit]
        return ClipPage(items=items, next_cursor=_cursor_encode(items[-1]) if more else None)

    @get("/{clip_id:str}", summary="One clip", scope=touches(in_path("clip", "clip_id")), sync_to_thread=True)
    def get_clip(self, principal: Caller, clips: Injected[ClipRecords], clip_id: ClipId) -> ClipInfo:
        clip = clips.clip(clip_id)
        if clip is None:
            raise NotFound(f"no clip {clip_id}")
        clips.log_access(principal.name, "view", clip_id, "metadata")
        return clip

    @get(
        "/{clip_id:str}/content",
        summary="The clip's bytes (Range supported; every download is logged)",
        media_type="video/mp4",
        responses={
            206: ResponseSpec(
                data_container=bytes,
                media_type="video/mp4",
                description="The bytes of the Range asked for (Content-Range says which)",
            ),
            **errors(410, 416, 503),
        },
        scope=touches(in_path("clip", "clip_id")),
        sync_to_thread=True,
    )
    def content(
        self,
        request: Request,
        principal: Caller,
        clips: Injected[ClipRecords],
        blobs: Injected[BlobStore],
        clip_id: ClipId,
    ) -> Response:
        key = clips.blob_key(clip_id)
        if key is None:
            raise NotFound(f"no verified clip {clip_id}")
        try:
            size = blobs.size(key)
        except FileNotFoundError:
            log.error("clip %s is recorded as verified but its blob %s is missing", clip_id, key)
            raise NotFound(
                f"the bytes of clip {clip_id} are missing from the blob store; this is logged for the operators"
            ) from None
        span = parse_range(request.headers.get("range"), size)
        start, end = span or (0, size)
        clips.log_access(principal.name, "download", clip_id, f"bytes {start}-{end - 1}/{size}")

        headers = {
            "Accept-Ranges": "bytes",
            "Content-Length": str(end - start),
            "Content-Disposition": f'attachment; filename="{clip_id}.mp4"',
        }
        if span:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        # A plain iterator: Litestar takes each piece on a worker thread, so a slow store never blocks the loop.
        return Stream(
            blobs.read(key, start, end), status_code=206 if span else 200, headers=headers, media_type="video/mp4"
        )
