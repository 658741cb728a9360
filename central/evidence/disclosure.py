"""Disclosure to prosecutors: a case's clips as one signed package (``fleet.bundle``'s format).

A supervisor gathers clips into a case (a case hold covers them), then exports the package
for a named receiver. The export is recorded first, in each clip's chain of custody, so the
custody report inside the package ends with the export itself. The package is streamed as a
zip (stored, not compressed: video does not compress) while the clips are read from the blob
store, so its size never meets central's memory; each clip's bytes are hashed on the way and
a clip whose bytes are not its recorded SHA-256 ends the download with an error rather than
sending the receiver something the index vouches for falsely.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import zipfile
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.params import JSONBody, PathParameter
from litestar.response import Stream
from msgspec import Struct

from central.access.auth import Caller, user_with
from central.access.scope import PUBLIC, in_path, touches
from central.core.database import Database
from central.core.openapi import errors
from central.core.providers import Injected
from central.evidence import audit
from central.evidence.custody import CustodyRecord, custody
from central.evidence.retention import Text
from central.evidence.signing import PublishedKey, Signer
from central.uploads.blobstore import BlobStore
from fleet import bundle, csvio
from fleet.clock import from_iso, to_iso, utc_now
from fleet.config import CentralSettings
from fleet.errors import NotFound

log = logging.getLogger(__name__)

README = """\
Disclosure package: case {case_ref}
Prepared {prepared_at} by {prepared_by} for {prepared_for}.

index.json lists every file in this package with its SHA-256; index.sig is central's Ed25519
signature of index.json. Each clip in clips/ is the camera's recording as verified when it
reached central (its SHA-256 is in manifest.csv and index.json); custody/ holds each clip's
chain of custody, this disclosure included.

To check that nothing was altered, with the `fleet` program:

    fleet verify-bundle <this folder or zip> --public-key <central's public key>

Take central's public key from the force (GET /api/v1/disclosure/keys on central, or as the
force publishes it), never from a package: anyone can sign a package with a key of their own.
This package says its signing key has the fingerprint {fingerprint}; the command prints the
fingerprint of the key it checked.
"""


class ManifestRow(Struct, kw_only=True):
    clip_id: str
    sha256: str
    size: int
    recorded_at: datetime
    device_serial: str | None
    officer_id: str | None
    categories: str
    file: str


class CaseClip(Struct, kw_only=True):
    clip_id: str
    added_at: datetime
    sha256: str | None = None
    size: int | None = None
    recorded_at: datetime | None = None
    device_serial: str | None = None
    officer_id: str | None = None
    categories: list[str] = []
    absent: str | None = None
    """Why the clip's bytes cannot be disclosed (not uploaded yet, deleted); None when they can."""


class CaseFile(Struct, kw_only=True):
    case_ref: str
    held: bool
    """A case hold is in force (its clips are kept whatever their retention)."""
    clips: list[CaseClip]


class CaseSummary(Struct, kw_only=True):
    case_ref: str
    opened_at: datetime
    held: bool
    clips: int


