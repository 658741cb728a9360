"""Clips up: the sync worker drains the clip queue to central over tus 1.0.0, evidential first.

The worker runs as an apscheduler job and is also woken the moment ingest queues new work.
Each clip's attempts, last error and next-attempt time are persisted, so a restart keeps the
backoff schedule. Permanent refusals are reported, never retried on their own.

One clip's upload (docs/sync-protocol.md): create (idempotent by clip_id) → HEAD for
central's offset → PATCH chunks, each with its own ``Upload-Checksum``. After any failure the
next try asks HEAD again and resumes from central's offset; nothing restarts from zero unless
central says so. Success means central answered ``Fleet-Clip-State: verified``, nothing less
(``plain_tus`` relaxes that for a server without central's extras, such as the peer in
bench/peer.py). Local copies are deleted only after "verified" and a grace period.

Local copies are sealed (fleet/cipher.py): they are opened as they are read, from any offset,
and central receives the camera's own bytes. A segment that fails authentication ends the
upload before any of its bytes is sent; the clip is failed as damaged at the station, never
verified. Clips stored plain before encryption at rest are read as they are.
"""

from __future__ import annotations

import base64
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx

from fleet.cipher import SealedReader
from fleet.clock import utc_now
from fleet.errors import (
    ChecksumMismatch,
    ConfigError,
    DamagedCopyError,
    PermanentTransferError,
    TransferError,
    TransientTransferError,
)
from fleet.hashing import new_checksum
from fleet.protocol import CLIP_STATE_HEADER, TUS_VERSION, UploadMetadata, encode_upload_metadata
from fleet.retry import RetryPolicy, as_transfer_error
from station.metrics import StationMetrics
from station.store import StationStore
from station.store.queue import QueuedClip
from station.sync.errors import error_from_response
from station.sync.window import UploadWindow
from station.throttle import Throttle

log = logging.getLogger(__name__)

UPLOADS_PATH = "/api/v1/uploads/"
WHOLE_AT_CREATION_BYTES = 4 << 20
"""A clip up to this size goes in its creation request (tus creation-with-upload, when the
server offers it): one request and one round trip instead of two. After a cut, the retry's
creation finds the upload and resumes it as usual; at most this much is sent twice."""
SEND_PIECE = 4 << 20
READ_PIECE = 1 << 20
LOST_AT_RESTORE = (
    "lost: central was restored to a point before it verified this clip, its blob store does not hold it, "
    "and this station deleted its copy after that verification (docs/backup.md)"
)
REFUSED_ONCE = "refused once, trying again: "
"""A refusal (4xx) is final only when it comes twice in the same words: a byte flipped on the
way can turn a good request into a bad one (``Upload-Metadata`` turned into a header central
did not know, and the clip was failed for good)."""


@dataclass
class SyncReport:
    verified: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    central_unreachable: bool = False


