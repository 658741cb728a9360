"""Receiving clips: the tus upload state machine, independent of HTTP.

Durability rules (docs/sync-protocol.md): bytes go to ``uploads/<id>.part``; the offset is
committed to SQLite only after the file is fsynced; a checksummed chunk counts only when
complete and matching; on the last byte the whole-file SHA-256 is checked, the file moved
atomically into the blob store and the clip committed, and only then is "verified" said. A
clip whole in its creation request has no row until then: one commit creates it verified.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import fcntl
import hashlib
import itertools
import logging
import os
import threading
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from io import FileIO
from pathlib import Path
from typing import TypeVar

from central.access.auth import Principal
from central.core.directbody import DirectBody
from central.core.metrics import CentralMetrics
from central.core.store import CentralStore
from central.uploads.blobstore import BlobStore
from central.uploads.body import RequestBody
from central.uploads.records import Upload
from central.uploads.service import UploadService
from central.uploads.staged import StagedUploads, staging_for
from fleet.clock import utc_now
from fleet.directio import BLOCK, DIRECT_MIN_BYTES, PartWriter
from fleet.errors import (
    BadRequest,
    BlobStoreUnavailable,
    ChecksumMismatch,
    Conflict,
    Gone,
    InsufficientStorage,
    Locked,
    NotFound,
    OffsetMismatch,
    PayloadTooLarge,
)
from fleet.hashing import CHUNK_CHECKSUMS, new_checksum
from fleet.protocol import UploadMetadata, decode_upload_metadata

log = logging.getLogger(__name__)

T = TypeVar("T")

CHECKSUM_ALGORITHMS = {name: new_checksum(name).digest_size for name in CHUNK_CHECKSUMS}
"""Upload-Checksum algorithms central checks, with their digest sizes (fleet/hashing.py's list)."""
FLUSH_BYTES = 4 << 20
"""Received bytes are written and hashed on worker threads (``_Sink``) in batches of this size,
so the event loop keeps receiving while the previous batch is written and hashed."""
MAX_BATCH_PIECES = 512
"""Also hand over after this many pieces: one writev takes at most IOV_MAX (1024) buffers."""
INLINE_BYTES = 256 << 10
"""A batch this small, with nothing queued before it, is written and hashed on the event loop:
handing it to the thread and back costs more than the work (a small clip is one such batch).
The event loop has its own PartWriter (and staging buffer) for these."""
HELD_WHOLE_BYTES = INLINE_BYTES
"""A new clip whole in its creation request and this small is read into memory first, then
checked, written, stored and committed in one hop to a worker thread (``_store_held``): four
hops (its upload, its blob, its part file, its commit) each cost more than a 64 KiB clip's own
work on a busy host. Larger clips are streamed to disk as they arrive."""
DIRECT_BATCH_BYTES = 4 << 20
"""A body read direct (``DirectBody``) is read into aligned buffers of this size, each then
written and hashed from where it was read."""
DIRECT_IN_FLIGHT = 3
"""Batches of a direct body handed over and not yet written and hashed, at most."""
DIRECT_WRITERS = 2
"""Threads writing those batches: on this kind of virtual disk a GiB in 4 MiB direct writes took
0.50 s two at a time against 0.56 s one after the other."""
KEPT_BUFFER_SETS = 2
"""Sets of those buffers kept for the next PATCH once one ends (one set per PATCH at a time)."""
NOT_ADOPTED_KEPT = 10_000
"""(clip, SHA-256) pairs whose blob was hashed and held other bytes, remembered (then forgotten all at
once): a station creating and terminating such an upload again does not have central hash it again."""


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes

    @classmethod
    def parse(cls, header: str) -> Checksum:
        algorithm, _, encoded = header.strip().partition(" ")
        if algorithm not in CHECKSUM_ALGORITHMS:
            raise BadRequest(
                f"Upload-Checksum: unsupported algorithm {algorithm!r} (use one of {', '.join(CHECKSUM_ALGORITHMS)})"
            )
        try:
            digest = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("Upload-Checksum: the digest is not base64") from None
        if len(digest) != CHECKSUM_ALGORITHMS[algorithm]:
            raise BadRequest(f"Upload-Checksum: a {algorithm} digest has {CHECKSUM_ALGORITHMS[algorithm]} bytes")
        return cls(algorithm, digest)


@dataclass(frozen=True)
class _Writers:
    """The receiver's writing threads, each with its own PartWriter: one thread's staging buffer
    is never touched by another."""

    pool: ThreadPoolExecutor
    pool_writer: PartWriter
    hasher: ThreadPoolExecutor
    """Hashes each batch while ``pool`` writes it."""
    loop_writer: PartWriter
    """The event loop's, for batches of at most INLINE_BYTES."""
    direct: ThreadPoolExecutor
    """Writes the batches of bodies read direct, each from its own buffer (``DirectBody``)."""


class _Sink:
    """Writes one PATCH's bytes and keeps its hashes, off the event loop.

    Each batch of received pieces goes to one single-thread pool that copies it into its
    aligned staging buffer and writes it; as soon as it is staged, a second thread updates the
    whole-file hash and the chunk's own hash from that one contiguous buffer while the write
    goes on (hashlib and the CRCs release the GIL, and a direct write mostly waits for the
    device), so a batch costs the longer of the two rather than their sum, and so does the
    tail a PATCH waits for after its last byte. One large buffer per hash call, not each
    received piece: every call hands the GIL back and forth with the event loop. The pool
    keeps batches in arrival order; at most ``MAX_IN_FLIGHT`` batches are queued, which
    bounds memory and how long the end of a chunk waits for the queue to drain.

    A body read direct (``feed_staged``) needs no copy: each batch is already in an aligned
    buffer of its own, hashed and written from there.
    """

    MAX_IN_FLIGHT = 2

    def __init__(self, fd: int, direct_fd: int | None, offset: int, whole, chunk, writers: _Writers) -> None:
        self.fd, self.direct_fd, self.offset = fd, direct_fd, offset
        self.whole, self.chunk = whole, chunk
        self.writers = writers
        self.count = 0
        self._in_flight: deque[asyncio.Future] = deque()
        self._jobs: list[Future] = []
        """The direct batches' hashing and writing jobs not yet seen done."""

    def _hash(self, pieces: list[bytes] | list[memoryview]) -> None:
        for piece in pieces:
            self.whole.update(piece)
            if self.chunk is not None:
                self.chunk.update(piece)

    def _write(self, pieces: list[bytes]) -> None:
        """On the pool's thread: write the batch, hashing it on the hasher's thread meanwhile."""
        hashing: list[Future] = []
        try:
            self.writers.pool_writer.write(
                self.fd,
                self.direct_fd,
                pieces,
                self.offset + self.count,
                lambda staged: hashing.append(self.writers.hasher.submit(self._hash, staged)),
            )
        finally:
            wait(hashing)  # the staging buffer is the next batch's once the hash has read it
        for done in hashing:
            done.result()
        self.count += sum(map(len, pieces))

    async def feed(self, pieces: list[bytes]) -> None:
        """Hand over the pieces as received (no copying them together on the event loop)."""
        if not self._in_flight and sum(map(len, pieces)) <= INLINE_BYTES:
            self._hash(self.writers.loop_writer.write(self.fd, self.direct_fd, pieces, self.offset + self.count))
            self.count += sum(map(len, pieces))
            return
        self._in_flight.append(asyncio.get_running_loop().run_in_executor(self.writers.pool, self._write, pieces))
        if len(self._in_flight) > self.MAX_IN_FLIGHT:
            await self._in_flight.popleft()

    async def feed_staged(self, writer: PartWriter, length: int) -> None:
        """Hand over a batch the event loop read straight into ``writer``'s staging buffer
        (``DirectBody``): hashed from there on the hasher's thread (which takes batches in
        order) while one of the direct pool's threads writes it (two batches' writes may
        overlap: the device takes them faster so). At most ``DIRECT_IN_FLIGHT`` batches are
        out; a buffer is lent to the next read only when its batch is hashed and written."""
        offset = self.offset + self.count
        self.count += length  # used only once every batch is in (``drain``): a failure counts nothing
        jobs = (
            self.writers.hasher.submit(self._hash, [writer.staged(offset, length)]),
            self.writers.direct.submit(writer.write_staged, self.fd, self.direct_fd, offset, length),
        )
        self._jobs = [job for job in self._jobs if not job.done()] + list(jobs)
        self._in_flight.append(asyncio.ensure_future(_both(*jobs)))
        if len(self._in_flight) > DIRECT_IN_FLIGHT:
            await self._in_flight.popleft()

    def after_last_batch(self, then: Callable[[], None]) -> None:
        """Call ``then`` on the event loop once every batch handed over has been written and
        hashed (at once if none is left), whatever became of the request meanwhile: the
        buffers they were read into may be lent again only then."""
        pending = [job for job in self._jobs if not job.done()]
        if not pending:
            then()
            return
        loop = asyncio.get_running_loop()
        left = [len(pending)]

        def one_done(_: Future) -> None:
            left[0] -= 1
            if not left[0]:
                loop.call_soon_threadsafe(then)

        for job in pending:
            job.add_done_callback(one_done)

    async def drain_quietly(self) -> None:
        """After a failure: let queued pieces finish before the file is truncated (and its
        descriptors closed)."""
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        self._in_flight.clear()
        wait(self._jobs)  # a batch whose wait was cancelled with its request (no wait once all are done)

    async def drain(self) -> None:
        """Wait for every piece; the first failure (a full disk) is raised after all have run."""
        results = await asyncio.gather(*self._in_flight, return_exceptions=True)
        self._in_flight.clear()
        for result in results:
            if isinstance(result, BaseException):
                raise result


async def _both(hashed: Future, written: Future) -> None:
    """Both jobs of a direct batch done; the first failure raised."""
    results = await asyncio.gather(asyncio.wrap_future(hashed), asyncio.wrap_future(written), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


class _LinkedPart(Exception):
    """The .part file is also a stored blob's name (the filesystem blob store links it into place;
    a replica sharing the uploads folder died before removing the part's own name)."""


class _NotStored(Exception):
    """The blob store failed after every byte was counted; ``cause`` is what it raised."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class UploadReceiver:
    """All uploads of this central process; one instance, owned by the app."""

    def __init__(
        self,
        store: CentralStore,
        blobs: BlobStore,
        uploads_dir: Path,
        *,
        max_upload_bytes: int,
        expiry: timedelta,
        body_idle_timeout_s: float = 60.0,
        station_boroughs: Mapping[str, str] | None = None,
        metrics: CentralMetrics | None = None,
    ) -> None:
        self.uploads = UploadService(store.writer, station_boroughs)
        self.metrics = metrics or CentralMetrics()
        """Uploads verified, bytes received, checksums refused (``central.core.metrics``)."""
        self.body_idle_timeout_s = body_idle_timeout_s
        """A PATCH whose body stalls this long is ended (what arrived is kept): a dead link must not
        hold its place in central's upload lane (central/core/admission.py) for ever."""
        self.blobs = blobs
        self.dir = uploads_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_upload_bytes = max_upload_bytes
        self.expiry = expiry
        self._locks: dict[str, asyncio.Lock] = {}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="upload-write")
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="upload-hash")
        self._direct_pool = ThreadPoolExecutor(DIRECT_WRITERS, thread_name_prefix="upload-direct")
        self._writers = _Writers(
            self._pool,
            PartWriter(capacity=2 * FLUSH_BYTES),
            self._hasher,
            PartWriter(capacity=INLINE_BYTES),
            self._direct_pool,
        )
        """The pool thread's batches are FLUSH_BYTES and one piece at most."""
        self._hashes: dict[str, tuple[int, object]] = {}
        self._buffer_sets: list[list[PartWriter]] = []
        """Buffers PATCH bodies were read into (``_read_direct``), for the next: made once, not per chunk."""
        self._creating: dict[str, asyncio.Lock] = {}
        """Clips whose creation requests are being handled, and how many want each (event loop only)."""
        self._wanting: Counter[str] = Counter()
        self._not_adopted: set[tuple[str, str]] = set()
        self._held_writers = threading.local()
        self.staged: StagedUploads | None = staging_for(
            blobs, self.uploads, expiry=expiry, body_idle_timeout_s=body_idle_timeout_s
        )
        """Uploads staged in the bucket (S3 with ``stage_uploads``): new uploads are made there; an
        upload's row says where its bytes are, so .part uploads made before go on as they were."""

    def part(self, upload_id: str) -> Path:
        return self.dir / f"{upload_id}.part"

    # -- creation / lookup / termination ---------------------------------------------------

    def create(
        self, principal: Principal, length: int, raw_metadata: str, *, adopting: bool = True
    ) -> tuple[Upload, bool]:
        """Create the upload for a clip, or return the one it already has (idempotent by clip_id).
        ``adopting`` False: the caller has just found no blob to adopt."""
        meta = self._creation(length, raw_metadata)
        existing = self.uploads.upload_for_new_clip(str(meta.clip_id), principal.station_id, meta.sha256, length)
        if existing is not None and self._squatted(principal, existing, meta, length):
            log.warning(
                "upload %s of clip %s by station %s, unfinished, is removed: station %s reported the clip's ingest",
                existing.upload_id,
                existing.clip_id,
                existing.station_id,
                principal.station_id,
            )
            self._delete(existing)
            self._hashes.pop(existing.upload_id, None)
            existing = self.uploads.upload_for_new_clip(str(meta.clip_id), principal.station_id, meta.sha256, length)
        if existing is None and adopting:
            adopted = self.adopt(principal, meta, length, raw_metadata)
            if adopted is not None:
                return adopted, True
        if existing is None and self.staged is not None:
            upload_id = uuid.uuid4().hex
            upload = self.staged.create(upload_id, meta, raw_metadata, length, principal.station_id)
            if upload.upload_id == upload_id:
                log.info(
                    "upload %s created for clip %s (%d bytes) by %s, staged in the bucket",
                    upload_id,
                    meta.clip_id,
                    length,
                    principal.name,
                )
                return upload, True
            existing = upload
        if existing is None:
            upload_id = uuid.uuid4().hex
            part = self.part(upload_id)
            # Not fsynced: an empty file has nothing to lose, and if a power cut takes it back,
            # ``recover`` (or the first PATCH) finds it missing and starts the upload at 0 again.
            part.touch()
            try:
                upload = self.uploads.create_upload(
                    upload_id, meta, raw_metadata, length, principal.station_id, utc_now() + self.expiry
                )
            except BaseException:  # refused (another station's report names other bytes), or failed
                part.unlink(missing_ok=True)
                raise
            if upload.upload_id == upload_id:
                log.info(
                    "upload %s created for clip %s (%d bytes) by %s", upload_id, meta.clip_id, length, principal.name
                )
                return upload, True
            part.unlink(missing_ok=True)
            existing = upload
        return self._existing(principal, existing, meta, length), False

    async def create_with_body(
        self,
        principal: Principal,
        length: int,
        raw_metadata: str,
        checksum: Checksum | None,
        body: AsyncIterator[bytes] | None,
        *,
        whole: bool = False,
    ) -> tuple[Upload, bool]:
        """A creation request: create (or find) the clip's upload, then take the body if there is
        one (tus creation-with-upload).

        ``whole``: the body is the entire clip. A new clip's upload then gets no row until the clip
        is stored, and one durable commit records it verified (a small clip was a creation commit,
        a worker-thread hop, then the verified commit). Anything that fails on the way leaves
        nothing behind: the station creates it again. Creations of one clip take turns (a second
        waits for the first, then finds its upload), so no two requests store one clip's blob
        together."""
        meta = self._creation(length, raw_metadata)
        clip_id = str(meta.clip_id)
        async with self._turn_to_create(clip_id):
            if whole and body is not None and 0 < length <= HELD_WHOLE_BYTES:
                stored, body = await self._create_held(principal, meta, length, raw_metadata, checksum, body)
                if stored is not None:
                    return stored, True
            existing = await asyncio.to_thread(
                self.uploads.upload_for_new_clip, clip_id, principal.station_id, meta.sha256, length
            )
            adopted = None if existing else await asyncio.to_thread(self.adopt, principal, meta, length, raw_metadata)
            if adopted is not None:  # stored already: a body, if any, is read and dropped below
                upload, created = adopted, True
            elif existing is None and whole:
                # A zero-byte clip is whole with no body at all: stored and verified like any other.
                return await self._counted(
                    0,
                    self._create_whole(
                        principal, meta, length, raw_metadata, checksum, body if body is not None else _no_bytes()
                    ),
                ), True
            else:
                upload, created = await asyncio.to_thread(
                    self.create, principal, length, raw_metadata, adopting=existing is not None
                )
        if body is None:
            return upload, created
        if upload.offset == 0 and not upload.verified:
            return await self.append(principal, upload.upload_id, 0, checksum, body, just_created=created), created
        async for _ in body:  # bytes central holds already: read and drop them
            pass
        return upload, created

    async def _create_held(
        self,
        principal: Principal,
        meta: UploadMetadata,
        length: int,
        raw_metadata: str,
        checksum: Checksum | None,
        body: AsyncIterator[bytes],
    ) -> tuple[Upload | None, AsyncIterator[bytes]]:
        """A small whole clip (``HELD_WHOLE_BYTES``): its body read into memory, then, if the clip
        is new to central, stored and recorded verified in one hop to a worker thread. Otherwise
        (the clip has an upload or a blob already, or the body was cut short) None and the same
        body again, with its cut, for the usual way."""
        upload_id = uuid.uuid4().hex
        reader = RequestBody(body, length, self.body_idle_timeout_s, upload_id)
        held = bytearray()
        async for piece in reader.pieces():
            held += piece  # one buffer: a body sent two bytes at a time, kept as its pieces, took 22 times its size
        pieces = [bytes(held)] if held else []
        if not reader.cut_short and len(held) == length:
            try:
                stored = await _to_the_end(
                    asyncio.to_thread(
                        self._store_held, upload_id, principal, meta, length, raw_metadata, checksum, pieces
                    )
                )
            except ChecksumMismatch as exc:
                self._count_refusal(exc)
                raise
            if stored is not None:
                self._count(0, stored)
                return stored, _replayed(pieces)
        return None, _replayed(pieces, cut_short=reader.cut_short)

    def _store_held(
        self,
        upload_id: str,
        principal: Principal,
        meta: UploadMetadata,
        length: int,
        raw_metadata: str,
        checksum: Checksum | None,
        pieces: list[bytes],
    ) -> Upload | None:
        """On a worker thread: a new clip's bytes, all in ``pieces``, checked, written to its part
        file, fsynced, stored in the blob store and recorded verified (``_store_and_commit``);
        None if the clip has an upload or a blob already. A failure leaves nothing behind."""
        clip_id = str(meta.clip_id)
        if self.uploads.upload_for_new_clip(clip_id, principal.station_id, meta.sha256, length) is not None:
            return None
        try:
            if self.blobs.exists(clip_id):
                return None  # the usual way adopts it, or says why not
        except BlobStoreUnavailable:
            pass  # as in ``adopt``: storing it says what is wrong
        upload = Upload(
            upload_id, clip_id, principal.station_id, length, 0, raw_metadata, meta.sha256, "receiving", None
        )
        part = self.part(upload_id)
        try:
            stored = self._write_and_store(upload, part, checksum, pieces, meta)
        except _NotStored as failure:
            part.unlink(missing_ok=True)
            if isinstance(failure.cause, BlobStoreUnavailable):
                log.warning("upload %s: clip %s not stored: %s", upload_id, clip_id, failure.cause)
            if isinstance(failure.cause, OSError):
                raise storage_error(failure.cause) from failure.cause
            raise failure.cause from None
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise storage_error(exc) from exc
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        log.info("clip %s verified (%d bytes, sha256 %s)", clip_id, length, upload.sha256)
        return stored

    def _write_and_store(
        self, upload: Upload, part: Path, checksum: Checksum | None, pieces: list[bytes], meta: UploadMetadata
    ) -> Upload:
        """``_store_held``'s work: the part file made, written, checked and stored."""
        fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        direct_fd = None
        try:
            _lock_part(fd, upload.upload_id)  # a replica starting up removes part files no one holds
            writer = self._held_writer()
            direct_fd = writer.open_direct(part)
            whole = hashlib.sha256()
            chunk = new_checksum(checksum.algorithm) if checksum else None
            for piece in writer.write(fd, direct_fd, pieces, 0):
                whole.update(piece)
                if chunk is not None:
                    chunk.update(piece)
            if checksum is not None and chunk is not None and chunk.digest() != checksum.digest:
                raise ChecksumMismatch(
                    f"the chunk's {checksum.algorithm} does not match Upload-Checksum; "
                    "it was discarded, send it again from offset 0"
                )
            digest = whole.hexdigest()
            if digest != upload.sha256:
                log.warning("upload %s: whole-file SHA-256 mismatch, reset to 0", upload.upload_id)
                raise ChecksumMismatch(
                    f"the received file's SHA-256 {digest} does not match the declared {upload.sha256}; "
                    "the upload was reset to offset 0: send the clip again"
                )
            return self._store_and_commit(upload, fd, meta)
        finally:
            os.close(fd)
            if direct_fd is not None:
                os.close(direct_fd)

    def _held_writer(self) -> PartWriter:
        """This worker thread's own PartWriter for held clips (a staging buffer is one thread's)."""
        writer = getattr(self._held_writers, "writer", None)
        if writer is None:
            writer = self._held_writers.writer = PartWriter(capacity=HELD_WHOLE_BYTES)
        return writer

    @asynccontextmanager
    async def _turn_to_create(self, clip_id: str):
        """One creation request of a clip at a time; the lock goes when no request wants it."""
        lock = self._creating.setdefault(clip_id, asyncio.Lock())
        self._wanting[clip_id] += 1
        try:
            async with lock:
                yield
        finally:
            self._wanting[clip_id] -= 1
            if not self._wanting[clip_id]:
                del self._wanting[clip_id], self._creating[clip_id]

    async def _create_whole(
        self,
        principal: Principal,
        meta: UploadMetadata,
        length: int,
        raw_metadata: str,
        checksum: Checksum | None,
        body: AsyncIterator[bytes],
    ) -> Upload:
        upload = Upload(
            uuid.uuid4().hex,
            str(meta.clip_id),
            principal.station_id,
            length,
            0,
            raw_metadata,
            meta.sha256,
            "receiving",
            None,
        )
        try:
            return await self._receive(upload, hashlib.sha256(), checksum, body, new=meta)
        except BaseException as exc:
            self.part(upload.upload_id).unlink(missing_ok=True)  # no row names it: nothing to keep
            if isinstance(exc, OSError):
                raise storage_error(exc) from exc
            raise

    async def _create_row(self, upload: Upload, new: UploadMetadata) -> Upload:
        """A whole clip's creation cut short: its upload is made after all, to resume as usual."""
        if self.staged is not None:  # staged in the bucket, from 0: what arrived is sent again
            self.part(upload.upload_id).unlink(missing_ok=True)
            return await asyncio.to_thread(
                self.staged.create, upload.upload_id, new, upload.metadata, upload.length, upload.station_id
            )
        return await asyncio.to_thread(
            self.uploads.create_upload,
            upload.upload_id,
            new,
            upload.metadata,
            upload.length,
            upload.station_id,
            utc_now() + self.expiry,
        )

    def adopt(self, principal: Principal, meta: UploadMetadata, length: int, raw_metadata: str) -> Upload | None:
        """A clip central has no upload of whose bytes are in the blob store already, whole and
        matching the declared SHA-256: recorded verified at once, nothing sent again. None: the
        blob store holds nothing for this clip, the upload goes on as usual.

        Central restored from a backup lost the records of clips verified after it, never their
        blobs (stations resend; a station that deleted its copy still gets its clip back), and a
        whole clip's creation that died between storing and committing leaves one too. Costs one
        existence check per new upload; the blob is hashed only when it is there.

        Adopted only for the station whose report of the clip's ingest, with this size and
        SHA-256, waits for the upload (a station resends its reports before asking again): a
        clip's id and SHA-256 are in disclosure packages and custody reports, and another
        station's token naming them must neither claim the footage for its own borough nor
        replace the bytes with its own (423 meanwhile: the right station's report may be on its
        way). Bytes other than the ones declared are never replaced by an upload (409, for a
        person), and hashed once per process, not at every creation."""
        clip_id = str(meta.clip_id)
        try:
            if not self.blobs.exists(clip_id):
                return None
            stored = self.blobs.size(clip_id)
        except BlobStoreUnavailable:
            return None  # the upload goes on as usual; storing it later says what is wrong
        held = f"central holds bytes for clip {clip_id} without a record of them (restored from a backup?)"
        if stored != length or (clip_id, meta.sha256) in self._not_adopted:
            raise Conflict(f"{held}, and they are not the {length} bytes declared: a person must look")
        if principal.station_id is None or not self.uploads.reported_ingest(
            clip_id, principal.station_id, meta.sha256, length
        ):
            log.warning("clip %s is in the blob store without a record; not adopted for %s", clip_id, principal.name)
            # The station's report may be among its events acknowledged and not yet applied (the
            # projection's leader replaced, say): asked again in seconds, not in a minute.
            soon = principal.station_id is not None and self.uploads.reports_pending(principal.station_id)
            raise Locked(
                f"{held}: they are taken back for the station that reports the clip's ingest first"
                + ("; this station's latest reports are being applied" if soon else ""),
                headers={"Retry-After": "5" if soon else "60"},
            )
        try:
            matches = self._blob_sha256(clip_id) == meta.sha256
        except BlobStoreUnavailable:
            return None
        if not matches:
            log.warning("clip %s: the blob store holds other bytes than the ones declared; not adopted", clip_id)
            if len(self._not_adopted) >= NOT_ADOPTED_KEPT:
                self._not_adopted.clear()
            self._not_adopted.add((clip_id, meta.sha256))
            raise Conflict(f"{held}, and they are not the bytes declared: a person must look")
        upload = self.uploads.record_stored_upload(
            uuid.uuid4().hex, meta, raw_metadata, length, principal.station_id, clip_id
        )
        log.warning(
            "clip %s (%d bytes) was in the blob store without a record (a restore, or a crash before the commit): "
            "adopted for %s, verified",
            clip_id,
            length,
            principal.name,
        )
        return upload

    def _creation(self, length: int, raw_metadata: str) -> UploadMetadata:
        if length > self.max_upload_bytes:
            raise PayloadTooLarge(f"Upload-Length {length} is over this server's limit of {self.max_upload_bytes}")
        return decode_upload_metadata(raw_metadata)

    def _squatted(self, principal: Principal, existing: Upload, meta: UploadMetadata, length: int) -> bool:
        """Whether ``existing`` is another station's unfinished upload of the very bytes whose ingest
        ``principal``'s station reported (its claim waits for the upload): that station takes the
        clip's upload over. Kept, it met 423 until the other's upload expired, and every PATCH (of
        bytes refused at the end, say) put that off: a clip's id and SHA-256 are in custody reports."""
        return (
            not existing.verified
            and principal.station_id is not None
            and existing.station_id != principal.station_id
            and (existing.sha256, existing.length) == (meta.sha256, length)
            and self.uploads.reported_ingest(existing.clip_id, principal.station_id, meta.sha256, length)
        )

    def _existing(self, principal: Principal, existing: Upload, meta: UploadMetadata, length: int) -> Upload:
        """The clip's upload, made before: the same clip, and this caller may go on with it."""
        if existing.sha256 != meta.sha256 or existing.length != length:
            raise Conflict(f"clip {meta.clip_id} already has an upload with a different sha256 or length")
        if not existing.verified and principal.is_station and existing.station_id != principal.station_id:
            raise Locked(
                f"clip {meta.clip_id} is being uploaded by station {existing.station_id}", headers={"Retry-After": "60"}
            )
        return existing

    def get(self, upload_id: str) -> Upload:
        """The upload (its route's scope declaration let only its own station, or an admin, ask)."""
        upload = self.uploads.upload(upload_id)
        if upload is None:
            raise NotFound(f"no upload {upload_id} (it may have expired or been terminated): create it again")
        return upload

    async def terminate(self, principal: Principal, upload_id: str) -> None:
        upload = await asyncio.to_thread(self.get, upload_id)
        if upload.verified:
            raise Conflict("this clip is verified and stored as evidence; an upload cannot delete it")
        lock = self._lock(upload_id)
        if lock.locked():
            raise Locked("a PATCH is writing this upload", headers={"Retry-After": "5"})
        # Its commit on a worker thread (it waits for the writer and syncs the disk), under the
        # upload's lock: a PATCH meanwhile is told 423, as it would be during any other.
        async with lock:
            await self._remove(upload)
        log.info("upload %s terminated by %s", upload_id, principal.name)

    async def _remove(self, upload: Upload) -> None:
        """Under the upload's lock (held by the caller): its row and part file go on a worker thread,
        then what this process keeps for it, in the same step as the lock's release (no PATCH
        comes between)."""
        await asyncio.to_thread(self._delete, upload)
        self._hashes.pop(upload.upload_id, None)
        self._locks.pop(upload.upload_id, None)

    def _delete(self, upload: Upload) -> None:
        if upload.staged:
            assert self.staged is not None, f"upload {upload.upload_id} is staged in a bucket this central does not use"
            if not self.staged.remove(upload):
                raise Conflict("this clip is verified and stored as evidence; an upload cannot delete it")
            return
        with self._part_locked(upload.upload_id):  # Locked (423) while another replica writes it
            self.uploads.delete_upload(upload.upload_id)
            self.part(upload.upload_id).unlink(missing_ok=True)

    @contextmanager
    def _part_locked(self, upload_id: str) -> Iterator[bool]:
        """The part file's lock, for a step that must not run beside another replica's PATCH of
        the same upload (``_lock_part``); yields False when there is no part file."""
        try:  # open for writing: on NFS an exclusive flock is an fcntl lock, which needs it
            fd = os.open(self.part(upload_id), os.O_RDWR)
        except FileNotFoundError:
            yield False
            return
        try:
            _lock_part(fd, upload_id)
            yield True
        finally:
            os.close(fd)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._direct_pool.shutdown(wait=True)
        self._hasher.shutdown(wait=True)
        if self.staged is not None:
            self.staged.close()

    def _staged(self) -> StagedUploads:
        if self.staged is None:  # a row made while [blobs] stage_uploads was on, read with it off
            raise BlobStoreUnavailable(
                "this upload is staged in the S3 bucket, and this central process does not stage uploads "
                "([blobs] stage_uploads): the replicas' configurations differ"
            )
        return self.staged

    def _lock(self, upload_id: str) -> asyncio.Lock:
        return self._locks.setdefault(upload_id, asyncio.Lock())

    # -- appending -------------------------------------------------------------------------

    async def append(
        self,
        principal: Principal,
        upload_id: str,
        offset: int,
        checksum: Checksum | None,
        body: AsyncIterator[bytes],
        *,
        just_created: bool = False,
        direct: DirectBody | None = None,
    ) -> Upload:
        """``just_created``: this request made the upload (and so may write it): one read fewer.
        ``direct``: the same body, to be read into the receiver's own buffers (a .part upload).

        Its reads go to a worker thread, as every database call of a coroutine here: on the
        event loop a read that waits (PostgreSQL down: up to ``READ_WAIT_S``) stalled every
        request of the process, health checks included."""
        if not just_created:
            await asyncio.to_thread(self.get, upload_id)
        lock = self._lock(upload_id)
        if lock.locked():
            raise Locked("another PATCH is writing this upload", headers={"Retry-After": "1"})
        async with lock:
            upload = await asyncio.to_thread(self.get, upload_id)
            if upload.verified:
                if offset == upload.length:
                    return upload
                raise OffsetMismatch(f"Upload-Offset {offset} but the upload is complete ({upload.length})")
            if offset != upload.offset:
                raise OffsetMismatch(f"Upload-Offset {offset} does not match the server's {upload.offset}")
            if upload.staged:
                return await self._counted(upload.offset, self._staged().append(upload, checksum, body))
            if upload.offset and await asyncio.to_thread(self._part_short_of, upload):
                return await asyncio.to_thread(self._account_for_missing_part, upload)
            whole = await self._whole_hash(upload)
            try:
                return await self._counted(upload.offset, self._receive(upload, whole, checksum, direct or body))
            except _LinkedPart:  # written to, it would cut the blob it is linked to: recorded as it is
                return await asyncio.to_thread(self._account_for_missing_part, upload)
            except OSError as exc:
                raise storage_error(exc) from exc

    async def _counted(self, before: int, receiving: Awaitable[Upload]) -> Upload:
        """``receiving`` (an upload not verified, at offset ``before``), its bytes and outcome counted."""
        try:
            upload = await receiving
        except ChecksumMismatch as exc:
            self._count_refusal(exc)
            raise
        self._count(before, upload)
        return upload

    def _count(self, before: int, upload: Upload) -> None:
        self.metrics.upload_received_bytes.inc(max(0, upload.offset - before))
        if upload.verified:
            self.metrics.uploads_verified.inc()
            self.metrics.upload_verified_bytes.inc(upload.length)

    def _count_refusal(self, exc: ChecksumMismatch) -> None:
        # Every whole-file mismatch (here and in ``staged``) resets the upload to 0 and says so;
        # a chunk's refusal keeps the offset.
        self.metrics.verification_failures.labels("file" if "reset to offset 0" in exc.message else "chunk").inc()

    async def _receive(
        self,
        upload: Upload,
        whole,
        checksum: Checksum | None,
        body: AsyncIterator[bytes] | DirectBody,
        *,
        new: UploadMetadata | None = None,
    ) -> Upload:
        """``new``: the upload has no row yet (``_create_whole``); one is made once bytes are counted."""
        room = upload.length - upload.offset
        running = whole.copy()  # the cached hash moves only once the bytes count (a refused PATCH fed it too)
        f, direct = await self._open_part(upload, room)
        with f, self._closing(direct) as direct_fd:
            sink = _Sink(
                f.fileno(),
                direct_fd,
                upload.offset,
                running,
                new_checksum(checksum.algorithm) if checksum else None,
                self._writers,
            )
            try:
                if isinstance(body, DirectBody):
                    cut_short = await self._read_direct(body, sink, upload, room)
                else:
                    cut_short = await self._read_pieces(body, sink, upload, room)
                await sink.drain()
            except OSError as exc:
                await sink.drain_quietly()
                f.truncate(upload.offset)
                raise storage_error(exc) from exc
            except BaseException:
                await sink.drain_quietly()
                f.truncate(upload.offset)
                raise
            if checksum is not None and (cut_short or sink.chunk.digest() != checksum.digest):
                f.truncate(upload.offset)
                if cut_short:  # nothing counted; the client resumes from the same offset
                    return await self._create_row(upload, new) if new is not None else upload
                raise ChecksumMismatch(
                    f"the chunk's {checksum.algorithm} does not match Upload-Checksum; "
                    f"it was discarded, send it again from offset {upload.offset}"
                )
            new_offset = upload.offset + sink.count
            if new_offset == upload.length and not cut_short:
                # fsync, blob store and the one commit (which records the offset too) in one hop to a
                # worker thread: a small clip is three hops' worth of work for a few microseconds each.
                return await self._finish(upload, running, fsync_fd=f.fileno(), new=new)
            fsync_fd: int | None = f.fileno()
            if new is not None:  # cut short: keep what arrived, as a PATCH would
                await _to_the_end(asyncio.to_thread(os.fsync, f.fileno()))
                await self._create_row(upload, new)
                fsync_fd = None
            # The fsync and the offset's commit in one hop to a worker thread (each hop is a wait
            # for a thread on a busy host). Counted while the part is still this request's (its
            # lock goes with ``f``): no other replica's PATCH cuts the file back to the old offset
            # in between.
            upload = await _to_the_end(asyncio.to_thread(self._commit_offset, upload.upload_id, new_offset, fsync_fd))
        self._hashes[upload.upload_id] = (new_offset, running)
        return upload

    async def _read_pieces(self, body: AsyncIterator[bytes], sink: _Sink, upload: Upload, room: int) -> bool:
        """Hand the body's pieces to ``sink`` in batches; whether it was cut short."""
        batch: list[bytes] = []
        batched = 0
        reader = RequestBody(body, room, self.body_idle_timeout_s, upload.upload_id)
        async for piece in reader.pieces():
            batch.append(piece)
            batched += len(piece)
            if batched >= FLUSH_BYTES or len(batch) >= MAX_BATCH_PIECES:
                await sink.feed(batch)
                batch, batched = [], 0
        if batch:
            await sink.feed(batch)
        return reader.cut_short

    async def _read_direct(self, body: DirectBody, sink: _Sink, upload: Upload, room: int) -> bool:
        """Read the body into aligned buffers and hand each to ``sink`` as it fills (no copying:
        it is written and hashed from there); whether it was cut short."""
        if body.length > room:
            raise PayloadTooLarge(f"more bytes than Upload-Length allows ({room} left)")
        buffers = self._buffer_sets.pop() if self._buffer_sets else _buffer_set()
        try:
            offset = upload.offset
            for turn in itertools.count():
                if body.ended:
                    break
                writer = buffers[turn % len(buffers)]  # free: the sink keeps fewer batches in flight
                length = min(DIRECT_BATCH_BYTES - offset % BLOCK, body.remaining + body.spilled)
                n = await body.readinto(writer.staged(offset, length), self.body_idle_timeout_s)
                if n:
                    await sink.feed_staged(writer, n)
                    offset += n
                if n < length:
                    break
        finally:
            sink.after_last_batch(lambda: self._keep_buffers(buffers))
        if body.complete:
            return False
        if body.gone:
            log.info("upload %s: body cut short after %d bytes (client gone)", upload.upload_id, offset - upload.offset)
        else:
            log.warning(
                "upload %s: no bytes for %.0f s after %d; ending the request (what arrived is kept)",
                upload.upload_id,
                self.body_idle_timeout_s,
                offset - upload.offset,
            )
        return True

    def _keep_buffers(self, buffers: list[PartWriter]) -> None:
        if len(self._buffer_sets) < KEPT_BUFFER_SETS:
            self._buffer_sets.append(buffers)

    async def _open_part(self, upload: Upload, room: int) -> tuple[FileIO, int | None]:
        """The part file for a PATCH, opened on a worker thread (a disk that stalls stalls no other
        request); if this request is cancelled meanwhile, what the thread opens is closed."""
        opening = asyncio.ensure_future(asyncio.to_thread(self._opened_part, upload, room))
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(_close_opened)
            raise

    def _opened_part(self, upload: Upload, room: int) -> tuple[FileIO, int | None]:
        """On a worker thread: the part file cut back to the counted offset, and a direct-I/O
        descriptor of it for a PATCH that may bring enough bytes to use one."""
        part = self.part(upload.upload_id)
        if not part.exists():
            if upload.offset:  # another replica finished or removed it since the row was read
                raise OffsetMismatch(f"upload {upload.upload_id} changed meanwhile: ask its offset again (HEAD)")
            part.touch()  # a power cut took back the empty file made at creation (offset 0: see append)
        f = open(part, "r+b", buffering=0)  # noqa: SIM115 -- handed to the caller, which closes it
        direct_fd = None
        try:
            _lock_part(f.fileno(), upload.upload_id)
            if os.fstat(f.fileno()).st_nlink > 1:
                raise _LinkedPart  # stored: a replica sharing this folder died before removing its name
            # The row as it is now, under the lock: another replica may have written this upload (or
            # finished it) between this request's read and its lock. Only the offset read here is cut to.
            now = self.uploads.upload(upload.upload_id)
            if now is not None and (now.verified or now.offset != upload.offset):
                raise OffsetMismatch(
                    f"upload {upload.upload_id} is now at offset {now.offset}"
                    + (" and verified" if now.verified else "")
                    + ": ask its offset again (HEAD)"
                )
            direct_fd = self._writers.pool_writer.open_direct(part) if room >= DIRECT_MIN_BYTES else None
            f.truncate(upload.offset)
        except BaseException:
            f.close()
            if direct_fd is not None:
                os.close(direct_fd)
            raise
        return f, direct_fd

    @staticmethod
    @contextmanager
    def _closing(fd: int | None) -> Iterator[int | None]:
        try:
            yield fd
        finally:
            if fd is not None:
                os.close(fd)

    def _commit_offset(self, upload_id: str, offset: int, fsync_fd: int | None = None) -> Upload:
        """Count fsynced bytes, fsyncing ``fsync_fd`` first (an error there counts nothing); a FULL
        commit, on a worker thread, so other uploads keep moving."""
        if fsync_fd is not None:
            os.fsync(fsync_fd)
        self.uploads.set_offset(upload_id, offset, utc_now() + self.expiry)
        return self.uploads.written(upload_id)

    async def _finish(
        self, upload: Upload, whole, fsync_fd: int | None = None, new: UploadMetadata | None = None
    ) -> Upload:
        """Every byte is in the .part file (fsynced, or ``fsync_fd`` is synced first): check the
        SHA-256, store the blob, say verified.

        The blob is stored before the one commit that records it; a crash between the two
        is found by ``recover`` (blob present, SHA-256 matching)."""
        digest = whole.hexdigest()
        if digest != upload.sha256:
            part = self.part(upload.upload_id)
            os.truncate(part, 0)
            if new is None:
                self.uploads.set_offset(upload.upload_id, 0, utc_now() + self.expiry)
            self._hashes.pop(upload.upload_id, None)
            log.warning("upload %s: whole-file SHA-256 mismatch, reset to 0", upload.upload_id)
            raise ChecksumMismatch(
                f"the received file's SHA-256 {digest} does not match the declared {upload.sha256}; "
                "the upload was reset to offset 0: send the clip again"
            )
        try:
            upload = await _to_the_end(asyncio.to_thread(self._store_and_commit, upload, fsync_fd, new))
        except _NotStored as failure:
            if new is None:
                self._hashes[upload.upload_id] = (upload.length, whole)
            if isinstance(failure.cause, BlobStoreUnavailable):
                log.warning(
                    "upload %s: clip %s not stored, kept for the station's retry: %s",
                    upload.upload_id,
                    upload.clip_id,
                    failure.cause,
                )
            raise failure.cause from None
        self._hashes.pop(upload.upload_id, None)
        log.info("clip %s verified (%d bytes, sha256 %s)", upload.clip_id, upload.length, digest)
        return upload

    def _store_and_commit(self, upload: Upload, fsync_fd: int | None, new: UploadMetadata | None) -> Upload:
        """On a worker thread: fsync (an error here counts nothing), the blob, the verified commit."""
        if fsync_fd is not None:
            os.fsync(fsync_fd)
        try:
            self.blobs.put(self.part(upload.upload_id), upload.clip_id, upload.sha256)
        except Exception as exc:
            # BlobStoreUnavailable is answered 503 with Retry-After. The .part file stays and every
            # byte stays counted (committed here): the station's retry (an empty PATCH at the end)
            # stores it again. A new upload leaves nothing: the station creates it again.
            if new is None:
                self._commit_offset(upload.upload_id, upload.length)
            raise _NotStored(exc) from exc
        if new is None:
            return self._commit_verified(upload)
        try:
            recorded = self.uploads.record_stored_upload(
                upload.upload_id, new, upload.metadata, upload.length, upload.station_id, upload.clip_id
            )
        except Conflict:
            # Another station's report of the clip, applied since the creation's check, names other
            # bytes: the blob just stored is these bytes (a put never replaces a blob), and goes.
            self.blobs.delete(upload.clip_id)
            raise
        if (recorded.sha256, recorded.length) != (upload.sha256, upload.length):
            # Another replica recorded other bytes under this clip id between this one's checks and
            # its commit. A blob is never replaced, so its put should have met this one's blob (or
            # this one its): kept as a guard. Never "verified" for the record of other bytes; a
            # person must see which bytes the blob holds.
            log.error(
                "clip %s: upload %s stored bytes of SHA-256 %s, but upload %s, made at once on another replica, "
                "recorded other bytes (SHA-256 %s) under the clip: a person must compare the blob with its record",
                upload.clip_id,
                upload.upload_id,
                upload.sha256,
                recorded.upload_id,
                recorded.sha256,
            )
            raise Conflict(f"clip {upload.clip_id} already has an upload with a different sha256 or length")
        return recorded

    def _part_short_of(self, upload: Upload) -> bool:
        """Whether this process's .part file lacks bytes the upload counts (missing, or shorter)."""
        try:
            return self.part(upload.upload_id).stat().st_size < upload.offset
        except FileNotFoundError:
            return True

    @staticmethod
    def _unlink_if_linked(part: Path) -> None:
        """Remove a part file's name that is also a stored blob's (a crash between the blob store's
        link and the part's removal): nothing may write to it."""
        try:
            if part.stat().st_nlink > 1:
                part.unlink()
        except FileNotFoundError:
            pass

    def _account_for_missing_part(self, upload: Upload) -> Upload:
        """Counted bytes this process's .part file does not hold: either the clip reached the blob
        store and the commit that records it failed (a full database), or the bytes are not here:
        lost (a power cut before the directory was synced), or received by another replica whose
        uploads folder this one does not share (docs/deployment.md). Record the first; restart the
        others from 0, so the station resends instead of being refused."""
        if self.blobs.exists(upload.clip_id) and self._blob_sha256(upload.clip_id) == upload.sha256:
            log.info("clip %s was stored before its commit failed: recorded now", upload.clip_id)
            self._hashes.pop(upload.upload_id, None)
            self._unlink_if_linked(self.part(upload.upload_id))
            return self._commit_verified(upload)
        self._unlink_if_linked(self.part(upload.upload_id))  # another clip's blob is not this part
        self.part(upload.upload_id).touch()
        self.uploads.set_offset(upload.upload_id, 0, utc_now() + self.expiry)
        self._hashes.pop(upload.upload_id, None)
        log.warning(
            "upload %s: its %d counted bytes are not in %s (lost, or received by a replica that does not share "
            "this folder); restarted at 0",
            upload.upload_id,
            upload.offset,
            self.dir,
        )
        raise OffsetMismatch(
            "central lost this upload's bytes; it restarted at offset 0: send the clip again from there (HEAD says so)"
        )

    def _commit_verified(self, upload: Upload) -> Upload:
        self.uploads.mark_verified(upload.upload_id, upload.clip_id)  # also sets the offset to the length
        return self.uploads.written(upload.upload_id)

    async def _whole_hash(self, upload: Upload):
        """The running SHA-256 of bytes 0..offset; rebuilt from the .part file after a restart."""
        cached = self._hashes.get(upload.upload_id)
        if cached is not None and cached[0] == upload.offset:
            return cached[1]
        if upload.offset == 0:  # nothing to read back (the first PATCH of every upload)
            return hashlib.sha256()
        return await asyncio.get_running_loop().run_in_executor(None, self._hash_prefix, upload)

    def _hash_prefix(self, upload: Upload):
        digest = hashlib.sha256()
        with open(self.part(upload.upload_id), "rb") as f:
            remaining = upload.offset
            while remaining:
                piece = f.read(min(FLUSH_BYTES, remaining))
                if not piece:
                    raise Gone("the upload's data is shorter than its recorded offset; create it again")
                digest.update(piece)
                remaining -= len(piece)
        return digest

    # -- maintenance -----------------------------------------------------------------------

    async def recover(self) -> None:
        """At start-up, before serving: make files and database agree after any crash."""
        receiving = [upload for upload in self.uploads.receiving_uploads() if not upload.staged]
        known = {upload.upload_id for upload in receiving}
        for part in self.dir.glob("*.part"):
            if part.stem not in known:  # a whole clip's creation that died before its commit, or one
                try:  # stored whose move out of this folder a power cut took back
                    with self._part_locked(part.stem):
                        part.unlink(missing_ok=True)
                except Locked:
                    continue  # another replica is creating it right now
                log.info("removed %s: no upload is receiving it", part.name)
        for upload in receiving:
            try:
                await self._recover_one(upload)
            except Locked:
                pass  # another replica is writing it: its own PATCH keeps file and offset in step

    async def _recover_one(self, upload: Upload) -> None:
        """One receiving upload's file and offset made to agree, under its part's lock."""
        with self._part_locked(upload.upload_id) as exists:
            current = self.uploads.upload(upload.upload_id)  # as it is now, under the lock
            if current is None or current.verified:
                return  # finished or removed by another replica since the list was read
            upload, part = current, self.part(upload.upload_id)
            if exists and part.stat().st_nlink > 1:
                # Linked into the filesystem blob store, a crash before its own name was removed: the
                # bytes are stored, and cutting the part back to its counted offset would cut the blob.
                part.unlink()
                exists = False
            if not exists:
                try:
                    self._account_for_missing_part(upload)
                except OffsetMismatch:
                    pass  # restarted at 0: the station's next HEAD finds out
                return
            size = part.stat().st_size
            if size > upload.offset:
                os.truncate(part, upload.offset)  # bytes after the last committed offset were never counted
            elif size < upload.offset:
                self.uploads.set_offset(upload.upload_id, size, utc_now() + self.expiry)
            if upload.offset == upload.length and size >= upload.offset:
                whole = self._hash_prefix(upload)
                try:
                    await self._finish(upload, whole)
                except ChecksumMismatch:
                    pass  # reset to offset 0: the station sends it again
                except BlobStoreUnavailable:
                    pass  # logged; kept as it is, the station's retry stores it

    def _blob_sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        for piece in self.blobs.read(key):
            digest.update(piece)
        return digest.hexdigest()

    async def expire(self, now: datetime | None = None) -> int:
        """Remove unfinished uploads untouched for longer than the expiry (tus expiration).

        On the event loop, like every user of the per-upload locks: each upload is removed
        under its lock, after checking it is still expired (a PATCH may have resumed it since
        the list was read); the reads and deletes run on worker threads."""
        now = now or utc_now()
        removed = 0
        for listed in await asyncio.to_thread(self.uploads.expired_uploads, now):
            lock = self._lock(listed.upload_id)
            if lock.locked():
                continue
            async with lock:
                upload = await asyncio.to_thread(self.uploads.upload, listed.upload_id)
                if upload is None or upload.verified or upload.expires_at is None or upload.expires_at > now:
                    continue
                try:
                    await self._remove(upload)
                except Locked:
                    continue  # another replica is writing it: not expired after all
                except Conflict:
                    continue  # staged, and found stored by a process that died before recording it: recorded
                except BlobStoreUnavailable as exc:
                    log.warning("expired upload %s not removed, the bucket failed: %s", upload.upload_id, exc)
                    continue
            removed += 1
        if removed:
            log.info("removed %d expired unfinished uploads", removed)
        if self.staged is not None:
            try:
                await asyncio.to_thread(self.staged.sweep, now)
            except BlobStoreUnavailable as exc:
                log.warning("the bucket's abandoned multipart uploads were not swept: %s", exc)
        return removed


