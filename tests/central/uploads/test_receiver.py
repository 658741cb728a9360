"""The upload state machine directly: concurrency, cut-short bodies, crash recovery, expiry."""

import asyncio
import hashlib
import os
import sys
import threading
import time
import uuid
from datetime import timedelta

import pytest

from central.access.auth import Principal
from central.evidence.clip_records import ClipRecords
from central.uploads.blobstore import FilesystemBlobStore
from central.uploads.receiver import HELD_WHOLE_BYTES, Checksum, UploadReceiver
from central.uploads.service import UploadService
from fleet.clock import utc_now
from fleet.errors import ChecksumMismatch, Conflict, Locked
from fleet.protocol import decode_upload_metadata
from tests.central.conftest import central_store, metadata

CAMDEN = Principal("station:camden", station_id="camden")


@pytest.fixture
def parts(tmp_path):
    store = central_store(tmp_path)
    yield store, FilesystemBlobStore(tmp_path / "blobs"), tmp_path / "uploads"
    store.close()


def uploads_of(store) -> UploadService:
    return UploadService(store.writer)


def receiver(parts, **kw) -> UploadReceiver:
    store, blobs, uploads = parts
    return UploadReceiver(
        store, blobs, uploads, max_upload_bytes=1 << 30, expiry=kw.pop("expiry", timedelta(hours=1)), **kw
    )


def sha256_checksum(data: bytes) -> Checksum:
    return Checksum("sha256", hashlib.sha256(data).digest())


async def body(*pieces: bytes, fail_after: bool = False, gate: asyncio.Event | None = None):
    for piece in pieces:
        yield piece
        if gate is not None:
            await gate.wait()
    if fail_after:
        raise ConnectionResetError("client went away")


def test_concurrent_patch_is_locked_never_interleaved(parts):
    data = os.urandom(200_000)
    r = receiver(parts)
    upload, _ = r.create(CAMDEN, len(data), metadata(data))

    async def scenario():
        gate = asyncio.Event()
        first = asyncio.create_task(r.append(CAMDEN, upload.upload_id, 0, None, body(data[:1000], gate=gate)))
        await asyncio.sleep(0)  # let the first PATCH take the lock and start reading
        while not r._lock(upload.upload_id).locked():
            await asyncio.sleep(0)
        with pytest.raises(Locked):
            await r.append(CAMDEN, upload.upload_id, 0, None, body(data[:1000]))
        gate.set()
        return await first

    result = asyncio.run(scenario())
    assert result.offset == 1000


def test_cut_short_checksummed_chunk_counts_nothing(parts):
    data = os.urandom(100_000)
    r = receiver(parts)
    upload, _ = r.create(CAMDEN, len(data), metadata(data))
    after = asyncio.run(
        r.append(CAMDEN, upload.upload_id, 0, sha256_checksum(data[:50_000]), body(data[:20_000], fail_after=True))
    )
    assert after.offset == 0
    assert r.part(upload.upload_id).stat().st_size == 0


def test_cut_short_plain_chunk_keeps_what_arrived(parts):
    data = os.urandom(100_000)
    r = receiver(parts)
    upload, _ = r.create(CAMDEN, len(data), metadata(data))
    after = asyncio.run(
        r.append(CAMDEN, upload.upload_id, 0, None, body(data[:20_000], data[20_000:30_000], fail_after=True))
    )
    assert after.offset == 30_000
    done = asyncio.run(r.append(CAMDEN, upload.upload_id, 30_000, None, body(data[30_000:])))
    assert done.verified


def test_a_body_that_goes_silent_is_ended_keeping_what_arrived(parts):
    data = os.urandom(100_000)
    r = receiver(parts, body_idle_timeout_s=0.2)
    upload, _ = r.create(CAMDEN, len(data), metadata(data))
    never = asyncio.Event()  # a dead link: the rest of the body never comes
    after = asyncio.run(r.append(CAMDEN, upload.upload_id, 0, None, body(data[:30_000], gate=never)))
    assert after.offset == 30_000 and not r._lock(upload.upload_id).locked()
    assert asyncio.run(r.append(CAMDEN, upload.upload_id, 30_000, None, body(data[30_000:]))).verified


def test_restart_rebuilds_the_running_hash_from_the_part_file(parts):
    data = os.urandom(100_000)
    upload, _ = receiver(parts).create(CAMDEN, len(data), metadata(data))
    asyncio.run(receiver(parts).append(CAMDEN, upload.upload_id, 0, None, body(data[:40_000])))
    fresh = receiver(parts)  # a new process: no hash in memory
    done = asyncio.run(fresh.append(CAMDEN, upload.upload_id, 40_000, None, body(data[40_000:])))
    assert done.verified


