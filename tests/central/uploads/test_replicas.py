"""Two central processes sharing one database and one uploads folder never write one upload at once."""

import asyncio
import hashlib
import os
import time
import uuid
from pathlib import Path

import pytest

from central.evidence.clip_records import ClipRecords
from central.uploads.receiver import HELD_WHOLE_BYTES
from fleet.errors import Conflict, Locked, OffsetMismatch
from tests.central.conftest import metadata
from tests.central.uploads.test_receiver import CAMDEN, HACKNEY, body, parts, receiver  # noqa: F401 -- parts is a fixture


def locked(path) -> bool:
    """Whether a process holds a flock on ``path`` (Linux lists every lock in /proc/locks)."""
    try:
        inode = os.stat(path).st_ino
    except FileNotFoundError:
        return False
    locks = Path("/proc/locks").read_text().splitlines()
    return any(line.split()[5].endswith(f":{inode}") for line in locks if "FLOCK" in line)


def test_a_patch_on_one_replica_locks_the_upload_for_the_others(parts):  # noqa: F811
    data = os.urandom(200_000)
    one, other = receiver(parts), receiver(parts)  # two processes' receivers: separate asyncio locks
    upload, _ = one.create(CAMDEN, len(data), metadata(data))

    async def scenario():
        gate = asyncio.Event()
        first = asyncio.create_task(one.append(CAMDEN, upload.upload_id, 0, None, body(data[:1000], gate=gate)))
        deadline = time.monotonic() + 30
        while not locked(one.part(upload.upload_id)):  # the first PATCH locks it on a worker thread
            assert time.monotonic() < deadline, "the first PATCH never locked its part file"
            await asyncio.sleep(0.001)
        try:
            for attempt in (
                other.append(CAMDEN, upload.upload_id, 0, None, body(data[:1000])),
                other.terminate(CAMDEN, upload.upload_id),
            ):
                try:
                    await attempt
                except Locked:
                    continue
                raise AssertionError("another replica wrote or removed an upload being written")
            await other.recover()  # a replica starting meanwhile leaves the upload alone
        finally:
            gate.set()
        return await first

    assert asyncio.run(scenario()).offset == 1000
    assert one.part(upload.upload_id).stat().st_size == 1000
    # Once the first PATCH is over, the other replica resumes it.
    done = asyncio.run(other.append(CAMDEN, upload.upload_id, 1000, None, body(data[1000:])))
    assert done.verified


def test_a_stale_patch_on_another_replica_never_overwrites_a_verified_blob(parts):  # noqa: F811
    """A station's retried final PATCH reaches a second replica, which reads the upload and
    rebuilds its hash while the first replica finishes it: the second is refused under the
    part's lock (the row changed), and a verified blob is never replaced."""
    _store, blobs, _ = parts
    data = os.urandom(200_000)
    one, other = receiver(parts), receiver(parts)
    upload, _ = one.create(CAMDEN, len(data), metadata(data))
    half = 100_000
    assert asyncio.run(one.append(CAMDEN, upload.upload_id, 0, None, body(data[:half]))).offset == half

    async def scenario():
        gate = asyncio.Event()
        rebuilding = asyncio.Event()
        original = other._whole_hash

        async def slow_rebuild(u):  # the part file's prefix re-read (a GiB: about a second)
            digest = await original(u)
            rebuilding.set()
            await gate.wait()
            return digest

        other._whole_hash = slow_rebuild  # type: ignore[method-assign]
        retry = asyncio.create_task(other.append(CAMDEN, upload.upload_id, half, None, body(data[half:])))
        await rebuilding.wait()
        first = await one.append(CAMDEN, upload.upload_id, half, None, body(data[half:]))
        assert first.verified
        gate.set()
        try:
            await retry
        except Exception as exc:  # refusing the stale PATCH is the right answer
            return exc
        return None

    asyncio.run(scenario())
    stored = b"".join(blobs.read(str(upload.clip_id)))
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest(), (
        f"the verified blob was overwritten: first {half} bytes zero: {stored[:half] == bytes(half)}"
    )


def test_replicas_whose_uploads_folders_are_not_shared_restart_an_upload_never_fail_it(tmp_path):
    """The filesystem backend with each replica's own data_dir (not the deployment docs/deployment.md
    asks for): an upload resumed through the replica that does not hold its bytes restarts at 0
    (409, HEAD says 0), wherever its next PATCHes land, and is verified in the end; never a 5xx,
    never a 410 that would send the station to create an upload it already has."""
    from central.uploads.blobstore import FilesystemBlobStore
    from tests.central.conftest import central_store

    stores = [central_store(tmp_path / "central") for _ in range(2)]
    blobs = FilesystemBlobStore(tmp_path / "blobs")
    one, other = (receiver((store, blobs, tmp_path / f"replica-{n}" / "uploads")) for n, store in enumerate(stores))
    try:
        data = os.urandom(300_000)
        upload, _ = one.create(CAMDEN, len(data), metadata(data))
        assert asyncio.run(one.append(CAMDEN, upload.upload_id, 0, None, body(data[:100_000]))).offset == 100_000
        with pytest.raises(OffsetMismatch, match="restarted at offset 0"):
            asyncio.run(other.append(CAMDEN, upload.upload_id, 100_000, None, body(data[100_000:200_000])))
        assert one.get(upload.upload_id).offset == 0
        # The station starts again from 0; its PATCHes land on the other replica now.
        for at in range(0, 200_000, 100_000):
            assert asyncio.run(other.append(CAMDEN, upload.upload_id, at, None, body(data[at : at + 100_000])))
        # And back on the first, whose file holds fewer bytes than counted: a restart again, not a 410.
        with pytest.raises(OffsetMismatch, match="restarted at offset 0"):
            asyncio.run(one.append(CAMDEN, upload.upload_id, 200_000, None, body(data[200_000:])))
        for at in range(0, len(data), 100_000):
            done = asyncio.run(one.append(CAMDEN, upload.upload_id, at, None, body(data[at : at + 100_000])))
        assert done.verified and b"".join(blobs.read(upload.clip_id)) == data
    finally:
        for r in (one, other):
            r.close()
        for store in stores:
            store.close()