class _Sink:
    """Where zipfile writes: bytes taken out as they come (zipfile handles an unseekable sink)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


class DisclosureService:
    def __init__(self, writer: Database, blobs: BlobStore, settings: CentralSettings) -> None:
        self.writer = writer
        self.blobs = blobs
        self.settings = settings
        self._signer: Signer | None = None
        self._lock = threading.Lock()

    def signer(self) -> Signer:
        """The signing key, read once (a serving central reads it at start-up: a bad key file stops it)."""
        with self._lock:
            if self._signer is None:
                self._signer = Signer.from_settings(self.settings, single_machine=not self.writer.dialect.postgres)
            return self._signer

    def cases(self, limit: int = 500) -> list[CaseSummary]:
        """Every case a hold was placed on, newest first."""
        with self.writer.read() as db:
            rows = db.execute(
                "SELECT h.case_ref, MIN(h.created_at), COUNT(*) - COUNT(h.released_at), "
                "(SELECT COUNT(*) FROM case_clips cc WHERE cc.case_ref = h.case_ref) "
                "FROM holds h WHERE h.kind = 'case' GROUP BY h.case_ref ORDER BY 2 DESC, 1 LIMIT ?",
                [limit],
            ).fetchall()
        return [CaseSummary(case_ref=r[0], opened_at=from_iso(r[1]), held=r[2] > 0, clips=r[3]) for r in rows]

    def case(self, case_ref: str) -> CaseFile:
        with self.writer.read() as db:
            return self.case_in(db, case_ref)

    def case_in(self, db, case_ref: str) -> CaseFile:
        """``case`` inside a transaction the caller holds."""
        held = db.execute(
            "SELECT COUNT(*), COUNT(*) - COUNT(released_at) FROM holds WHERE kind = 'case' AND case_ref = ?", [case_ref]
        ).fetchone()
        rows = db.execute(
            "SELECT cc.clip_id, cc.added_at, c.sha256, c.size, c.recorded_at, c.device_serial, a.officer_id, "
            "c.categories, c.state, c.blob_key, r.deleted_at, r.purged_at "
            "FROM case_clips cc LEFT JOIN clips c ON c.clip_id = cc.clip_id "
            "LEFT JOIN clip_retention r ON r.clip_id = cc.clip_id "
            "LEFT JOIN attributions a ON a.clip_id = cc.clip_id WHERE cc.case_ref = ? ORDER BY cc.clip_id",
            [case_ref],
        ).fetchall()
        if not held[0] and not rows:
            raise NotFound(f"no case {case_ref}")
        clips = []
        for r in rows:
            absent = None
            if r[11]:
                absent = f"purged on {r[11][:10]} at the end of its retention, before the case held it"
            elif r[10]:
                absent = f"deleted on {r[10][:10]} (retention ended); an admin can restore it until it is purged"
            elif r[8] != "verified" or r[9] is None:
                absent = "not uploaded to central yet"
            clips.append(
                CaseClip(
                    clip_id=r[0],
                    added_at=from_iso(r[1]),
                    sha256=r[2],
                    size=r[3],
                    recorded_at=from_iso(r[4]) if r[4] else None,
                    device_serial=r[5],
                    officer_id=r[6],
                    categories=json.loads(r[7]) if r[7] else [],
                    absent=absent,
                )
            )
        return CaseFile(case_ref=case_ref, held=held[1] > 0, clips=clips)

    def export(self, case_ref: str, actor: str, prepared_for: str, reason: str) -> Iterator[bytes]:
        """Record the disclosure in every clip's custody, then the package as zip bytes, piece by piece."""
        signer = self.signer()
        signer.ready()  # before anything is recorded as disclosed
        now = utc_now()
        with self.writer.write() as db:
            case = self.case_in(db, case_ref)
            present = [c for c in case.clips if c.absent is None]
            detail = f"case {case_ref}: disclosure package for {prepared_for}: {reason}"
            disclosed = [("clip", c.clip_id) for c in present] + [("case", case_ref)]
            audit.record_many(
                db,
                [
                    {"actor": actor, "action": "disclose", "object_type": kind, "object_id": key, "detail": detail}
                    for kind, key in disclosed
                ],
            )
            chains = {c.clip_id: _for_this_case(custody(db, c.clip_id), case_ref) for c in present}
            keys = {
                c.clip_id: db.execute("SELECT blob_key FROM clips WHERE clip_id = ?", [c.clip_id]).fetchone()[0]
                for c in present
            }
        index, small_files = _index(case, present, chains, signer, actor, prepared_for, reason, now)
        index_bytes = bundle.encode_index(index)
        signature = signer.sign(index_bytes).hex().encode() + b"\n"
        pieces = self._stream(index_bytes, signature, small_files, present, keys)
        return self._recorded_if_cut(pieces, actor, disclosed, f"case {case_ref}: the package for {prepared_for}")

    def _recorded_if_cut(
        self, pieces: Iterator[bytes], actor: str, disclosed: list[tuple[str, str]], what: str
    ) -> Iterator[bytes]:
        """The package's pieces; a package not delivered whole (a damaged blob, the receiver gone)
        is recorded as such beside its ``disclose`` records, so custody never reads as delivered."""
        try:
            yield from pieces
        except BaseException as exc:  # GeneratorExit too: the download was cut off
            why = "the download was cut off" if isinstance(exc, GeneratorExit) else str(exc)
            with self.writer.write() as db:
                audit.record_many(
                    db,
                    [
                        {
                            "actor": actor,
                            "action": "disclose-failed",
                            "object_type": kind,
                            "object_id": key,
                            "detail": f"{what} was not delivered whole: {why}",
                        }
                        for kind, key in disclosed
                    ],
                )
            raise

    def _stream(
        self,
        index_bytes: bytes,
        signature: bytes,
        small_files: dict[str, bytes],
        present: list[CaseClip],
        keys: dict[str, str],
    ) -> Iterator[bytes]:
        sink = _Sink()
        with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, data in [(bundle.INDEX, index_bytes), (bundle.SIGNATURE, signature), *small_files.items()]:
                archive.writestr(name, data)
                yield sink.take()
            for clip in present:
                digest = hashlib.sha256()
                with archive.open(_clip_file(clip.clip_id), "w", force_zip64=True) as member:
                    for piece in self.blobs.read(keys[clip.clip_id]):
                        digest.update(piece)
                        member.write(piece)
                        yield sink.take()
                if digest.hexdigest() != clip.sha256:
                    log.error("disclosure: clip %s in the blob store is not its recorded bytes", clip.clip_id)
                    raise RuntimeError(f"clip {clip.clip_id}'s stored bytes are not its recorded SHA-256; export ended")
        yield sink.take()