def test_recovery_truncates_bytes_past_the_committed_offset(parts):
    data = os.urandom(100_000)
    r = receiver(parts)
    upload, _ = r.create(CAMDEN, len(data), metadata(data))
    asyncio.run(r.append(CAMDEN, upload.upload_id, 0, None, body(data[:40_000])))
    with open(r.part(upload.upload_id), "ab") as f:  # written, never committed: the crash case
        f.write(b"garbage" * 100)
    fresh = receiver(parts)
    asyncio.run(fresh.recover())
    assert r.part(upload.upload_id).stat().st_size == 40_000
    assert asyncio.run(fresh.append(CAMDEN, upload.upload_id, 40_000, None, body(data[40_000:]))).verified


# The last PATCH's bytes are counted by the same commit that says verified: 0 until then.
@pytest.mark.parametrize("committed", [0, 10_000])
def test_recovery_records_a_blob_moved_before_the_crash(parts, committed):
    store, blobs, _ = parts
    data = os.urandom(10_000)
    r = receiver(parts)
    upload, _ = r.create(CAMDEN, len(data), metadata(data))
    part = r.part(upload.upload_id)
    part.write_bytes(data)
    uploads_of(store).set_offset(upload.upload_id, committed, utc_now() + timedelta(hours=1))
    blobs.put(part, upload.clip_id)  # crash right after the rename, before the commit
    asyncio.run(receiver(parts).recover())
    assert uploads_of(store).upload(upload.upload_id).verified
    assert ClipRecords(store.writer).clip(upload.clip_id).state == "verified"


@pytest.mark.parametrize("committed", [0, 4_000, 10_000])
def test_recovery_never_cuts_a_blob_its_part_file_is_still_linked_to(parts, committed):
    """The blob store links a part file into place, then removes the part's name: a crash between
    the two leaves both names on one file. Recovery cutting the part back to its counted offset cut
    the stored blob with it; the blob stands, and its upload is recorded verified."""
    store, blobs, _ = parts
    data = os.urandom(10_000)
    r = receiver(parts)
    upload, _ = r.create(CAMDEN, len(data), metadata(data))
    part = r.part(upload.upload_id)
    part.write_bytes(data)
    uploads_of(store).set_offset(upload.upload_id, committed, utc_now() + timedelta(hours=1))
    blob = blobs._path(upload.clip_id)
    blob.parent.mkdir(exist_ok=True)
    os.link(part, blob)  # the blob store's link; the crash comes before it removes the part's name
    asyncio.run(receiver(parts).recover())
    assert b"".join(blobs.read(upload.clip_id)) == data
    assert uploads_of(store).upload(upload.upload_id).verified
    assert not part.exists()


def test_recovery_finishes_an_upload_whose_last_byte_was_committed(parts):
    store, _, _ = parts
    data = os.urandom(10_000)
    r = receiver(parts)
    upload, _ = r.create(CAMDEN, len(data), metadata(data))
    r.part(upload.upload_id).write_bytes(data)
    uploads_of(store).set_offset(upload.upload_id, len(data), utc_now() + timedelta(hours=1))
    asyncio.run(receiver(parts).recover())
    assert uploads_of(store).upload(upload.upload_id).verified


def test_a_failing_blob_store_keeps_every_byte_counted_for_the_retry(parts, monkeypatch):
    store, blobs, _ = parts
    data = os.urandom(10_000)
    r = receiver(parts)
    upload, _ = r.create(CAMDEN, len(data), metadata(data))
    put = blobs.put

    def unavailable(*args):
        monkeypatch.setattr(blobs, "put", put)
        raise OSError(5, "blob store unavailable")

    monkeypatch.setattr(blobs, "put", unavailable)
    with pytest.raises(OSError):
        asyncio.run(r.append(CAMDEN, upload.upload_id, 0, sha256_checksum(data), body(data)))
    assert (
        uploads_of(store).upload(upload.upload_id).offset == len(data)
        and not uploads_of(store).upload(upload.upload_id).verified
    )
    done = asyncio.run(r.append(CAMDEN, upload.upload_id, len(data), None, body()))  # the station's retry
    assert done.verified and ClipRecords(store.writer).clip(upload.clip_id).state == "verified"


