"""Receiving an upload staged in the S3 bucket (``[blobs] stage_uploads``): resumable through any replica.

Durability rules (the ``.part`` file's are in ``central.uploads.receiver``):

- A PATCH's bytes are cut into the upload's parts as they arrive, each sent as it fills (up to
  ``upload_concurrency`` in flight); what is left after the last whole part becomes a new tail
  object (``central.uploads.s3parts``). Only then does one durable commit count the bytes, and
  only if the row is still at the offset this PATCH started from: a second replica writing the
  same upload meanwhile is refused (409, ask the offset again). The row names the parts (their
  MD5s) and the tail; what else the bucket holds (a part sent again, a tail never named) does
  not count, and is replaced, or swept by the expiry job.
- A checksummed chunk counts only when complete and matching; a chunk cut short without one
  keeps what arrived, as a ``.part`` file does.
- The whole clip's SHA-256: the replica that received every byte since 0 kept it running and
  checks it before completing, so a wrong clip is never even visible. hashlib's state cannot be
  stored, so a replica that resumed an upload begun elsewhere completes it, reads the object
  back once and hashes it (about the time the clip takes to download), and deletes it if it
  does not match. Either way a mismatch restarts the upload at 0, as with a ``.part`` file.
- "Verified" is committed after the object is completed and checked. A replica that died in
  between leaves a receiving row whose multipart upload is gone: the next PATCH (or the expiry
  job) finds the object under the clip's key, hashes it and records it; or, if the object is
  not there or not the clip, restarts the upload at 0.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from central.uploads.body import RequestBody
from central.uploads.records import Upload
from central.uploads.service import UploadService
from fleet.clock import utc_now
from fleet.errors import BlobStoreUnavailable, ChecksumMismatch, Conflict, NotFound, OffsetMismatch
from fleet.hashing import new_checksum
from fleet.protocol import UploadMetadata

if TYPE_CHECKING:
    from central.uploads.blobstore import BlobStore
    from central.uploads.receiver import Checksum
    from central.uploads.s3parts import S3Parts

log = logging.getLogger(__name__)

HASH_BATCH_BYTES = 4 << 20
"""Received bytes are hashed on a worker thread in batches of this size (hashlib releases the GIL)."""


def staging_for(
    blobs: BlobStore, uploads: UploadService, *, expiry: timedelta, body_idle_timeout_s: float
) -> StagedUploads | None:
    """Staged uploads when the blob store keeps them (S3 with ``stage_uploads``), else None."""
    if not getattr(blobs, "stages_uploads", False):
        return None
    from central.uploads.blobstore_s3 import S3BlobStore  # boto3 is slow to import: only when used
    from central.uploads.s3parts import S3Parts

    assert isinstance(blobs, S3BlobStore)
    return StagedUploads(uploads, S3Parts(blobs), expiry=expiry, body_idle_timeout_s=body_idle_timeout_s)


class StagedUploads:
    """The staged uploads of this process; the receiver holds each upload's lock around a call."""

    def __init__(
        self, uploads: UploadService, parts: S3Parts, *, expiry: timedelta, body_idle_timeout_s: float
    ) -> None:
        self.uploads = uploads
        self.parts = parts
        self.expiry = expiry
        self.body_idle_timeout_s = body_idle_timeout_s
        self._hashes: dict[str, tuple[int, Any]] = {}
        """{upload: (offset, SHA-256 of bytes 0..offset)} for uploads this process received from 0."""
        self._hashing = ThreadPoolExecutor(1, thread_name_prefix="stage-hash")
        self._sending = ThreadPoolExecutor(2 * parts.concurrency, thread_name_prefix="stage-s3")

    def close(self) -> None:
        self._sending.shutdown(wait=True)
        self._hashing.shutdown(wait=True)

    # -- creation ----------------------------------------------------------------------------------

    def create(
        self, upload_id: str, meta: UploadMetadata, raw_metadata: str, length: int, station_id: str | None
    ) -> Upload:
        """On a worker thread: the upload with its multipart upload begun, or the clip's existing one."""
        clip_id = str(meta.clip_id)
        multipart_id = self.parts.begin(clip_id, meta.sha256)
        try:
            upload = self.uploads.create_upload(
                upload_id,
                meta,
                raw_metadata,
                length,
                station_id,
                utc_now() + self.expiry,
                staging=(multipart_id, self.parts.part_bytes(length)),
            )
        except BaseException:  # refused (another station's report names other bytes), or failed
            self._abort_quietly(clip_id, multipart_id)
            raise
        if upload.multipart_id != multipart_id:  # the clip had an upload already
            self._abort_quietly(clip_id, multipart_id)
        return upload

    # -- appending ---------------------------------------------------------------------------------

    async def append(self, upload: Upload, checksum: Checksum | None, body: AsyncIterator[bytes]) -> Upload:
        """A PATCH's bytes, from ``upload.offset`` (checked by the caller) onwards."""
        known = self._whole_hash(upload)
        running = known.copy() if known is not None else None  # the cache moves only once bytes count
        chunk = new_checksum(checksum.algorithm) if checksum else None
        buffer = bytearray()
        if upload.tail_bytes:
            buffer += await asyncio.to_thread(self._tail, upload)
        sender = _Sender(self, upload)
        hasher = _Hasher(self._hashing, [d for d in (running, chunk) if d is not None])
        reader = RequestBody(body, upload.length - upload.offset, self.body_idle_timeout_s, upload.upload_id)
        try:
            try:
                async for piece in reader.pieces():
                    buffer += piece
                    await hasher.feed(piece)
                    while len(buffer) >= upload.part_bytes:
                        await sender.send(bytes(buffer[: upload.part_bytes]))
                        del buffer[: upload.part_bytes]
                await hasher.drain()
            except BaseException:
                await sender.drain_quietly()
                await hasher.drain_quietly()
                raise
            if checksum is not None and chunk is not None and (reader.cut_short or chunk.digest() != checksum.digest):
                await sender.drain_quietly()
                if reader.cut_short:  # nothing counted; the client resumes from the same offset
                    return upload
                raise ChecksumMismatch(
                    f"the chunk's {checksum.algorithm} does not match Upload-Checksum; "
                    f"it was discarded, send it again from offset {upload.offset}"
                )
            offset = upload.offset + reader.seen
            if offset == upload.length and not reader.cut_short:
                if buffer:
                    await sender.send(bytes(buffer))  # the last part may be smaller than the others
                sent = await sender.results()
                return await self._finish(upload, upload.part_md5s + sent, running)
            sent = await sender.results()
        except _Gone:
            return await asyncio.to_thread(self._settle_gone, upload)
        if offset == upload.offset:
            return upload  # an empty PATCH: nothing to count
        return await asyncio.to_thread(self._count, upload, offset, sent, bytes(buffer), running)

    def _count(self, upload: Upload, offset: int, sent: list[str], rest: bytes, running: Any) -> Upload:
        """On a worker thread: store the new tail, then count the bytes in one durable commit."""
        tail = self.parts.put_tail(upload.upload_id, rest) if rest else None
        moved = self.uploads.stage(upload, offset, "".join(sent), tail, utc_now() + self.expiry)
        if moved is None:
            self._forget_tail(tail)  # only this PATCH's own: the row names another's now
            raise OffsetMismatch(
                f"upload {upload.upload_id} was written by another central process meanwhile: ask its offset (HEAD)"
            )
        self._forget_tail(upload.tail)
        if running is not None:
            self._hashes[upload.upload_id] = (offset, running)
        return moved

    def _tail(self, upload: Upload) -> bytes:
        assert upload.tail is not None, "counted bytes after the last part without a tail object"
        try:
            data = self.parts.tail(upload.tail)
        except FileNotFoundError:  # replaced by another replica's PATCH, or removed, since the row was read
            now = self.uploads.upload(upload.upload_id)
            if now is None or now.tail != upload.tail:
                raise OffsetMismatch(
                    f"upload {upload.upload_id} changed meanwhile: ask its offset again (HEAD)"
                ) from None
            data = b""  # named, yet gone: the counted bytes are lost (below)
        if len(data) != upload.tail_bytes:
            self._restart(upload)
            raise OffsetMismatch(_LOST)
        return data

    def _whole_hash(self, upload: Upload) -> Any:
        """The running SHA-256 of bytes 0..offset, if this process has it (None: hash the object at the end)."""
        cached = self._hashes.get(upload.upload_id)
        if cached is not None and cached[0] == upload.offset:
            return cached[1]
        if upload.offset == 0:
            return hashlib.sha256()
        return None

    # -- completing --------------------------------------------------------------------------------

    async def _finish(self, upload: Upload, md5s: list[str], running: Any) -> Upload:
        """Every part is sent: check the SHA-256 (now, or once stored), complete, say verified."""
        if running is not None and running.hexdigest() != upload.sha256:
            await asyncio.to_thread(self._restart, upload)
            raise _mismatch(running.hexdigest(), upload.sha256)
        return await asyncio.to_thread(self._complete, upload, md5s, running)

    def _complete(self, upload: Upload, md5s: list[str], running: Any) -> Upload:
        from central.uploads.s3parts import AlreadyStored, NotAsSent, UploadGone

        try:
            self.parts.complete(upload.clip_id, upload.multipart_id or "", md5s, upload.length, upload.sha256)
        except UploadGone:
            return self._settle_gone(upload)
        except AlreadyStored:
            return self._settle_stored(upload)
        except NotAsSent as exc:
            log.warning("upload %s: %s; restarted at 0", upload.upload_id, exc)
            self._restart(upload)
            raise ChecksumMismatch(
                "the parts central stored for this upload do not make the clip; "
                "the upload was reset to offset 0: send the clip again"
            ) from None
        except BlobStoreUnavailable:
            # Every part is stored: count them, so the station's retry (an empty PATCH at the end) completes it.
            if upload.offset != upload.length:
                sent = md5s[len(upload.part_md5s) :]
                if self.uploads.stage(upload, upload.length, "".join(sent), None, utc_now() + self.expiry):
                    if running is not None:
                        self._hashes[upload.upload_id] = (upload.length, running)
                    self._forget_tail(upload.tail)
            raise
        if running is None:  # resumed here: the bytes before were hashed by another process
            digest = self.parts.sha256(upload.clip_id)
            if digest != upload.sha256:
                self.parts.delete(upload.clip_id)
                self._restart(upload)
                raise _mismatch(digest, upload.sha256)
        return self._verified(upload)

    def _verified(self, upload: Upload) -> Upload:
        self.uploads.mark_verified(upload.upload_id, upload.clip_id)
        self._hashes.pop(upload.upload_id, None)
        self.parts.drop_tails(upload.upload_id)
        log.info(
            "clip %s verified (%d bytes, sha256 %s), staged in the bucket", upload.clip_id, upload.length, upload.sha256
        )
        return self.uploads.written(upload.upload_id)

    def _settle_gone(self, upload: Upload) -> Upload:
        """The multipart upload is gone: completed by a process that died before recording it
        (record the clip, if it is the clip), or aborted (restart at 0)."""
        now = self.uploads.upload(upload.upload_id)
        if now is None:
            raise NotFound(f"no upload {upload.upload_id} (it was terminated or expired): create it again")
        if now.verified:
            return now  # finished by another process
        if now.multipart_id != upload.multipart_id:
            raise OffsetMismatch(f"upload {upload.upload_id} changed meanwhile: ask its offset again (HEAD)")
        if self._holds_the_clip(now):
            log.info("clip %s was stored before its commit: recorded now", now.clip_id)
            return self._verified(now)
        self._restart(now)
        raise OffsetMismatch(_LOST)

    def _settle_stored(self, upload: Upload) -> Upload:
        """The clip's key holds an object already; it is never replaced. The clip: recorded."""
        if self._holds_the_clip(upload):
            self._abort_quietly(upload.clip_id, upload.multipart_id or "")
            return self._verified(upload)
        log.error("clip %s: its key holds an object that is not the clip; not replaced", upload.clip_id)
        raise Conflict(f"clip {upload.clip_id}: the blob store holds another object under its key; not replaced")

    def _holds_the_clip(self, upload: Upload) -> bool:
        """Whether the clip's key holds the clip (its size, then its SHA-256 read back); a wrong
        object made from this upload's parts is deleted."""
        stored = self.parts.stored(upload.clip_id)
        if stored is None:
            return False
        if stored.size == upload.length and self.parts.sha256(upload.clip_id) == upload.sha256:
            return True
        if stored.sha256 == upload.sha256:  # completed from this upload's parts, and wrong
            self.parts.delete(upload.clip_id)
        return False

    def _restart(self, upload: Upload) -> None:
        """The upload starts again at 0 in a new multipart upload (its old one and tails go)."""
        self._hashes.pop(upload.upload_id, None)
        multipart_id = self.parts.begin(upload.clip_id, upload.sha256)
        if self.uploads.restage(upload.upload_id, upload.multipart_id or "", multipart_id, utc_now() + self.expiry):
            log.warning("upload %s: restarted at 0", upload.upload_id)
            self._abort_quietly(upload.clip_id, upload.multipart_id or "")
            self.parts.drop_tails(upload.upload_id)
        else:
            self._abort_quietly(upload.clip_id, multipart_id)

    # -- removing ----------------------------------------------------------------------------------

    def remove(self, upload: Upload) -> bool:
        """On a worker thread: abort the upload and forget it (termination, expiry). False: it was
        found stored by a process that died before recording it, and is recorded verified now."""
        from central.uploads.s3parts import UploadGone

        try:
            self.parts.abort(upload.clip_id, upload.multipart_id or "")
        except UploadGone:
            now = self.uploads.upload(upload.upload_id)
            if now is not None and now.multipart_id == upload.multipart_id and self._holds_the_clip(now):
                self._verified(now)
                return False
        self.uploads.delete_upload(upload.upload_id)
        self.parts.drop_tails(upload.upload_id)
        self._hashes.pop(upload.upload_id, None)
        return True

    def sweep(self, now: datetime) -> int:
        """On a worker thread (the expiry job): abort multipart uploads and delete tails that no
        receiving upload names, older than the expiry (a crash between a request to the bucket and
        the commit naming it). Returns how many."""
        before = now - self.expiry
        receiving = [u for u in self.uploads.receiving_uploads() if u.staged]
        multipart_ids = {u.multipart_id for u in receiving}
        tails = {u.tail for u in receiving}
        swept = 0
        for key, multipart_id in list(self.parts.multipart_uploads(before)):
            if multipart_id not in multipart_ids:
                self._abort_quietly(key, multipart_id)
                swept += 1
        stale = [key for key, _ in self.parts.tails(before) if key not in tails]
        if stale:
            self.parts.delete_keys(stale)
        if swept or stale:
            log.info("swept %d abandoned multipart uploads and %d tail objects from the bucket", swept, len(stale))
        return swept + len(stale)

    def _forget_tail(self, key: str | None) -> None:
        """Delete one tail object no row names (best effort: the expiry job sweeps what stays)."""
        if key is not None:
            try:
                self.parts.delete_keys([key])
            except BlobStoreUnavailable as exc:
                log.warning("could not delete tail object %s (%s); the expiry job will", key, exc)

    def _abort_quietly(self, clip_id: str, multipart_id: str) -> None:
        from central.uploads.s3parts import UploadGone

        try:
            self.parts.abort(clip_id, multipart_id)
        except UploadGone:
            pass
        except BlobStoreUnavailable as exc:  # invisible; the expiry job's sweep aborts it later
            log.warning("could not abort multipart upload %s of clip %s: %s", multipart_id, clip_id, exc)


