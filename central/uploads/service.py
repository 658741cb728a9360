"""An upload's commits: created, bytes counted, verified, forgotten.

Each commit writes the upload (``central.uploads.records``) and, in the same transaction, what
follows from it elsewhere: the clip's record (``central.evidence.clip_records``) and, when
verified, the station's waiting ingest claim (``central.events.claims``), the custody record
and the camera's last upload (``central.registry.devices``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from central.core.database import Database
from central.events import claims
from central.evidence import audit, clip_records
from central.registry import devices, stations
from central.uploads import records
from central.uploads.records import Upload
from fleet.clock import from_iso, to_iso, utc_now
from fleet.errors import Conflict
from fleet.protocol import UploadMetadata


class UploadService:
    """Reads and writes of uploads; one per process (the receiver's)."""

    def __init__(self, writer: Database, station_boroughs: Mapping[str, str] | None = None) -> None:
        self.writer = writer
        self.station_boroughs = station_boroughs or {}
        """Each station's borough (``[stations.<id>]``): whose cameras its uploads speak for."""

    def upload(self, upload_id: str) -> Upload | None:
        with self.writer.read() as db:
            return records.by(db, "upload_id", upload_id)

    def written(self, upload_id: str) -> Upload:
        """An upload this process has just written: its row is there."""
        upload = self.upload(upload_id)
        if upload is None:
            raise RuntimeError(f"upload {upload_id} is gone right after it was written")
        return upload

    def upload_for_clip(self, clip_id: str) -> Upload | None:
        with self.writer.read() as db:
            return records.by(db, "clip_id", clip_id)

    def reported_ingest(self, clip_id: str, station_id: str, sha256: str, size: int) -> bool:
        """Whether ``station_id`` reported the ingest of this very clip (its claim waits for the upload)."""
        with self.writer.read() as db:
            return claims.waiting(db, clip_id, station_id) == (size, sha256)

    def reports_pending(self, station_id: str) -> bool:
        """Whether ``station_id``'s acknowledged reports are still being applied (``stations.applying``)."""
        with self.writer.read() as db:
            return stations.applying(db, station_id)

    def upload_for_new_clip(self, clip_id: str, station_id: str | None, sha256: str, size: int) -> Upload | None:
        """The clip's upload, if it has one. If not, these bytes may become it unless another station
        reported the clip with other bytes (``claims.claimed_elsewhere``): 409, before anything is
        stored. One read for both."""
        with self.writer.read() as db:
            existing = records.by(db, "clip_id", clip_id)
            if existing is None and (reason := claims.claimed_elsewhere(db, clip_id, station_id, sha256, size)):
                raise Conflict(reason)
        return existing

    def create_upload(
        self,
        upload_id: str,
        meta: UploadMetadata,
        raw_metadata: str,
        length: int,
        station_id: str | None,
        expires_at: datetime,
        staging: tuple[str, int] | None = None,
    ) -> Upload:
        """Insert the upload and its 'receiving' clip row, unless the clip already has one.
        ``staging``: its multipart upload and part size, for an upload staged in the bucket.

        Not a durable commit: it acknowledges no bytes. A power cut may take it back; the
        station then finds the upload gone (404) and creates it again. Every commit that
        counts bytes or says "verified" is durable, and makes this one durable with it."""
        with self.writer.write(durable=False) as db:
            existing = self.upload_for_clip(str(meta.clip_id))
            if existing:
                return existing
            self._refuse_if_claimed_elsewhere(db, meta, length, station_id)
            self._insert(db, upload_id, meta, raw_metadata, length, station_id, expires_at, staging)
        return self.written(upload_id)

    def record_stored_upload(
        self,
        upload_id: str,
        meta: UploadMetadata,
        raw_metadata: str,
        length: int,
        station_id: str | None,
        blob_key: str,
    ) -> Upload:
        """A clip that came whole in its creation request and is stored: its upload and clip rows,
        both verified, in one durable commit (no 'receiving' commit before it). The clip's
        existing upload instead, if it has one."""
        with self.writer.write() as db:
            existing = self.upload_for_clip(str(meta.clip_id))
            if existing:
                return existing
            self._refuse_if_claimed_elsewhere(db, meta, length, station_id)
            self._insert(db, upload_id, meta, raw_metadata, length, station_id, None)
            self._verify(db, upload_id, blob_key)
        return Upload(
            upload_id, str(meta.clip_id), station_id, length, length, raw_metadata, meta.sha256, "verified", None
        )

    @staticmethod
    def _refuse_if_claimed_elsewhere(db, meta: UploadMetadata, length: int, station_id: str | None) -> None:
        """``upload_for_new_clip``'s refusal again, in the transaction that makes the clip's upload: a
        report applied after that check (a large whole clip's check comes before its whole transfer)
        names the clip's bytes all the same."""
        if reason := claims.claimed_elsewhere(db, str(meta.clip_id), station_id, meta.sha256, length):
            raise Conflict(reason)

    @staticmethod
    def _insert(
        db,
        upload_id: str,
        meta: UploadMetadata,
        raw_metadata: str,
        length: int,
        station_id: str | None,
        expires_at: datetime | None,
        staging: tuple[str, int] | None = None,
    ) -> None:
        records.insert(
            db,
            upload_id,
            str(meta.clip_id),
            station_id,
            length,
            raw_metadata,
            meta.sha256,
            to_iso(utc_now()),
            expires_at,
            *(staging or ()),
        )
        clip_records.begin(db, upload_id, meta, length, station_id)

    def set_offset(self, upload_id: str, offset: int, expires_at: datetime) -> None:
        with self.writer.write() as db:
            records.set_offset(db, upload_id, offset, to_iso(utc_now()), expires_at)

    def stage(
        self, upload: Upload, offset: int, new_parts_md5: str, tail: str | None, expires_at: datetime
    ) -> Upload | None:
        """Count a staged upload's bytes up to ``offset`` (a durable commit), if it is still at the
        offset ``upload`` was read at; None if another replica moved it meanwhile."""
        with self.writer.write() as db:
            moved = records.stage(
                db, upload.upload_id, upload.offset, offset, new_parts_md5, tail, to_iso(utc_now()), expires_at
            )
        return self.written(upload.upload_id) if moved else None

    def restage(self, upload_id: str, old: str, multipart_id: str, expires_at: datetime) -> Upload | None:
        """A staged upload starts again at 0 in a new multipart upload, if still in ``old``; else None."""
        with self.writer.write() as db:
            restarted = records.restage(db, upload_id, old, multipart_id, to_iso(utc_now()), expires_at)
        return self.written(upload_id) if restarted else None

    def mark_verified(self, upload_id: str, blob_key: str) -> None:
        """The clip is stored: the one commit after which central answers 'verified'."""
        with self.writer.write() as db:
            self._verify(db, upload_id, blob_key)

    def _verify(self, db, upload_id: str, blob_key: str) -> None:
        now = to_iso(utc_now())
        # The clip by its key, found through the upload's (clips has no index on upload_id:
        # looking it up by that scanned every clip, ever more slowly as the month went on).
        clip_id = records.verify(db, upload_id, now)
        clip = clip_id and clip_records.verify(db, clip_id, upload_id, blob_key, now)
        if clip:
            clip_id, station_id, sha256, size, serial = clip
            # A station's ingest reported before this upload joins the chain now, if it matches.
            claims.settle(db, clip_id, station_id, sha256, size, self.station_boroughs)
            audit.record(
                db,
                actor=f"station:{station_id}" if station_id else "upload",
                action="upload-verified",
                object_type="clip",
                object_id=clip_id,
                at=from_iso(now),
                detail=f"whole-file SHA-256 {sha256} matched, {size} bytes stored",
            )
            # The camera's last upload is central's to say, now: not when the station, told
            # "verified", reports it back (``clip_verified``, applied later and kept if later).
            borough = self.station_boroughs.get(station_id) if station_id else None
            devices.record_upload(db, serial, now, station=station_id is not None, borough=borough)

    def delete_upload(self, upload_id: str) -> None:
        """Forget an unfinished upload (termination or expiry); verified ones are never deleted here."""
        with self.writer.write() as db:
            clip_id = records.forget(db, upload_id)
            if clip_id is not None:
                clip_records.abandon(db, clip_id, upload_id)

    def receiving_uploads(self) -> list[Upload]:
        with self.writer.read() as db:
            return records.receiving(db)

    def expired_uploads(self, now: datetime) -> list[Upload]:
        with self.writer.read() as db:
            return records.expired(db, now)