class SyncWorker:
    """Uploads due clips with up to ``concurrency`` transfers at once."""

    def __init__(
        self,
        store: StationStore,
        uploader: TusUploader,
        policy: RetryPolicy,
        *,
        concurrency: int = 2,
        window: UploadWindow | None = None,
        metrics: StationMetrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics or StationMetrics()
        self.window = window
        """Outside it only evidential and held clips are claimed (None: any clip, any time)."""
        self.uploader = uploader
        self.policy = policy
        self.concurrency = concurrency
        self.stopping = threading.Event()
        self._woken = threading.Event()

    def wake(self) -> None:
        """New work arrived: a pass already running picks it up before it ends."""
        self._woken.set()

    def run_once(self) -> SyncReport:
        """Upload every clip that is due, until none is left or central stops answering.

        Clips central verified are marked so here, between claims, all those finished meanwhile
        in one durable commit (group commit: one fsync for several clips, not one each). A clip
        central verified but not yet marked is only sent again after a crash (central finds it
        verified); its local copy is never purged before the mark is durable."""
        report = SyncReport()
        verified: list[str] = []
        if not self._recheck(report):
            return report
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="upload") as pool:
            running: dict[Future[bool], QueuedClip] = {}
            try:
                while not self.stopping.is_set():
                    self._woken.clear()
                    self._mark_verified(verified, report)
                    if not report.central_unreachable:
                        free = self.concurrency - len(running)
                        routine = self.window is None or self.window.is_open(utc_now())
                        for clip in self.store.queue.claim_due(free, routine=routine) if free else []:
                            running[pool.submit(self._upload, clip, report)] = clip
                    if not running:
                        if self._woken.is_set() and not report.central_unreachable:
                            continue
                        break
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        clip = running.pop(future)
                        if future.result():
                            verified.append(clip.clip_id)
            finally:
                for future in as_completed(running):  # the pool's shutdown waits for them anyway
                    if not future.exception() and future.result():
                        verified.append(running[future].clip_id)
                self._mark_verified(verified, report)
        return report

    def _recheck(self, report: SyncReport) -> bool:
        """Ask central about each clip it may have lost in a restore (one creation request each,
        no bytes): still verified there (or its blob adopted again), nothing to do; else queued to
        send again, or, with no local copy left, failed as lost, for a person. False: central did
        not answer (the rest wait for the next pass)."""
        while not self.stopping.is_set():
            if not self.store.queue.rechecking():  # nearly always: no restore to catch up with
                return True
            # Asked once central holds the clip's ingest report (the events job sends it): central
            # takes back a blob it holds only for the station that reported the ingest.
            clips = self.store.queue.to_recheck(100, excluding=self.store.outbox.unacked_ingests())
            if not clips:
                return True
            for clip in clips:
                try:
                    url, _, verified = self.uploader.probe(clip)
                except PermanentTransferError as exc:  # central holds other bytes under its id: for a person
                    log.error("clip %s refused when checked again with central: %s", clip.clip_id, exc)
                    self.store.queue.rechecked(clip.clip_id, verified=False)
                    self.store.queue.mark_failed(clip.clip_id, f"refused when checked again: {exc}")
                    report.failed.append(clip.clip_id)
                    continue
                except Exception as exc:  # asked again next pass; events wait meanwhile
                    log.warning("clip %s not checked again with central: %s", clip.clip_id, as_transfer_error(exc))
                    report.central_unreachable = True
                    return False
                self.store.queue.rechecked(clip.clip_id, verified=verified, upload_url=None if verified else url)
                if verified:
                    continue
                if clip.local_path is None or not self.store.local_path(clip.local_path).is_file():
                    log.error("clip %s lost at central's restore, and this station has no copy left", clip.clip_id)
                    self.store.queue.mark_failed(clip.clip_id, LOST_AT_RESTORE)
                    report.failed.append(clip.clip_id)
                else:
                    log.warning("clip %s lost at central's restore: sending it again", clip.clip_id)
        return False

    def _mark_verified(self, clip_ids: list[str], report: SyncReport) -> None:
        if not clip_ids:
            return
        self.store.queue.mark_verified(clip_ids)
        report.verified.extend(clip_ids)
        for clip_id in clip_ids:
            log.info("clip %s verified at central", clip_id)
        clip_ids.clear()

    def _upload(self, clip: QueuedClip, report: SyncReport) -> bool:
        """One clip's upload; True once central verified it (marked so by ``run_once``)."""
        if self.stopping.is_set():
            self.store.queue.release([clip.clip_id])
            return False
        try:
            self.uploader.upload(clip)
        except ClipLost as exc:
            log.error("clip %s lost: %s", clip.clip_id, exc)
            self.metrics.upload_failures.labels("refused").inc()
            self.store.queue.mark_failed(clip.clip_id, f"lost: {exc}")
            report.failed.append(clip.clip_id)
        except DamagedCopyError as exc:
            # Not central's refusal nor a passing fault: the station's copy itself is bad. Failed at
            # once, for a person to look at (`fleet station status`); it is never marked verified.
            log.error("clip %s not uploaded: %s", clip.clip_id, exc)
            self.metrics.upload_failures.labels("damaged").inc()
            self.store.queue.mark_failed(clip.clip_id, str(exc), damaged=True)
            report.failed.append(clip.clip_id)
        except Exception as exc:  # every failure is recorded against the clip, none escapes
            error = as_transfer_error(exc)
            if error.status == ChecksumMismatch.status_code:
                self.metrics.verification_failures.inc()
            if isinstance(error, PermanentTransferError) and clip.last_error == f"{REFUSED_ONCE}{error}":
                # Refused twice in the same words: the request itself is refused, not a damaged copy.
                log.error("clip %s refused by central, not retried: %s", clip.clip_id, error)
                self.metrics.upload_failures.labels("refused").inc()
                self.store.queue.mark_failed(clip.clip_id, str(error))
                report.failed.append(clip.clip_id)
                return False
            delay = self.policy.backoff_delay(clip.attempts + 1, error)
            reason = f"{REFUSED_ONCE}{error}" if isinstance(error, PermanentTransferError) else str(error)
            self.store.queue.mark_waiting(clip.clip_id, reason, utc_now() + timedelta(seconds=delay))
            self.metrics.upload_failures.labels("retried").inc()
            report.waiting.append(clip.clip_id)
            if error.status is None:
                report.central_unreachable = True  # no answer at all: stop claiming more this pass
            log.warning("clip %s will be retried in %.1fs: %s", clip.clip_id, delay, error)
        else:
            self.metrics.uploads_verified.inc()  # central verified it; marked so by run_once
            self.metrics.upload_verified_bytes.inc(clip.size)
            return True
        return False