_LOST = "central lost this upload's bytes; it restarted at offset 0: send the clip again from there (HEAD says so)"


def _mismatch(digest: str, declared: str) -> ChecksumMismatch:
    return ChecksumMismatch(
        f"the received file's SHA-256 {digest} does not match the declared {declared}; "
        "the upload was reset to offset 0: send the clip again"
    )


class _Gone(Exception):
    """A part found the multipart upload gone (raised out of ``_Sender``)."""


class _Sender:
    """Sends one PATCH's parts on the store's threads, numbered on from the upload's last; at most
    ``upload_concurrency`` in flight, which bounds memory whatever the clip's size."""

    def __init__(self, staged: StagedUploads, upload: Upload) -> None:
        self.staged, self.upload = staged, upload
        self.number = len(upload.parts_md5) // 32 + 1
        self._sent: list[asyncio.Future[str]] = []

    async def send(self, data: bytes) -> None:
        self._sent.append(
            asyncio.get_running_loop().run_in_executor(self.staged._sending, self._send, self.number, data)
        )
        self.number += 1
        pending = [f for f in self._sent if not f.done()]
        if len(pending) >= self.staged.parts.concurrency:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for sent in self._sent:  # a failure stops the PATCH now, not after the rest of its body
            if sent.done() and sent.exception() is not None:
                raise sent.exception()  # type: ignore[misc]

    def _send(self, number: int, data: bytes) -> str:
        from central.uploads.s3parts import UploadGone

        try:
            return self.staged.parts.send_part(self.upload.clip_id, self.upload.multipart_id or "", number, data)
        except UploadGone:
            raise _Gone() from None

    async def results(self) -> list[str]:
        """The MD5s of the parts sent, in order, once every one is stored."""
        try:
            return list(await asyncio.gather(*self._sent))
        except BaseException:
            await self.drain_quietly()
            raise

    async def drain_quietly(self) -> None:
        await asyncio.gather(*self._sent, return_exceptions=True)


class _Hasher:
    """Feeds received pieces to the running hashes, in order, on one worker thread."""

    MAX_IN_FLIGHT = 2

    def __init__(self, pool: ThreadPoolExecutor, digests: list[Any]) -> None:
        self.pool, self.digests = pool, digests
        self._batch: list[bytes] = []
        self._batched = 0
        self._in_flight: deque[asyncio.Future[None]] = deque()

    async def feed(self, piece: bytes) -> None:
        if not self.digests:
            return
        self._batch.append(piece)
        self._batched += len(piece)
        if self._batched >= HASH_BATCH_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if not self._batch:
            return
        batch, self._batch, self._batched = self._batch, [], 0
        self._in_flight.append(asyncio.get_running_loop().run_in_executor(self.pool, _update, self.digests, batch))
        if len(self._in_flight) > self.MAX_IN_FLIGHT:
            await self._in_flight.popleft()

    async def drain(self) -> None:
        await self._flush()
        results = await asyncio.gather(*self._in_flight, return_exceptions=True)
        self._in_flight.clear()
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def drain_quietly(self) -> None:
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        self._in_flight.clear()


def _update(digests: list[Any], batch: list[bytes]) -> None:
    for piece in batch:
        for digest in digests:
            digest.update(piece)
