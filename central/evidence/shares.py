"""Share links: a case's clips for an external partner, for a while, without an account.

A supervisor makes a link for a named receiver with an end date (at most
``[disclosure] share_max_days``); it can be withdrawn at any time. The link's secret is 32
random bytes in its URL, shown once; central keeps only its SHA-256, so its database holds
nothing that opens a link. Whoever holds the link sees the case's clips as they were when it
was made (never a clip added later, another case's, nor anything else of central's) while the
case is held, and may download them; every page view and every
download is recorded in each clip's chain of custody, naming the link and its receiver. An
expired or withdrawn link answers 410 saying so; an unknown one 404.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Annotated, Literal

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import JSONBody, PathParameter
from litestar.response import Stream

from central.access.auth import Caller, user_with
from central.access.scope import in_path, touches
from central.core.database import Database
from central.core.openapi import errors
from central.core.providers import Injected
from central.core.ranges import parse_range
from central.evidence import audit
from central.evidence.disclosure import CaseClip, CaseFile, DisclosureService
from central.evidence.retention import Text
from central.uploads.blobstore import BlobStore
from fleet.clock import from_iso, to_iso, utc_now
from fleet.config import CentralSettings
from fleet.errors import BadRequest, Conflict, Gone, NotFound
from fleet.protocol import AwareDatetime

TOKEN_BYTES = 32
ShareState = Literal["active", "expired", "withdrawn"]


class ShareRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    recipient: Text
    """Who receives it (an organisation and a person: "CPS London South, J. Smith")."""
    expires_at: AwareDatetime
    """When the link stops working: in the future, at most ``share_max_days`` ahead."""


class Share(msgspec.Struct, kw_only=True):
    share_id: int
    case_ref: str
    recipient: str
    created_at: datetime
    created_by: str
    expires_at: datetime
    withdrawn_at: datetime | None
    state: ShareState


class ShareCreated(msgspec.Struct, kw_only=True):
    share: Share
    path: str
    """The link, relative to central's address (``/shared/<secret>``): shown this once, never stored."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


SHARE_COLUMNS = "id, case_ref, recipient, created_at, created_by, expires_at, revoked_at"


def _share(row, now: datetime) -> Share:
    expires = from_iso(row[5])
    withdrawn = from_iso(row[6]) if row[6] else None
    state: ShareState = "withdrawn" if withdrawn else "expired" if expires <= now else "active"
    return Share(
        share_id=row[0],
        case_ref=row[1],
        recipient=row[2],
        created_at=from_iso(row[3]),
        created_by=row[4],
        expires_at=expires,
        withdrawn_at=withdrawn,
        state=state,
    )