def purge_local_copies(store: StationStore, grace: timedelta) -> int:
    """Delete local copies of clips central verified more than ``grace`` ago; return how many."""
    removed = 0
    for clip_id, relative in store.queue.purgeable(grace):
        # Unlink first: a crash before the row update only means unlinking again next time.
        Path(store.local_path(relative)).unlink(missing_ok=True)
        store.queue.mark_local_deleted(clip_id)
        removed += 1
    return removed


# -- one clip over tus ----------------------------------------------------------------------


class ClipLost(PermanentTransferError):
    """Neither this station nor central holds the clip's bytes: failed at once, for a person."""


class UploadGone(TransientTransferError):
    """The upload URL is no longer known at central (tus: 404/410); the clip is not refused."""


class TusUploader:
    """Sends clips to central; collaborators injected so tests can use MockTransport or TestClient."""

    def __init__(
        self,
        client: httpx.Client,
        store: StationStore,
        policy: RetryPolicy,
        *,
        chunk_bytes: int = 16 << 20,
        chunk_algorithm: str = "crc32c",
        throttle: Throttle | None = None,
        on_progress: Callable[[str, int], None] | None = None,
        plain_tus: bool = False,
    ) -> None:
        """``plain_tus``: the server is a plain tus 1.0 server that never says "verified" (nor
        checks Upload-Checksum or the SHA-256); an upload counts as done once it holds every
        byte. Never for central: there, only "verified" means the clip is safe."""
        self.client = client
        self.store = store
        self.policy = policy
        self.chunk_bytes = chunk_bytes
        self.chunk_algorithm = chunk_algorithm
        self.throttle = throttle
        self.on_progress = on_progress
        self.plain_tus = plain_tus
        self._server_extensions: frozenset[str] | None = None
        self._uploads = client.base_url.join(UPLOADS_PATH.lstrip("/"))
        """Made once, as httpx makes it of the relative path at every request (under the base URL's
        own path; that and the Location's join were a tenth of the client's time on small clips)."""

    def upload(self, clip: QueuedClip) -> None:
        """Return once central has verified the clip; raise TransferError otherwise."""
        path = self.store.local_path(clip.local_path) if clip.local_path is not None else None
        if path is None or not path.is_file():
            # A station restored from a backup lists clips whose copies went with the old disk:
            # central may have them (sent before the failure); else they are lost, said at once.
            if self.probe(clip)[2]:
                return
            raise ClipLost(f"no local copy of this clip is left ({path or 'deleted'}) and central does not hold it")
        state = {"url": clip.upload_url}
        read = self._reader(clip, path)
        try:
            for attempt in self.policy.retrying():
                with attempt:
                    try:
                        self._transfer(clip, read, state)
                    except UploadGone:
                        state["url"] = None  # the next try creates it again (idempotent by clip_id)
                        self.store.queue.set_upload_url(clip.clip_id, None)
                        raise
        except (TransferError, DamagedCopyError):
            raise
        except Exception as exc:  # network errors and the like, after the quick retries
            raise as_transfer_error(exc) from exc

    def _reader(self, clip: QueuedClip, path: Path) -> Reader:
        """How this clip's original bytes are read: opened from its sealed copy, or plain (a legacy copy)."""
        if clip.wrapped_key is None or clip.wrapped_by is None:
            return lambda at, length, piece: read_range(path, at, length, piece)
        if self.store.keys is None:
            raise TransientTransferError(f"clip {clip.clip_id} is sealed and this station was given no key")
        try:
            data_key = self.store.keys.unwrap(clip.wrapped_by, clip.wrapped_key, clip.clip_id)
        except ConfigError as exc:
            raise TransientTransferError(str(exc)) from None

        def read(at: int, length: int, piece: int) -> Iterator[bytes]:
            with SealedReader(path, data_key, clip.clip_id, clip.size) as sealed:
                yield from sealed.read_range(at, length, piece)

        return read

    # -- one try ---------------------------------------------------------------------------

    def _transfer(self, clip: QueuedClip, read: Reader, state: dict) -> None:
        url = state["url"]
        head = self._head(url) if url else None
        if head is None:
            created, head = self._create(clip, read)
            if created is None:  # verified in its creation request: nothing to resume, nowhere to go
                return
            url = state["url"] = created
            self.store.queue.set_upload_url(clip.clip_id, url)
        offset, verified = head
        if verified or self._plainly_done(offset, clip):
            return
        if offset > clip.size:
            raise PermanentTransferError(f"central reports offset {offset} beyond the clip's {clip.size} bytes")
        if offset == clip.size:
            # Every byte is there but central has not said "verified" (it may have died before
            # finishing): an empty PATCH at the end asks it to finish.
            offset, verified = self._patch(url, offset, b"", 0, None)
            if not verified:
                raise TransientTransferError("central holds every byte but has not verified the clip")
            return
        for chunk_offset, length, checksum in self._chunks(clip, read, offset):
            offset, verified = self._patch(url, chunk_offset, self._body(read, chunk_offset, length), length, checksum)
            if self.on_progress and not verified:  # "verified" records the whole size itself
                self.on_progress(clip.clip_id, offset)
            if offset != chunk_offset + length:
                raise TransientTransferError(f"central's offset {offset} is not where this chunk ended")
        if not (verified or self._plainly_done(offset, clip)):
            raise TransientTransferError("upload complete but central did not confirm 'verified'")

    def _plainly_done(self, offset: int, clip: QueuedClip) -> bool:
        return self.plain_tus and offset == clip.size

    def probe(self, clip: QueuedClip) -> tuple[str, int, bool]:
        """A creation request without bytes (idempotent by clip id): the upload's URL, offset and
        whether central holds the clip verified (or adopted its blob, central/uploads/receiver.py)."""
        for attempt in self.policy.retrying():
            with attempt:
                response = self.client.post(self._uploads, headers=self._creation_headers(clip))
                self._raise_for(response, (200, 201))
                offset, verified = self._offset_and_state(response, default_offset=0)
                return self._location(response), offset, verified
        raise AssertionError("unreachable: retrying re-raises")

    def _create(self, clip: QueuedClip, read: Reader) -> tuple[str | None, tuple[int, bool]]:
        """The upload's URL (None once central says the clip is verified: it is never resumed, and
        its Location is not followed) and (offset, verified)."""
        headers = self._creation_headers(clip)
        body = None
        if 0 < clip.size <= min(WHOLE_AT_CREATION_BYTES, self.chunk_bytes) and self._offers("creation-with-upload"):
            [(_, length, checksum)] = self._chunks(clip, read, 0)
            headers.update(
                {
                    "Content-Type": "application/offset+octet-stream",
                    "Content-Length": str(length),
                    "Upload-Checksum": f"{self.chunk_algorithm} {checksum}",
                }
            )
            body = self._body(read, 0, length)
        response = self.client.post(self._uploads, headers=headers, content=body)
        self._raise_for(response, (200, 201))
        offset, verified = self._offset_and_state(response, default_offset=0)
        return (None if verified else self._location(response)), (offset, verified)

    def _location(self, response: httpx.Response) -> str:
        location = response.headers.get("Location")
        if not location:
            raise TransientTransferError("central created the upload but sent no Location")
        if location.startswith(UPLOADS_PATH):
            # Central's own path for it: below central_url's path, as the creation was (behind a
            # proxy that serves central below a path, central does not know that path).
            url = self._uploads.join(location.removeprefix(UPLOADS_PATH))
        else:
            url = self.client.base_url.join(location)
        base = self.client.base_url
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
            # The footage and the token go only where central_url (and its TLS check) says.
            raise PermanentTransferError(f"central's Location {location[:200]!r} points away from {base}")
        return str(url)

    def _creation_headers(self, clip: QueuedClip) -> dict[str, str]:
        meta = UploadMetadata(
            # The queue holds the canonical text of the sidecar's UUID (ingest writes
            # str(UUID)), so the header carries the very same text.
            clip_id=uuid.UUID(clip.clip_id),
            sha256=clip.sha256,
            device_serial=clip.device_serial,
            recorded_at=clip.recorded_at,
            filename=clip.filename,
            evidential=clip.evidential,
            tags=clip.tags,
            duration_s=clip.duration_s,
            pre_record_s=clip.pre_record_s,
        )
        return {
            "Tus-Resumable": TUS_VERSION,
            "Upload-Length": str(clip.size),
            "Upload-Metadata": encode_upload_metadata(meta),
        }

    def _offers(self, extension: str) -> bool:
        """Whether the server lists a tus extension (asked once; an older central lacks some)."""
        if self._server_extensions is None:
            response = self.client.options(self._uploads, headers={"Tus-Resumable": TUS_VERSION})
            if response.status_code >= 500 or response.status_code == 429:
                raise error_from_response(response)  # ask again on the next try
            offered = response.headers.get("Tus-Extension", "") if response.is_success else ""  # OPTIONS is optional
            self._server_extensions = frozenset(e.strip() for e in offered.split(",") if e.strip())
        return extension in self._server_extensions

    def _head(self, url: str) -> tuple[int, bool] | None:
        response = self.client.head(url, headers={"Tus-Resumable": TUS_VERSION})
        if response.status_code in (404, 410):
            return None  # expired or removed at central: create it again
        self._raise_for(response, (200,))
        return self._offset_and_state(response)

    def _patch(
        self, url: str, offset: int, body: Iterator[bytes] | bytes, length: int, checksum: str | None
    ) -> tuple[int, bool]:
        headers = {
            "Tus-Resumable": TUS_VERSION,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            "Content-Length": str(length),
        }
        if checksum:
            headers["Upload-Checksum"] = f"{self.chunk_algorithm} {checksum}"
        response = self.client.patch(url, content=body, headers=headers)
        if response.status_code in (404, 410):  # expired or terminated at central meanwhile
            raise UploadGone(
                f"HTTP {response.status_code}: central no longer has this upload; creating it again",
                status=response.status_code,
            )
        self._raise_for(response, (204, 200))
        return self._offset_and_state(response)

    # -- helpers ---------------------------------------------------------------------------

    def _chunks(self, clip: QueuedClip, read: Reader, offset: int) -> Iterator[tuple[int, int, str]]:
        """(offset, length, checksum) of each chunk from ``offset``.

        Checksums computed at ingest are used when they fit (same chunk size, aligned offset);
        otherwise the next chunk is hashed on a helper thread while the current one is sent.
        Chunks are read from the file, never held whole in memory, so a large chunk (fewer
        fsyncs at central) costs no memory."""
        size = clip.size
        if (
            clip.chunk_checksums
            and clip.chunk_bytes == self.chunk_bytes
            and clip.chunk_algorithm == self.chunk_algorithm
            and offset % self.chunk_bytes == 0
        ):
            for at in range(offset, size, self.chunk_bytes):
                yield at, min(self.chunk_bytes, size - at), clip.chunk_checksums[at // self.chunk_bytes]
            return

        def checksum(at: int) -> tuple[int, int, str]:
            length = min(self.chunk_bytes, size - at)
            digest = new_checksum(self.chunk_algorithm)
            for piece in read(at, length, READ_PIECE):
                digest.update(piece)
            return at, length, base64.b64encode(digest.digest()).decode()

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-hasher") as hasher:
            upcoming: Future | None = hasher.submit(checksum, offset)
            while upcoming is not None:
                at, length, digest = upcoming.result()
                following = at + length
                upcoming = hasher.submit(checksum, following) if following < size else None
                yield at, length, digest

    def _body(self, read: Reader, at: int, length: int) -> Iterator[bytes]:
        """The chunk's bytes in small pieces, metered by the bandwidth cap when there is one.

        Pieces, not one ``bytes``: httpcore re-slices a large body on every partial socket send."""
        for piece in read(at, length, SEND_PIECE):
            if self.throttle:
                self.throttle.consume(len(piece))
            yield piece

    @staticmethod
    def _offset_and_state(response: httpx.Response, default_offset: int | None = None) -> tuple[int, bool]:
        verified = response.headers.get(CLIP_STATE_HEADER) == "verified"
        raw = response.headers.get("Upload-Offset")
        if raw is None and default_offset is not None:
            return default_offset, verified
        try:
            return int(raw), verified
        except (TypeError, ValueError):
            raise TransientTransferError(f"central sent no usable Upload-Offset ({raw!r})") from None

    @staticmethod
    def _raise_for(response: httpx.Response, ok: tuple[int, ...]) -> None:
        if response.status_code in ok:
            return
        raise error_from_response(response)


Reader = Callable[[int, int, int], Iterable[bytes]]
"""(offset, length, piece size) → the clip's original bytes in that range, in pieces."""


def read_range(path: Path, at: int, length: int, piece_size: int) -> Iterator[bytes]:
    """Bytes ``at``..``at+length`` of the local copy in pieces; a short file is a permanent error."""
    with open(path, "rb") as f:
        f.seek(at)
        remaining = length
        while remaining:
            piece = f.read(min(piece_size, remaining))
            if not piece:
                raise PermanentTransferError(f"local copy {path} is shorter than recorded")
            remaining -= len(piece)
            yield piece