def _for_this_case(records: list[CustodyRecord], case_ref: str) -> list[CustodyRecord]:
    """A clip's custody as this case's receiver may read it: every step stays (its time, action and
    place), but what another case did with the clip (to whom it was disclosed or shared, and why)
    is that case's business, withheld from this package."""
    own = f"case {case_ref}:"
    for record in records:
        if record.detail.startswith("case ") and not record.detail.startswith(own):
            record.detail = "another case: withheld from this package"
            if record.actor.startswith("share #"):
                record.actor = "another case's share link"
    return records


def _clip_file(clip_id: str) -> str:
    return f"clips/{clip_id}.mp4"


def _index(
    case: CaseFile,
    present: list[CaseClip],
    chains: dict[str, list[CustodyRecord]],
    signer: Signer,
    actor: str,
    prepared_for: str,
    reason: str,
    now: datetime,
) -> tuple[bundle.BundleIndex, dict[str, bytes]]:
    """The index and the package's small files (README, manifest, custody reports), by name."""
    public_key = signer.ready()
    files: dict[str, bytes] = {
        "README.txt": README.format(
            case_ref=case.case_ref,
            prepared_at=to_iso(now),
            prepared_by=actor,
            prepared_for=prepared_for,
            fingerprint=bundle.key_fingerprint(public_key),
        ).encode(),
        "manifest.csv": csvio.write_csv(
            [
                ManifestRow(
                    clip_id=c.clip_id,
                    sha256=c.sha256 or "",
                    size=c.size or 0,
                    recorded_at=c.recorded_at or now,
                    device_serial=c.device_serial,
                    officer_id=c.officer_id,
                    categories=" ".join(c.categories),
                    file=_clip_file(c.clip_id),
                )
                for c in present
            ],
            ManifestRow,
        ).encode(),
    }
    for clip in present:
        files[f"custody/{clip.clip_id}.csv"] = csvio.write_csv(chains[clip.clip_id], CustodyRecord).encode()
    listed = [
        bundle.BundleFile(path=name, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        for name, data in files.items()
    ] + [bundle.BundleFile(path=_clip_file(c.clip_id), sha256=c.sha256 or "", size=c.size or 0) for c in present]
    index = bundle.BundleIndex(
        format=bundle.FORMAT,
        case_ref=case.case_ref,
        prepared_at=now,
        prepared_by=actor,
        prepared_for=prepared_for,
        reason=reason,
        public_key=public_key,
        clips=[
            bundle.BundleClip(
                clip_id=c.clip_id,
                sha256=c.sha256 or "",
                size=c.size or 0,
                recorded_at=c.recorded_at or now,
                device_serial=c.device_serial,
                officer_id=c.officer_id,
                categories=c.categories,
                file=_clip_file(c.clip_id),
                custody=f"custody/{c.clip_id}.csv",
            )
            for c in present
        ],
        absent=[bundle.AbsentClip(clip_id=c.clip_id, reason=c.absent) for c in case.clips if c.absent is not None],
        files=listed,
    )
    return index, files


class DisclosureRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    prepared_for: Text
    """Who receives the package ("CPS London South, reviewing lawyer J. Smith")."""
    reason: Text


CasePath = Annotated[str, PathParameter(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


def package_response(stream: Iterator[bytes], case_ref: str) -> Stream:
    """The package as a download (a plain iterator: Litestar reads each piece on a worker thread)."""
    return Stream(
        stream,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="disclosure-{case_ref}.zip"'},
    )


class DisclosureController(Controller):
    path = "/api/v1"
    tags = ["disclosure"]

    @get(
        "/disclosure/keys",
        summary="The keys that sign disclosure packages (give one to `fleet verify-bundle --public-key`)",
        scope=PUBLIC,  # published so that anyone holding a package can check it: the same answer for all
        sync_to_thread=True,
    )
    def keys(self, disclosure: Injected[DisclosureService]) -> list[PublishedKey]:
        return disclosure.signer().published()

    @get(
        "/cases/{case_ref:str}",
        summary="A case: its clips, and which of them can be disclosed",
        guards=[user_with("supervisor")],
        scope=touches(in_path("case", "case_ref")),
        responses=errors(404),
        sync_to_thread=True,
    )
    def case(self, principal: Caller, disclosure: Injected[DisclosureService], case_ref: CasePath) -> CaseFile:
        return disclosure.case(case_ref)

    @post(
        "/cases/{case_ref:str}/disclosure",
        summary="Export the case's disclosure package (a zip: clips, manifest, custody, signed index)",
        guards=[user_with("supervisor")],
        scope=touches(in_path("case", "case_ref")),
        status_code=200,
        media_type="application/zip",
        responses=errors(404, 409),
        sync_to_thread=True,
    )
    def export(
        self,
        principal: Caller,
        disclosure: Injected[DisclosureService],
        case_ref: CasePath,
        data: JSONBody[DisclosureRequest],
    ) -> Stream:
        return package_response(disclosure.export(case_ref, principal.name, data.prepared_for, data.reason), case_ref)