def test_expired_unfinished_uploads_are_removed_verified_ones_kept(parts):
    store, _, _ = parts
    r = receiver(parts, expiry=timedelta(seconds=0))
    stale = os.urandom(1000)
    done = os.urandom(1000)
    s_upload, _ = r.create(CAMDEN, len(stale), metadata(stale))
    d_upload, _ = r.create(CAMDEN, len(done), metadata(done))
    asyncio.run(r.append(CAMDEN, d_upload.upload_id, 0, None, body(done)))
    assert asyncio.run(r.expire(utc_now() + timedelta(seconds=1))) == 1
    assert uploads_of(store).upload(s_upload.upload_id) is None and not r.part(s_upload.upload_id).exists()
    assert ClipRecords(store.writer).clip(s_upload.clip_id) is None
    assert uploads_of(store).upload(d_upload.upload_id).verified


def test_an_upload_resumed_while_expiry_looked_is_kept(parts, monkeypatch):
    """Expiry lists the stale uploads, then removes each under its lock: one a PATCH resumed
    in between (its expiry moved on) is kept."""
    store, _, _ = parts
    r = receiver(parts, expiry=timedelta(seconds=0))
    data = os.urandom(1000)
    upload, _ = r.create(CAMDEN, len(data), metadata(data))
    later = utc_now() + timedelta(seconds=1)
    listed = uploads_of(store).expired_uploads(later)  # what expiry saw...
    asyncio.run(r.append(CAMDEN, upload.upload_id, 0, None, body(data[:10])))  # ...then a PATCH resumed it
    uploads_of(store).set_offset(upload.upload_id, 10, later + timedelta(hours=1))
    monkeypatch.setattr(r.uploads, "expired_uploads", lambda now: listed)
    assert asyncio.run(r.expire(later)) == 0
    assert uploads_of(store).upload(upload.upload_id).offset == 10 and r.part(upload.upload_id).exists()


@pytest.mark.parametrize("size", [1000, 3 * (4 << 20) + 5])  # within one piece and across pieces
def test_disk_full_is_507_with_retry_after(parts, monkeypatch, size):
    from fleet.directio import PartWriter
    from fleet.errors import InsufficientStorage

    data = os.urandom(size)
    r = receiver(parts)
    upload, _ = r.create(CAMDEN, len(data), metadata(data))

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PartWriter, "write", full)
    with pytest.raises(InsufficientStorage) as info:
        asyncio.run(
            r.append(CAMDEN, upload.upload_id, 0, None, body(*(data[i : i + 65536] for i in range(0, size, 65536))))
        )
    assert info.value.status_code == 507  # Retry-After comes from [limits] (tests/central/core/test_error_shape.py)
    assert r.part(upload.upload_id).stat().st_size == 0


def test_a_body_in_thousands_of_tiny_pieces_is_stored_exactly(parts):
    data = os.urandom(5000)
    r = receiver(parts)
    upload, _ = r.create(CAMDEN, len(data), metadata(data))
    done = asyncio.run(
        r.append(CAMDEN, upload.upload_id, 0, sha256_checksum(data), body(*(data[i : i + 1] for i in range(len(data)))))
    )
    assert done.verified


# -- a whole clip in its creation request ---------------------------------------------------


def _writes(store, monkeypatch) -> list[bool]:
    """The durability of every transaction the store opens from here on."""
    seen: list[bool] = []
    real = store.writer.write

    def write(*, durable: bool = True):
        seen.append(durable)
        return real(durable=durable)

    monkeypatch.setattr(store.writer, "write", write)
    return seen


def test_a_whole_clip_in_its_creation_is_one_durable_commit(parts, monkeypatch):
    store, blobs, _ = parts
    data = os.urandom(70_000)
    r = receiver(parts)
    commits = _writes(store, monkeypatch)
    meta = metadata(data)
    upload, created = asyncio.run(
        r.create_with_body(
            CAMDEN, len(data), meta, sha256_checksum(data), body(data[:30_000], data[30_000:]), whole=True
        )
    )
    assert created and upload.verified and upload.offset == len(data)
    assert commits == [True]
    assert uploads_of(store).upload(upload.upload_id) == upload
    assert ClipRecords(store.writer).clip(upload.clip_id).state == "verified"
    assert b"".join(blobs.read(upload.clip_id)) == data
    again, created = asyncio.run(r.create_with_body(CAMDEN, len(data), meta, None, body(data), whole=True))
    assert not created and again.upload_id == upload.upload_id and again.verified