def _created_at_once_on_two_replicas(parts, size: int):  # noqa: F811
    """Camden's creation of a clip on one replica, and Hackney's of the same clip id with other
    bytes on another, run between the first one's checks and its blob's rename."""
    _store, blobs, _ = parts
    clip = str(uuid.uuid4())
    camden, hackney = os.urandom(size), os.urandom(size)
    one, other = receiver(parts), receiver(parts)
    real_put = blobs.put

    async def scenario():
        loop = asyncio.get_running_loop()

        def put(source, key, sha256=None):
            if sha256 == hashlib.sha256(camden).hexdigest():
                asyncio.run_coroutine_threadsafe(
                    other.create_with_body(HACKNEY, size, metadata(hackney, clip), None, body(hackney), whole=True),
                    loop,
                ).result()
            real_put(source, key, sha256)

        blobs.put = put
        try:
            return await one.create_with_body(CAMDEN, size, metadata(camden, clip), None, body(camden), whole=True)
        finally:
            blobs.put = real_put

    return clip, scenario


@pytest.mark.parametrize("size", [HELD_WHOLE_BYTES, HELD_WHOLE_BYTES + 1], ids=["held", "streamed"])
def test_a_clip_created_at_once_on_two_replicas_keeps_the_bytes_stored_first(parts, size, caplog):  # noqa: F811
    """The second replica's copy is refused (409) and never replaces the first's blob: the blob
    matches its record, and nothing of the refused copy is left."""
    store, blobs, uploads = parts
    clip, scenario = _created_at_once_on_two_replicas(parts, size)
    with pytest.raises(Conflict):
        asyncio.run(scenario())
    recorded = ClipRecords(store.writer).clip(clip)
    assert recorded.state == "verified"
    assert hashlib.sha256(b"".join(blobs.read(clip))).hexdigest() == recorded.sha256
    assert not list(uploads.glob("*.part"))
    assert any(r.levelname == "ERROR" and "other bytes" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("size", [HELD_WHOLE_BYTES, HELD_WHOLE_BYTES + 1], ids=["held", "streamed"])
def test_a_part_file_removed_by_a_replica_starting_up_as_it_was_made_is_refused_for_a_retry(parts, monkeypatch, size):  # noqa: F811
    """A whole clip's part file has no row, and is locked only once made: a replica's start-up
    that removes it in between leaves the creation writing a file that is gone (423, not a 500)."""
    from central.uploads import receiver as receiving

    data = os.urandom(size)
    one, other = receiver(parts), receiver(parts)
    real_lock = receiving._lock_part
    removed: list[bool] = []

    def lock_part(fd, upload_id):
        if not removed:
            removed.append(True)
            asyncio.run(other.recover())  # on this worker thread, as another process would
        real_lock(fd, upload_id)

    monkeypatch.setattr(receiving, "_lock_part", lock_part)
    with pytest.raises(Locked, match="removed"):
        asyncio.run(one.create_with_body(CAMDEN, size, metadata(data), None, body(data), whole=True))
    assert removed and not list(one.dir.glob("*.part"))
    monkeypatch.undo()
    upload, created = asyncio.run(one.create_with_body(CAMDEN, size, metadata(data), None, body(data), whole=True))
    assert created and upload.verified


@pytest.mark.parametrize("counted", [0, 100_000], ids=["nothing counted", "a chunk counted"])
def test_a_part_linked_into_the_blob_store_by_a_replica_that_died_is_never_cut(parts, counted):  # noqa: F811
    """The filesystem blob store links a finished part into place, then removes the part's name: a
    replica killed in between leaves one file under both names. The station's retried PATCH on
    another replica sharing the uploads folder must not cut the part back to the counted offset
    (the blob with it): the clip is recorded from its blob, and the part's name goes."""
    _store, blobs, _uploads = parts
    data = os.urandom(200_000)
    one, other = receiver(parts), receiver(parts)
    upload, _ = one.create(CAMDEN, len(data), metadata(data))
    if counted:
        asyncio.run(one.append(CAMDEN, upload.upload_id, 0, None, body(data[:counted])))
    part = one.part(upload.upload_id)
    with open(part, "r+b") as f:  # the last PATCH's bytes, fsynced, linked as the blob: then the crash
        f.seek(counted)
        f.write(data[counted:])
    target = blobs._path(upload.clip_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(part, target)
    sizes_while_read: list[int] = []

    async def retried():
        sizes_while_read.append(target.stat().st_size)
        yield data[counted:]

    done = asyncio.run(other.append(CAMDEN, upload.upload_id, counted, None, retried()))
    assert done.verified and b"".join(blobs.read(upload.clip_id)) == data
    assert all(size == len(data) for size in sizes_while_read)  # the blob was never cut
    assert not part.exists() and target.stat().st_nlink == 1