def _lock_part(fd: int, upload_id: str) -> None:
    """The part file's exclusive lock for as long as ``fd`` is open: replicas sharing the uploads
    folder never write one upload at once (a process's own requests take turns on an asyncio
    lock first). The kernel lets go when the process dies, so a dead replica's upload is at
    once free to resume elsewhere. A file removed before its lock was taken is no one's to write:
    a replica starting up removes a part file no one holds, and one just made is held only from
    here (written all the same, it was missing when moved into the blob store: a 500)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise Locked(f"another central process is writing upload {upload_id}", headers={"Retry-After": "1"}) from None
    if os.fstat(fd).st_nlink == 0:
        raise Locked(
            f"another central process removed upload {upload_id}'s part file as it was opened",
            headers={"Retry-After": "1"},
        )


def _buffer_set() -> list[PartWriter]:
    """One more than the sink keeps in flight: one is read into while the others are written."""
    return [PartWriter(capacity=DIRECT_BATCH_BYTES) for _ in range(DIRECT_IN_FLIGHT + 1)]


async def _to_the_end(work: Awaitable[T]) -> T:
    """``work`` (a hop to a worker thread that syncs, counts or stores a clip's bytes) awaited to its
    end even when the request is cancelled meanwhile (the client or the server went away), and only
    then the cancellation raised: the caller's locks (the clip's turn to create, the upload's) and
    its part file's descriptor are held for as long as the thread uses them. Let go early, another
    creation of the clip stored its own bytes under the same key beside this one (the last rename
    won, the first commit was recorded), a retried PATCH cut the part file back under the move into
    the blob store, and the thread fsynced a descriptor closed, or reused, under it."""
    done = asyncio.ensure_future(work)
    cancelled: asyncio.CancelledError | None = None
    while not done.done():
        try:
            await asyncio.wait([done])
        except asyncio.CancelledError as exc:
            cancelled = exc
    if cancelled is not None:
        if not done.cancelled():
            done.exception()  # retrieved: what the thread raised goes with the cancellation
        raise cancelled
    return done.result()


async def _replayed(pieces: list[bytes], *, cut_short: bool = False) -> AsyncIterator[bytes]:
    """A body read already, given again; ``cut_short``: ended as it was, by a broken connection."""
    for piece in pieces:
        yield piece
    if cut_short:
        raise ConnectionResetError("the body was cut short")


async def _no_bytes() -> AsyncIterator[bytes]:
    return
    yield  # an async generator that yields nothing


def _close_opened(opening: asyncio.Future[tuple[FileIO, int | None]]) -> None:
    """Close what a worker thread opened for a request that was cancelled while it waited."""
    if opening.cancelled() or opening.exception() is not None:
        return
    f, direct_fd = opening.result()
    f.close()
    if direct_fd is not None:
        os.close(direct_fd)


def storage_error(exc: OSError) -> Exception:
    """A full disk is the client's cue to come back later (507 + Retry-After); other I/O errors are ours."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return InsufficientStorage("central's storage is full; try again later")  # Retry-After: central/core/errors.py
    return exc
