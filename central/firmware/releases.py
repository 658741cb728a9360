"""Firmware releases: vendor-signed artifacts, one per camera model and version.

A release is accepted only when its Ed25519 signature over its release statement
(``fleet.firmware``: model, version, the artifact's SHA-256 and size) verifies under one of
``[firmware] release_keys``. A refusal is audited and stores nothing. Releases are force-wide:
fleet managers add and withdraw them; stations read them (to hand cameras their updates).

The durable steps of an addition, and what a crash at each leaves:

1. the body streams to ``<data_dir>/firmware-staging/<random>.part``, hashed as it comes,
   bounded by ``[firmware] max_artifact_bytes``, then fsynced. A crash leaves a ``.part`` file,
   removed at central's next start (``sweep_staging``).
2. the signature is checked; a refusal is audited and the ``.part`` file removed.
3. the artifact goes into the blob store under ``firmware-<sha256>`` (content-addressed, a key
   no clip has, so retention never sees it), put again unless a release names it already (so an
   orphan being adopted is fresh). A crash here leaves a blob that no release names: the next
   upload of the same bytes adopts it; otherwise the orphan sweep deletes it once it is older
   than a grace period (``sweep_orphans``: a daily job, and ``fleet central firmware sweep``).
4. the release row and its audit record commit in one transaction: the commit point. A row
   never names a blob that is not complete: the blob is checked inside that transaction, and
   the sweep deletes only inside one of its own, so the two never cross.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Protocol

import anyio.to_thread
import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.openapi import ResponseSpec
from litestar.params import FromQuery, JSONBody, PathParameter, QueryParameter
from litestar.response import Stream

from central.access.auth import Caller, station_or_user_with, user_with
from central.access.scope import FORCE_WIDE, no_borough
from central.core.database import Database
from central.core.openapi import errors
from central.core.providers import Injected
from central.core.ranges import parse_range
from central.evidence import audit
from central.uploads.blobstore import BlobStore
from central.uploads.body import RequestBody
from fleet.clock import from_iso, to_iso, utc_now
from fleet.config import CentralSettings
from fleet.errors import BadRequest, Conflict, Gone, NotFound, PayloadTooLarge, ServiceUnavailable
from fleet.firmware import (
    Model,
    Version,
    key_fingerprint,
    parse_signature,
    signed_by,
    statement_bytes,
    trusted_keys,
)
from fleet.hashing import copy_and_hash, fsync_dir

log = logging.getLogger(__name__)

BLOB_PREFIX = "firmware-"
"""Release artifacts' blob keys: ``firmware-<sha256>``. A clip's key is its UUID, so neither
the retention job nor anything else that works on clips ever names one."""
STAGING = "firmware-staging"
WRITE_PIECE = 1 << 20
"""Bytes gathered from the request before each write on a worker thread."""
STALE_STAGING_S = 3600.0
"""A ``.part`` file untouched this long belongs to no upload still running."""
ORPHAN_GRACE_S = 24 * 3600.0
"""An artifact blob no release names is deleted only once stored this long ago: an addition
still under way (its blob put, its row not yet committed) is never swept from under it."""
BLOB_KEY = re.compile(r"^firmware-[0-9a-f]{64}\Z")  # \Z: $ would match before a final line end
STREAMS = "the artifact streams from the request to a staging file; every write and the commit run on worker threads"

ReleasePath = Annotated[int, PathParameter(ge=1, le=2**62, description="the release's number")]
Notes = Annotated[
    str,
    msgspec.Meta(
        max_length=2000, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
    ),
]
"""Free text, lines allowed; no control character (PostgreSQL keeps no NUL) nor bidirectional override."""


class Release(msgspec.Struct, kw_only=True):
    id: int
    model: str
    version: str
    sha256: str
    """The artifact's SHA-256 (hex): what the camera's copy must hash to."""
    size: int
    signature: str
    """The vendor's Ed25519 signature over the release statement (base64; docs/firmware.md)."""
    signed_by: str
    """The fingerprint of the release key that verified it."""
    notes: str
    added_at: datetime
    added_by: str
    withdrawn_at: datetime | None = None
    withdrawn_by: str | None = None
    withdrawn_reason: str | None = None