@pytest.mark.parametrize("failure", ["checksum", "sha256", "blob store"])
def test_a_whole_clip_that_fails_in_its_creation_leaves_nothing_behind(parts, monkeypatch, failure):
    store, blobs, uploads = parts
    data = os.urandom(10_000)
    r = receiver(parts)
    meta = metadata(data if failure != "sha256" else b"other bytes")
    checksum = sha256_checksum(b"other" if failure == "checksum" else data)
    if failure == "blob store":
        monkeypatch.setattr(blobs, "put", lambda *a: (_ for _ in ()).throw(OSError(5, "blob store unavailable")))
    with pytest.raises(OSError if failure == "blob store" else ChecksumMismatch):
        asyncio.run(r.create_with_body(CAMDEN, len(data), meta, checksum, body(data), whole=True))
    assert not list(uploads.glob("*.part"))
    assert (
        uploads_of(store).receiving_uploads() == []
        and ClipRecords(store.writer).clip(str(decode_upload_metadata(meta).clip_id)) is None
    )


# Without a chunk checksum what arrived counts; with one, a cut-short chunk counts nothing.
@pytest.mark.parametrize("with_checksum", [False, True])
def test_a_whole_clip_cut_short_in_its_creation_is_an_upload_to_resume(parts, with_checksum):
    store, _, _ = parts
    data = os.urandom(10_000)
    r = receiver(parts)
    upload, created = asyncio.run(
        r.create_with_body(
            CAMDEN,
            len(data),
            metadata(data),
            sha256_checksum(data) if with_checksum else None,
            body(data[:4000], fail_after=True),
            whole=True,
        )
    )
    kept = 0 if with_checksum else 4000
    assert created and not upload.verified and upload.offset == kept
    assert uploads_of(store).upload(upload.upload_id).offset == kept and r.part(upload.upload_id).stat().st_size == kept
    done = asyncio.run(r.append(CAMDEN, upload.upload_id, kept, None, body(data[kept:])))
    assert done.verified


def test_a_held_clip_and_one_streamed_are_stored_alike_and_counted(parts, monkeypatch):
    """Either side of HELD_WHOLE_BYTES: one durable commit, the blob, and the same counts."""
    store, blobs, _ = parts
    r = receiver(parts)
    commits = _writes(store, monkeypatch)
    held, streamed = os.urandom(HELD_WHOLE_BYTES), os.urandom(HELD_WHOLE_BYTES + 1)
    for data in (held, streamed):
        upload, created = asyncio.run(
            r.create_with_body(CAMDEN, len(data), metadata(data), sha256_checksum(data), body(data), whole=True)
        )
        assert created and upload.verified and b"".join(blobs.read(upload.clip_id)) == data
    assert commits == [True, True]
    assert r.metrics.uploads_verified._value.get() == 2
    assert r.metrics.upload_verified_bytes._value.get() == len(held) + len(streamed)
    assert r.metrics.upload_received_bytes._value.get() == len(held) + len(streamed)


@pytest.mark.parametrize("failure", ["chunk", "file"])
def test_a_held_clip_refused_is_counted_as_its_kind_of_refusal(parts, failure):
    data = os.urandom(20_000)
    r = receiver(parts)
    meta = metadata(data if failure == "chunk" else b"other bytes")
    with pytest.raises(ChecksumMismatch):
        asyncio.run(
            r.create_with_body(
                CAMDEN, len(data), meta, sha256_checksum(b"x" if failure == "chunk" else data), body(data), whole=True
            )
        )
    assert r.metrics.verification_failures.labels(failure)._value.get() == 1
    assert r.metrics.uploads_verified._value.get() == 0


def test_a_held_clip_whose_upload_was_made_before_goes_into_that_upload(parts):
    """A creation without bytes first (offset 0), then the whole clip in a second creation: held,
    found to have an upload, and appended to it as the bytes of a PATCH would be."""
    store, blobs, _ = parts
    data = os.urandom(30_000)
    r = receiver(parts)
    meta = metadata(data)
    first, created = asyncio.run(r.create_with_body(CAMDEN, len(data), meta, None, None))
    assert created and first.offset == 0
    again, created = asyncio.run(
        r.create_with_body(CAMDEN, len(data), meta, sha256_checksum(data), body(data[:9000], data[9000:]), whole=True)
    )
    assert not created and again.upload_id == first.upload_id and again.verified
    assert b"".join(blobs.read(again.clip_id)) == data and uploads_of(store).receiving_uploads() == []