class ShareService:
    def __init__(
        self, writer: Database, blobs: BlobStore, disclosure: DisclosureService, settings: CentralSettings
    ) -> None:
        self.writer = writer
        self.blobs = blobs
        self.disclosure = disclosure
        self.settings = settings

    def create(self, case_ref: str, request: ShareRequest, actor: str) -> ShareCreated:
        now = utc_now()
        longest = timedelta(days=self.settings.disclosure.share_max_days)
        if request.expires_at <= now:
            raise BadRequest("expires_at is in the past: a link must end in the future")
        if request.expires_at > now + longest:
            raise BadRequest(f"a share link lives at most {longest.days} days ([disclosure] share_max_days)")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        with self.writer.write() as db:
            case = self.disclosure.case_in(db, case_ref)  # NotFound for no such case
            if not case.held:
                raise Conflict(f"case {case_ref}'s hold is released: its clips follow their own retention now")
            row = db.execute(
                "INSERT INTO case_shares (case_ref, token_sha256, recipient, created_at, created_by, expires_at) "
                f"VALUES (?, ?, ?, ?, ?, ?) RETURNING {SHARE_COLUMNS}",
                [case_ref, _digest(token), request.recipient, to_iso(now), actor, to_iso(request.expires_at)],
            ).fetchone()
            share = _share(row, now)
            shared = [c.clip_id for c in case.clips if c.absent is None]
            if shared:
                db.executemany(
                    "INSERT INTO case_share_clips (share_id, clip_id) VALUES (?, ?)",
                    [(share.share_id, clip_id) for clip_id in shared],
                )
            audit.record(
                db,
                actor=actor,
                action="share-create",
                object_type="case",
                object_id=case_ref,
                detail=f"share link #{share.share_id} for {request.recipient} until {to_iso(request.expires_at)}: "
                f"{len(shared)} clip(s)",
            )
        return ShareCreated(share=share, path=f"/shared/{token}")

    def list(self, case_ref: str) -> list[Share]:
        now = utc_now()
        with self.writer.read() as db:
            rows = db.execute(
                f"SELECT {SHARE_COLUMNS} FROM case_shares WHERE case_ref = ? ORDER BY id DESC", [case_ref]
            ).fetchall()
        return [_share(r, now) for r in rows]

    def withdraw(self, case_ref: str, share_id: int, actor: str) -> Share:
        now = utc_now()
        with self.writer.write() as db:
            row = db.execute(
                "UPDATE case_shares SET revoked_at = COALESCE(revoked_at, ?), revoked_by = COALESCE(revoked_by, ?) "
                f"WHERE id = ? AND case_ref = ? RETURNING {SHARE_COLUMNS}",
                [to_iso(now), actor, share_id, case_ref],
            ).fetchone()
            if row is None:
                raise NotFound(f"no share link #{share_id} on case {case_ref}")
            audit.record(
                db,
                actor=actor,
                action="share-withdraw",
                object_type="case",
                object_id=case_ref,
                detail=f"share link #{share_id} for {row[2]}",
            )
        return _share(row, now)

    def opened(self, token: str) -> tuple[Share, CaseFile]:
        """The link's share and case, the view recorded in each clip's custody; 404 / 410 when it does not open."""
        now = utc_now()
        with self.writer.write() as db:
            share = self._live(db, token, now)
            case = self._shared(db, share)
            audit.record_many(
                db,
                [
                    {
                        "actor": _partner(share),
                        "action": "view",
                        "object_type": "clip",
                        "object_id": c.clip_id,
                        "detail": f"case {share.case_ref}: the clip listed through share link #{share.share_id}",
                    }
                    for c in case.clips
                    if c.absent is None
                ],
            )
        return share, case

    def download(self, token: str, clip_id: str, span_header: str | None) -> Response:
        now = utc_now()
        with self.writer.write() as db:
            share = self._live(db, token, now)
            clip = _clip_of(self._shared(db, share), clip_id)
            key = db.execute("SELECT blob_key FROM clips WHERE clip_id = ?", [clip_id]).fetchone()[0]
            size = clip.size or 0
            span = parse_range(span_header, size)
            start, end = span or (0, size)
            audit.record(
                db,
                actor=_partner(share),
                action="download",
                object_type="clip",
                object_id=clip_id,
                detail=f"case {share.case_ref}: share link #{share.share_id}, bytes {start}-{end - 1}/{size}",
            )
        headers = {
            "Accept-Ranges": "bytes",
            "Content-Length": str(end - start),
            "Content-Disposition": f'attachment; filename="{clip_id}.mp4"',
        }
        if span:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        pieces: Iterator[bytes] = self.blobs.read(key, start, end)
        return Stream(pieces, status_code=206 if span else 200, headers=headers, media_type="video/mp4")

    def _shared(self, db, share: Share) -> CaseFile:
        """The case as the link may show it: the clips it was made for that can still be disclosed,
        while the case is held (a released case's clips follow their own retention: the link closes)."""
        case = self.disclosure.case_in(db, share.case_ref)
        if not case.held:
            raise Gone("the case this link shares was closed; ask its sender if you still need the footage")
        chosen = {r[0] for r in db.execute("SELECT clip_id FROM case_share_clips WHERE share_id = ?", [share.share_id])}
        case.clips = [c for c in case.clips if c.clip_id in chosen]
        return case

    def _live(self, db, token: str, now: datetime) -> Share:
        row = db.execute(f"SELECT {SHARE_COLUMNS} FROM case_shares WHERE token_sha256 = ?", [_digest(token)]).fetchone()
        if row is None:
            raise NotFound("no such share link: check the address you were sent")
        share = _share(row, now)
        if share.state == "withdrawn":
            raise Gone(f"this link was withdrawn on {share.withdrawn_at:%d %B %Y}; ask its sender for a new one")
        if share.state == "expired":
            raise Gone(f"this link expired on {share.expires_at:%d %B %Y at %H:%M} UTC; ask its sender for a new one")
        return share


def _partner(share: Share) -> str:
    return f"share #{share.share_id} ({share.recipient})"


def _clip_of(case: CaseFile, clip_id: str) -> CaseClip:
    for clip in case.clips:
        if clip.clip_id == clip_id and clip.absent is None:
            return clip
    raise NotFound(f"no clip {clip_id} is shared by this link")


CasePath = Annotated[str, PathParameter(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class ShareController(Controller):
    """A supervisor's share links on a case (``/api/v1/cases/{case_ref}/shares``)."""

    path = "/api/v1/cases"
    tags = ["disclosure"]

    @post(
        "/{case_ref:str}/shares",
        summary="Make a share link to the case's clips for a partner (the link is shown once)",
        guards=[user_with("supervisor")],
        scope=touches(in_path("case", "case_ref")),
        status_code=201,
        responses=errors(400, 404),
        sync_to_thread=True,
    )
    def create(
        self, principal: Caller, shares: Injected[ShareService], case_ref: CasePath, data: JSONBody[ShareRequest]
    ) -> ShareCreated:
        return shares.create(case_ref, data, principal.name)

    @get(
        "/{case_ref:str}/shares",
        summary="The case's share links, newest first (never their secrets)",
        guards=[user_with("supervisor")],
        scope=touches(in_path("case", "case_ref")),
        sync_to_thread=True,
    )
    def listing(self, principal: Caller, shares: Injected[ShareService], case_ref: CasePath) -> list[Share]:
        return shares.list(case_ref)

    @post(
        "/{case_ref:str}/shares/{share_id:int}/withdraw",
        summary="Withdraw a share link now",
        guards=[user_with("supervisor")],
        scope=touches(in_path("case", "case_ref")),
        status_code=200,
        responses=errors(404),
        sync_to_thread=True,
    )
    def withdraw(
        self,
        principal: Caller,
        shares: Injected[ShareService],
        case_ref: CasePath,
        share_id: Annotated[int, PathParameter(ge=1, le=2**62)],
    ) -> Share:
        return shares.withdraw(case_ref, share_id, principal.name)