class Sweep(msgspec.Struct, kw_only=True):
    """What an orphan sweep found: artifact blobs no release names."""

    deleted: list[str]
    """Keys deleted (with ``dry_run``: those it would delete)."""
    deleted_bytes: int
    young: int
    """Orphans stored within the grace period, kept (an addition may be under way)."""
    named: int
    """Blobs a release names (kept)."""


class WithdrawRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=r"\S")]
    """Why (kept in the release and the audit trail)."""


@dataclass(frozen=True)
class Staged:
    """An artifact received whole and fsynced in the staging folder."""

    path: Path
    sha256: str
    size: int


class Staging:
    """One artifact arriving: written to a ``.part`` file and hashed as it comes, bounded in size."""

    def __init__(self, folder: Path, limit: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{secrets.token_hex(16)}.part"
        self.limit = limit
        self.size = 0
        self._hash = hashlib.sha256()
        self._file = open(self.path, "xb")  # noqa: SIM115 (closed by finish or discard)

    def write(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.size > self.limit:
            raise PayloadTooLarge(
                f"the artifact is over [firmware] max_artifact_bytes ({self.limit} bytes); nothing was stored"
            )
        self._hash.update(piece)
        self._file.write(piece)

    def finish(self) -> Staged:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return Staged(self.path, self._hash.hexdigest(), self.size)

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


COLUMNS = (
    "id, model, version, sha256, size, signature, signed_by, notes, added_at, added_by, "
    "withdrawn_at, withdrawn_by, withdrawn_reason"
)


def _release(r) -> Release:
    return Release(
        id=r[0],
        model=r[1],
        version=r[2],
        sha256=r[3],
        size=r[4],
        signature=r[5],
        signed_by=r[6],
        notes=r[7],
        added_at=from_iso(r[8]),
        added_by=r[9],
        withdrawn_at=from_iso(r[10]) if r[10] else None,
        withdrawn_by=r[11],
        withdrawn_reason=r[12],
    )


def _checked(value: str, kind, what: str) -> str:
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"{what} {value[:80]!r} is not valid: {exc}") from None


class Deployments(Protocol):
    """What a withdrawal ends (``central.firmware.deployments.DeploymentService``, which reads
    releases itself: injected here rather than imported)."""

    def release_withdrawn(self, db, release_id: int, reason: str, actor: str) -> list[int]: ...


class ReleaseService:
    """Adds, lists, serves and withdraws firmware releases; the only writer of ``firmware_releases``."""

    def __init__(self, writer: Database, blobs: BlobStore, settings: CentralSettings, deployments: Deployments) -> None:
        self.writer = writer
        self.blobs = blobs
        self.deployments = deployments
        self.keys = trusted_keys(settings.firmware.release_keys)  # checked when the file loaded
        self.max_bytes = settings.firmware.max_artifact_bytes
        self.idle_timeout_s = settings.limits.body_idle_timeout_s
        self.staging_dir = Path(settings.data_dir) / STAGING

    # -- receiving ------------------------------------------------------------------------

    def stage(self) -> Staging:
        return Staging(self.staging_dir, self.max_bytes)

    def stage_file(self, source: Path) -> Staged:
        """A file on this machine, staged as an upload's body would be (the CLI): copied and hashed
        in one pass (``fleet.hashing.copy_and_hash``), bounded as an upload is."""
        too_large = PayloadTooLarge(
            f"the artifact is over [firmware] max_artifact_bytes ({self.max_bytes} bytes); nothing was stored"
        )
        if source.stat().st_size > self.max_bytes:
            raise too_large
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        path = self.staging_dir / f"{secrets.token_hex(16)}.part"
        try:
            copied = copy_and_hash(source, path)
            if copied.size > self.max_bytes:  # it grew while it was copied
                raise too_large
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return Staged(path, copied.sha256, copied.size)

    def sweep_staging(self, older_than_s: float = STALE_STAGING_S) -> int:
        """Remove ``.part`` files no running upload is writing (left by a crash); at start-up."""
        if not self.staging_dir.is_dir():
            return 0
        removed = 0
        cutoff = time.time() - older_than_s
        for path in self.staging_dir.glob("*.part"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        if removed:
            fsync_dir(self.staging_dir)
            log.info("removed %d unfinished firmware upload(s) from %s", removed, self.staging_dir)
        return removed

    def add(
        self, staged: Staged, *, model: str, version: str, signature: str, actor: str, notes: str = ""
    ) -> tuple[Release, bool]:
        """Check and keep a staged artifact as a release; (the release, whether it is new).

        The same model and version again with the same bytes answers the release there is
        (idempotent: a retry after a lost answer); with other bytes, Conflict. The staged file
        is gone afterwards, whatever happened."""
        try:
            model = _checked(model, Model, "model")
            version = _checked(version, Version, "version")
            notes = _checked(notes, Notes, "notes")
            fingerprint = self._verify(staged, model, version, signature, actor)
            with self.writer.read() as db:
                existing = self._existing(db, model, version, staged)
            if existing is not None:
                return existing, False
            blob_key = BLOB_PREFIX + staged.sha256
            with self.writer.read() as db:
                named = db.execute("SELECT 1 FROM firmware_releases WHERE sha256 = ?", [staged.sha256]).fetchone()
            # Content-addressed: bytes a release keeps are kept once. An orphan is put again, so that
            # it is young and the sweep leaves it be while this addition completes.
            if named is None or not self.blobs.exists(blob_key):
                self.blobs.put(staged.path, blob_key, staged.sha256)
            # The commit point: a crash before it leaves a blob no release names (never a row without its blob).
            with self.writer.write() as db:
                existing = self._existing(db, model, version, staged)
                if existing is not None:
                    return existing, False
                if not self.blobs.exists(blob_key):  # swept since it was put: only if this took a grace period
                    raise ServiceUnavailable(
                        f"the artifact's blob {blob_key} was swept while this release was being added; send it again"
                    )
                row = db.execute(
                    "INSERT INTO firmware_releases (model, version, sha256, size, signature, signed_by, blob_key, "
                    "notes, added_at, added_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    [
                        model,
                        version,
                        staged.sha256,
                        staged.size,
                        signature.strip(),
                        fingerprint,
                        blob_key,
                        notes,
                        to_iso(utc_now()),
                        actor,
                    ],
                ).fetchone()
                audit.record(
                    db,
                    actor=actor,
                    action="firmware-add",
                    object_type="firmware_release",
                    object_id=str(row[0]),
                    detail=f"{model} {version}: sha256 {staged.sha256}, {staged.size} bytes, signed by {fingerprint}",
                )
                return self._one(db, row[0]), True
        finally:
            staged.path.unlink(missing_ok=True)

    def _verify(self, staged: Staged, model: str, version: str, signature: str, actor: str) -> str:
        """The fingerprint of the release key that signed it; refused (audited) otherwise."""
        if staged.size == 0:
            raise BadRequest("the artifact is empty; nothing was stored")
        if not self.keys:
            self._refuse(actor, model, version, staged, "no release keys are configured")
            raise Conflict(
                "central has no [firmware] release_keys, so it can check no release: add the vendor's public key "
                "to central's config (docs/firmware.md); nothing was stored"
            )
        try:
            raw = parse_signature(signature)
        except ValueError as exc:
            self._refuse(actor, model, version, staged, f"unreadable signature: {exc}")
            raise BadRequest(f"signature: {exc}; nothing was stored") from None
        statement = statement_bytes(model=model, version=version, sha256=staged.sha256, size=staged.size)
        key = signed_by(statement, raw, [k.key for k in self.keys if k.may_sign(model)])
        elsewhere = None if key is not None else signed_by(statement, raw, [k.key for k in self.keys])
        if elsewhere is not None:  # a vendor's key, signing for a model that is not the vendor's
            models = next(k.models for k in self.keys if k.key is elsewhere) or ()
            fingerprint = key_fingerprint(elsewhere)
            self._refuse(actor, model, version, staged, f"signed by release key {fingerprint}, not one for {model}")
            raise BadRequest(
                f"the signature verifies under release key {fingerprint}, which may sign only for "
                f"{', '.join(sorted(models))}, not for {model}; nothing was stored ([firmware] release_keys)"
            )
        if key is None:
            self._refuse(actor, model, version, staged, "the signature verifies under no release key")
            raise BadRequest(
                f"the signature does not verify under any of central's {len(self.keys)} release key(s) for "
                f"{model} {version} with sha256 {staged.sha256} and {staged.size} bytes: the artifact was altered, "
                "or it was signed for another model or version, or by a key central does not trust; nothing was "
                "stored (docs/firmware.md says what is signed)"
            )
        return key_fingerprint(key)

    def _refuse(self, actor: str, model: str, version: str, staged: Staged, reason: str) -> None:
        with self.writer.write() as db:
            audit.record(
                db,
                actor=actor,
                action="firmware-refused",
                object_type="firmware_release",
                object_id=f"{model} {version}",
                detail=f"{reason}; sha256 {staged.sha256}, {staged.size} bytes",
            )

    def _existing(self, db, model: str, version: str, staged: Staged) -> Release | None:
        row = db.execute(f"SELECT {COLUMNS} FROM firmware_releases WHERE model = ? AND version = ?", [model, version])
        found = row.fetchone()
        if found is None:
            return None
        release = _release(found)
        if release.sha256 != staged.sha256:
            raise Conflict(
                f"release {release.id} is already {model} {version}, with other bytes (sha256 {release.sha256}); "
                "a version is released once: give the new artifact a new version"
            )
        return release

    # -- the orphan sweep -------------------------------------------------------------------

    def sweep_orphans(self, grace_s: float = ORPHAN_GRACE_S, *, dry_run: bool = False, actor: str = "central") -> Sweep:
        """Delete artifact blobs that no release names, stored more than ``grace_s`` ago (a crash
        between an addition's blob and its row leaves one); each deletion audited
        (``firmware-orphan-deleted``). Each is checked again and deleted inside a write
        transaction, so an addition adopting it commits either before (and it is kept) or after
        (and finds it gone: ``add`` checks inside its own)."""
        now = time.time()
        listed = [(key, at) for key, at in self.blobs.keys(BLOB_PREFIX) if BLOB_KEY.match(key)]
        with self.writer.read() as db:
            named = {r[0] for r in db.execute("SELECT DISTINCT sha256 FROM firmware_releases")}
        orphans = [(key, at) for key, at in listed if key[len(BLOB_PREFIX) :] not in named]
        old = [key for key, at in orphans if now - at >= grace_s]
        result = Sweep(deleted=[], deleted_bytes=0, young=len(orphans) - len(old), named=len(listed) - len(orphans))
        for key in old:
            with self.writer.write() as db:
                if db.execute("SELECT 1 FROM firmware_releases WHERE sha256 = ?", [key[len(BLOB_PREFIX) :]]).fetchone():
                    result.named += 1
                    continue
                try:
                    size = self.blobs.size(key)
                    stored = self.blobs.stored_at(key)
                except FileNotFoundError:
                    continue
                if time.time() - stored < grace_s:  # put again since it was listed
                    result.young += 1
                    continue
                result.deleted.append(key)
                result.deleted_bytes += size
                if dry_run:
                    continue
                self.blobs.delete(key)
                audit.record(
                    db,
                    actor=actor,
                    action="firmware-orphan-deleted",
                    object_type="firmware_blob",
                    object_id=key,
                    detail=f"{size} bytes no release names, stored {to_iso(datetime.fromtimestamp(stored, UTC))}",
                )
        if result.deleted and not dry_run:
            log.info("deleted %d firmware artifact(s) no release names", len(result.deleted))
        return result

    # -- reading --------------------------------------------------------------------------

    @staticmethod
    def _one(db, release_id: int) -> Release:
        return read(db, release_id)

    def release(self, release_id: int) -> Release:
        with self.writer.read() as db:
            return self._one(db, release_id)

    def releases(self, model: str | None = None, withdrawn: bool | None = None) -> list[Release]:
        """Newest first, optionally of one model, withdrawn or not."""
        where, params = [], []
        if model is not None:
            where.append("model = ?")
            params.append(model)
        if withdrawn is not None:
            where.append("withdrawn_at IS NOT NULL" if withdrawn else "withdrawn_at IS NULL")
        sql = f"SELECT {COLUMNS} FROM firmware_releases" + (f" WHERE {' AND '.join(where)}" if where else "")
        with self.writer.read() as db:
            return [_release(r) for r in db.execute(sql + " ORDER BY id DESC", params)]

    def artifact(self, release: Release, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The artifact's bytes (from ``start`` to ``end`` exclusive: a station resuming a download)."""
        key = BLOB_PREFIX + release.sha256
        try:
            self.blobs.size(key)
        except FileNotFoundError:
            log.error("firmware release %d names blob %s, which is missing", release.id, key)
            raise NotFound(
                f"the artifact of release {release.id} is missing from the blob store; this is logged for the operators"
            ) from None
        return self.blobs.read(key, start, end)

    # -- withdrawing ----------------------------------------------------------------------

    def withdraw(self, release_id: int, reason: str, actor: str) -> Release:
        """Mark a release withdrawn (audited): never offered again; its artifact is kept. Its running
        and paused deployments are aborted in the same transaction (their offers withdrawn), so no
        station goes on handing out an artifact that now answers 410."""
        if not reason.strip() or len(reason) > 500:
            raise BadRequest("a withdrawal needs a reason (at most 500 characters)")
        with self.writer.write() as db:
            release = self._one(db, release_id)
            if release.withdrawn_at is not None:
                raise Conflict(
                    f"release {release_id} ({release.model} {release.version}) was withdrawn already, "
                    f"on {to_iso(release.withdrawn_at)} by {release.withdrawn_by}"
                )
            db.execute(
                "UPDATE firmware_releases SET withdrawn_at = ?, withdrawn_by = ?, withdrawn_reason = ? WHERE id = ?",
                [to_iso(utc_now()), actor, reason.strip(), release_id],
            )
            audit.record(
                db,
                actor=actor,
                action="firmware-withdraw",
                object_type="firmware_release",
                object_id=str(release_id),
                detail=f"{release.model} {release.version}: {reason.strip()}",
            )
            self.deployments.release_withdrawn(db, release_id, reason.strip(), actor)
            return self._one(db, release_id)


def read(db, release_id: int) -> Release:
    """One release, in the caller's transaction; NotFound when there is none."""
    row = db.execute(f"SELECT {COLUMNS} FROM firmware_releases WHERE id = ?", [release_id]).fetchone()
    if row is None:
        raise NotFound(f"no firmware release {release_id}")
    return _release(row)


def of_version(db, model: str, version: str) -> Release | None:
    """The release of this model and version, if central holds one."""
    row = db.execute(
        f"SELECT {COLUMNS} FROM firmware_releases WHERE model = ? AND version = ?", [model, version]
    ).fetchone()
    return None if row is None else _release(row)


RELEASES = no_borough("firmware releases are the force's, of no borough: any station may fetch them")


class ReleaseController(Controller):
    path = "/api/v1/firmware/releases"
    tags = ["firmware"]

    @post(
        "/",
        status_code=201,
        summary="Add a firmware release: the artifact as the body, checked against the release keys",
        description="The body is the artifact's bytes (streamed, at most [firmware] max_artifact_bytes). "
        "201: a new release; 200: this model and version with these very bytes were released already.",
        guards=[user_with("fleet_manager")],
        scope=FORCE_WIDE,
        request_max_body_size=None,
        responses={
            200: ResponseSpec(data_container=Release, description="Released already, the same bytes"),
            **errors(409, 413),
        },
        on_loop=STREAMS,
    )
    async def add(
        self,
        request: Request,
        principal: Caller,
        releases: Injected[ReleaseService],
        model: FromQuery[str],
        version: FromQuery[str],
        signature: Annotated[str, QueryParameter(description="base64 Ed25519 signature of the release statement")],
        notes: FromQuery[str] = "",
    ) -> Response[Release]:
        too_large = (
            f"the artifact is over [firmware] max_artifact_bytes ({releases.max_bytes} bytes); nothing was stored"
        )
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and len(declared) < 20 and int(declared) > releases.max_bytes:
            raise PayloadTooLarge(too_large)
        staging = await anyio.to_thread.run_sync(releases.stage)
        # Read as a tus body is: a stall or a client gone ends it (never an upload held open for ever).
        body = RequestBody(
            request.stream(), releases.max_bytes, releases.idle_timeout_s, f"firmware {model[:40]!r}", too_large
        )
        try:
            gathered = bytearray()
            async for piece in body.pieces():
                gathered += piece
                if len(gathered) >= WRITE_PIECE:
                    await anyio.to_thread.run_sync(staging.write, bytes(gathered))
                    gathered.clear()
            if body.cut_short:
                raise BadRequest(
                    f"the artifact did not arrive whole ({body.seen} bytes, then the connection stalled or closed); "
                    "nothing was stored"
                )
            await anyio.to_thread.run_sync(staging.write, bytes(gathered))
            staged = await anyio.to_thread.run_sync(staging.finish)
        except BaseException:
            await anyio.to_thread.run_sync(staging.discard)
            raise

        def keep() -> tuple[Release, bool]:
            return releases.add(
                staged, model=model, version=version, signature=signature, actor=principal.name, notes=notes
            )

        release, created = await anyio.to_thread.run_sync(keep)
        return Response(release, status_code=201 if created else 200)

    @get(
        "/",
        summary="Firmware releases, newest first",
        guards=[station_or_user_with("fleet_manager")],
        scope=RELEASES,
        sync_to_thread=True,
    )
    def list_releases(
        self,
        principal: Caller,
        releases: Injected[ReleaseService],
        model: FromQuery[str | None] = None,
        withdrawn: FromQuery[bool | None] = None,
    ) -> list[Release]:
        return releases.releases(model, withdrawn)

    @get(
        "/{release_id:int}",
        summary="One firmware release",
        guards=[station_or_user_with("fleet_manager")],
        scope=RELEASES,
        sync_to_thread=True,
    )
    def get_release(self, principal: Caller, releases: Injected[ReleaseService], release_id: ReleasePath) -> Release:
        return releases.release(release_id)

    @get(
        "/{release_id:int}/artifact",
        summary="A release's artifact (streamed; Range supported, so a station resumes a cut download); "
        "a withdrawn release's is 410 to stations",
        media_type="application/octet-stream",
        guards=[station_or_user_with("fleet_manager")],
        scope=RELEASES,
        responses={
            206: ResponseSpec(
                data_container=bytes,
                media_type="application/octet-stream",
                description="The bytes of the Range asked for (Content-Range says which)",
            ),
            **errors(410, 416),
        },
        sync_to_thread=True,
    )
    def get_artifact(
        self, request: Request, principal: Caller, releases: Injected[ReleaseService], release_id: ReleasePath
    ) -> Stream:
        release = releases.release(release_id)
        if release.withdrawn_at is not None and principal.is_station:
            raise Gone(
                f"release {release_id} ({release.model} {release.version}) was withdrawn: "
                f"{release.withdrawn_reason}; no camera is to be given it"
            )
        span = parse_range(request.headers.get("range"), release.size, "artifact")
        start, end = span or (0, release.size)
        headers = {
            "Accept-Ranges": "bytes",
            "Content-Length": str(end - start),
            "ETag": f'"{release.sha256}"',
            "Fleet-Artifact-Sha256": release.sha256,
            "Content-Disposition": f'attachment; filename="firmware-{release.id}.bin"',
        }
        if span:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{release.size}"
        # A plain iterator: Litestar takes each piece on a worker thread, so a slow store never blocks the loop.
        return Stream(
            releases.artifact(release, start, end),
            status_code=206 if span else 200,
            headers=headers,
            media_type="application/octet-stream",
        )

    @post(
        "/{release_id:int}/withdraw",
        status_code=200,
        summary="Withdraw a release: never offered again (audited); the artifact is kept",
        guards=[user_with("fleet_manager")],
        scope=FORCE_WIDE,
        responses=errors(409),
        sync_to_thread=True,
    )
    def withdraw(
        self,
        principal: Caller,
        releases: Injected[ReleaseService],
        release_id: ReleasePath,
        data: JSONBody[WithdrawRequest],
    ) -> Release:
        return releases.withdraw(release_id, data.reason, principal.name)