def test_a_second_creation_of_a_clip_waits_for_the_first_then_finds_its_upload(parts):
    data = os.urandom(10_000)
    r = receiver(parts)
    meta = metadata(data)

    async def scenario():
        gate = asyncio.Event()
        first = asyncio.create_task(
            r.create_with_body(CAMDEN, len(data), meta, None, body(data[:100], data[100:], gate=gate), whole=True)
        )
        while not r._creating:
            await asyncio.sleep(0)
        second = asyncio.create_task(r.create_with_body(CAMDEN, len(data), meta, None, body(data), whole=True))
        third = asyncio.create_task(r.create_with_body(CAMDEN, len(data), meta, None, None))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not second.done() and not third.done()  # their turn comes after the first's commit
        gate.set()
        return await first, await second, await third

    (upload, created), (again, created_again), (third, created_third) = asyncio.run(scenario())
    assert created and upload.verified and not created_again and not created_third
    assert again.upload_id == third.upload_id == upload.upload_id and again.verified
    assert not r._creating and not r._wanting


def test_recovery_removes_part_files_no_upload_is_receiving(parts):
    data = os.urandom(1000)
    r = receiver(parts)
    kept, _ = r.create(CAMDEN, len(data), metadata(data))
    orphan = r.part("0" * 32)
    orphan.write_bytes(b"a whole clip's creation that died before its commit")
    asyncio.run(receiver(parts).recover())
    assert not orphan.exists() and r.part(kept.upload_id).exists()


def test_a_patch_refused_midway_leaves_the_running_hash_as_it_was(parts):
    """The bytes of a PATCH that counts nothing (here: more than Upload-Length allows, with no
    Upload-Checksum) never reach the whole-file hash kept for the next one."""
    from fleet.errors import PayloadTooLarge

    data = os.urandom(10 << 20)  # past the pieces hashed on the way (FLUSH_BYTES)
    r = receiver(parts)
    upload, _ = r.create(CAMDEN, len(data), metadata(data))
    assert asyncio.run(r.append(CAMDEN, upload.upload_id, 0, None, body(data[: 1 << 20]))).offset == 1 << 20
    with pytest.raises(PayloadTooLarge):
        asyncio.run(r.append(CAMDEN, upload.upload_id, 1 << 20, None, body(data[1 << 20 :], b"too much")))
    assert asyncio.run(r.append(CAMDEN, upload.upload_id, 1 << 20, None, body(data[1 << 20 :]))).verified


HACKNEY = Principal("station:hackney", station_id="hackney")


@pytest.mark.parametrize("size", [HELD_WHOLE_BYTES, HELD_WHOLE_BYTES + 1], ids=["held", "streamed"])
def test_a_creation_cancelled_while_its_clip_is_stored_keeps_its_turn_until_the_thread_is_done(
    parts, monkeypatch, size
):
    """A creation cancelled (its client or the server gone) while a worker thread stores its clip:
    another station's creation of the same clip id waits for that thread, then is refused;
    the blob and the record both are the first clip's."""
    store, blobs, _ = parts
    clip = str(uuid.uuid4())
    good, other = os.urandom(size), os.urandom(size)
    r = receiver(parts)
    storing, go_on = threading.Event(), threading.Event()
    real_put = blobs.put

    def put(source, key, sha256=None):
        if sha256 == hashlib.sha256(good).hexdigest():
            storing.set()
            go_on.wait(60)
        real_put(source, key, sha256)

    monkeypatch.setattr(blobs, "put", put)

    async def scenario():
        first = asyncio.create_task(
            r.create_with_body(CAMDEN, size, metadata(good, clip), None, body(good), whole=True)
        )
        deadline = time.monotonic() + 30
        while not storing.is_set():
            assert time.monotonic() < deadline, "the first creation never reached the blob store"
            await asyncio.sleep(0.001)
        first.cancel()
        second = asyncio.create_task(
            r.create_with_body(HACKNEY, size, metadata(other, clip), None, body(other), whole=True)
        )
        while not (second.done() or r._wanting.get(clip) == 2):  # stored beside it, or waiting its turn
            assert time.monotonic() < deadline, "the second creation neither ran nor waited"
            await asyncio.sleep(0.001)
        go_on.set()
        return await asyncio.gather(first, second, return_exceptions=True)

    first, second = asyncio.run(scenario())
    assert isinstance(first, asyncio.CancelledError) and isinstance(second, Conflict)
    assert ClipRecords(store.writer).clip(clip).sha256 == hashlib.sha256(good).hexdigest()
    assert b"".join(blobs.read(clip)) == good
    assert not list(r.dir.glob("*.part"))


def test_a_patch_cancelled_while_its_bytes_are_synced_keeps_the_part_file_open_until_they_are(parts, monkeypatch):
    """The fsync before an offset is counted runs on a worker thread: a PATCH cancelled meanwhile
    closed the part file under it, and the thread synced a descriptor closed, or reused, then
    counted the bytes."""
    data = os.urandom(200_000)
    r = receiver(parts)
    upload, _ = r.create(CAMDEN, len(data), metadata(data))
    part = str(r.part(upload.upload_id))
    syncing, go_on = threading.Event(), threading.Event()
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd):
        if threading.current_thread() is not threading.main_thread() and not syncing.is_set():
            syncing.set()
            go_on.wait(60)
            try:
                synced.append(os.readlink(f"/proc/self/fd/{fd}"))
            except FileNotFoundError:
                synced.append("closed")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)

    async def scenario():
        patching = asyncio.create_task(r.append(CAMDEN, upload.upload_id, 0, None, body(data[:1000])))
        deadline = time.monotonic() + 30
        while not syncing.is_set():
            assert time.monotonic() < deadline, "the PATCH never synced its bytes"
            await asyncio.sleep(0.001)
        patching.cancel()
        for _ in range(20):  # the cancellation's turn on the loop
            await asyncio.sleep(0)
        go_on.set()
        return await asyncio.gather(patching, return_exceptions=True)

    (outcome,) = asyncio.run(scenario())
    assert isinstance(outcome, asyncio.CancelledError)
    assert synced == [part]
    assert uploads_of(parts[0]).upload(upload.upload_id).offset == 1000


def test_a_held_clip_in_tiny_pieces_is_held_in_about_its_own_size(parts, monkeypatch):
    """A client may send a small clip's body a couple of bytes at a time (each a piece): held as a
    list of them, 256 KiB took 5.7 MB, and the upload lane admits hundreds of such requests at once."""
    data = os.urandom(64 << 10)
    r = receiver(parts)
    held: list[int] = []
    real = r._store_held

    def store_held(*args):
        pieces = args[-1]
        held.append(sys.getsizeof(pieces) + sum(sys.getsizeof(piece) for piece in pieces))
        return real(*args)

    monkeypatch.setattr(r, "_store_held", store_held)
    pieces = [data[i : i + 2] for i in range(0, len(data), 2)]
    upload, _ = asyncio.run(r.create_with_body(CAMDEN, len(data), metadata(data), None, body(*pieces), whole=True))
    assert upload.verified and len(held) == 1
    assert held[0] < 2 * len(data)


def test_a_retried_final_patch_waits_for_a_cancelled_one_still_storing_the_clip(parts, monkeypatch):
    """The last PATCH of an upload cancelled while a worker thread moves its part file into the
    blob store: a retry meanwhile is told 423, never cuts the part file back to the counted offset
    under the move (which stored a clip cut short, then said verified)."""
    store, blobs, _ = parts
    data = os.urandom(200_000)
    r = receiver(parts)
    upload, _ = r.create(CAMDEN, len(data), metadata(data))
    assert asyncio.run(r.append(CAMDEN, upload.upload_id, 0, None, body(data[:100_000]))).offset == 100_000
    storing, go_on = threading.Event(), threading.Event()
    real_put = blobs.put

    def put(source, key, sha256=None):
        if not storing.is_set():  # the first PATCH's only
            storing.set()
            go_on.wait(60)
        real_put(source, key, sha256)

    monkeypatch.setattr(blobs, "put", put)

    async def scenario():
        last = asyncio.create_task(r.append(CAMDEN, upload.upload_id, 100_000, None, body(data[100_000:])))
        deadline = time.monotonic() + 30
        while not storing.is_set():
            assert time.monotonic() < deadline, "the last PATCH never reached the blob store"
            await asyncio.sleep(0.001)
        last.cancel()
        try:
            with pytest.raises(Locked):
                await r.append(CAMDEN, upload.upload_id, 100_000, None, body(data[100_000:]))
        finally:
            go_on.set()
        return await asyncio.gather(last, return_exceptions=True)

    (outcome,) = asyncio.run(scenario())
    assert isinstance(outcome, asyncio.CancelledError)
    assert uploads_of(store).upload(upload.upload_id).verified and b"".join(blobs.read(upload.clip_id)) == data
