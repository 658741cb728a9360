"""Uploads staged in the S3 bucket (moto's server): counted only once stored there, resumed
through any replica, completed once, checked, swept when abandoned."""

from __future__ import annotations

import asyncio
import hashlib
import os
from datetime import timedelta

import pytest
from tenacity import wait_none

from central.uploads.blobstore_s3 import S3BlobStore
from central.uploads.receiver import UploadReceiver
from central.uploads.s3parts import TAILS, StoreRetry, multipart_etag
from fleet.clock import to_iso, utc_now
from fleet.errors import BlobStoreUnavailable, ChecksumMismatch, Conflict, OffsetMismatch
from tests.central.conftest import central_store, metadata
from tests.central.uploads.test_blobstore_s3 import network_down, on_request, unfinished
from tests.central.uploads.test_receiver import CAMDEN, body, sha256_checksum
from tests.support.s3server import blob_settings

MiB = 1 << 20
PART = 5 * MiB  # the test server's part size (s3_settings), S3's smallest


@pytest.fixture
def bucket():
    store = S3BlobStore(blob_settings())
    store.check()
    return store


@pytest.fixture
def replicas(tmp_path, bucket):
    """Two central processes' receivers: one database and one bucket, each its own data folder."""
    stores = [central_store(tmp_path / "central") for _ in range(2)]
    made = [make_receiver(store, bucket, tmp_path / f"replica-{n}" / "uploads") for n, store in enumerate(stores)]
    yield made
    for receiver in made:
        receiver.close()
    for store in stores:
        store.close()


def make_receiver(store, bucket: S3BlobStore, uploads_dir, **kw) -> UploadReceiver:
    receiver = UploadReceiver(
        store, bucket, uploads_dir, max_upload_bytes=1 << 30, expiry=kw.pop("expiry", timedelta(hours=1)), **kw
    )
    assert receiver.staged is not None
    receiver.staged.parts.retry = StoreRetry(wait=wait_none())
    return receiver


def send(receiver: UploadReceiver, upload_id: str, offset: int, data: bytes, **kw):
    return asyncio.run(receiver.append(CAMDEN, upload_id, offset, sha256_checksum(data), body(data), **kw))


def stored(bucket: S3BlobStore, clip_id: str) -> bytes:
    return b"".join(bucket.read(clip_id))


def tails(bucket: S3BlobStore) -> list[str]:
    listed = bucket.client.list_objects_v2(Bucket=bucket.bucket, Prefix=TAILS).get("Contents", [])
    return [o["Key"] for o in listed]


def pieces(data: bytes, size: int):
    return [data[at : at + size] for at in range(0, len(data), size)]


def test_an_upload_begun_on_one_replica_is_resumed_and_finished_through_the_other(replicas, bucket):
    one, other = replicas
    data = os.urandom(2 * PART + 1000)  # two whole parts and a small last one
    upload, _ = one.create(CAMDEN, len(data), metadata(data))
    assert upload.staged and upload.part_bytes == PART
    first = send(one, upload.upload_id, 0, data[: 3 * MiB])  # under a part: all of it a tail object
    assert first.offset == 3 * MiB and first.parts_md5 == "" and len(tails(bucket)) == 1
    second = send(other, upload.upload_id, 3 * MiB, data[3 * MiB : 7 * MiB])  # the tail and a part's worth
    assert second.offset == 7 * MiB and second.part_md5s == [hashlib.md5(data[:PART]).hexdigest()]
    assert tails(bucket) == [second.tail]  # the tail before it is gone
    done = send(one, upload.upload_id, 7 * MiB, data[7 * MiB :])
    assert done.verified and stored(bucket, upload.clip_id) == data
    head = bucket.client.head_object(Bucket=bucket.bucket, Key=upload.clip_id)
    assert head["ETag"] == multipart_etag([hashlib.md5(p).hexdigest() for p in pieces(data, PART)])
    assert head["ETag"].endswith('-3"') and head["ContentLength"] == len(data)
    assert unfinished(bucket) == [] and tails(bucket) == []
    for receiver in replicas:  # nothing of it was ever in a replica's own folder
        assert list(receiver.dir.iterdir()) == []


def test_chunks_smaller_than_a_part_add_up_to_parts(replicas, bucket):
    one, other = replicas
    data = os.urandom(12 * MiB + 5)
    upload, _ = one.create(CAMDEN, len(data), metadata(data))
    offset = 0
    for n, chunk in enumerate(pieces(data, MiB + 1)):  # never aligned with the parts
        after = send((one, other)[n % 2], upload.upload_id, offset, chunk)
        offset += len(chunk)
        assert after.offset == offset
        assert after.verified or (len(after.part_md5s) == offset // PART and after.tail_bytes == offset % PART)
    assert after.verified and stored(bucket, upload.clip_id) == data
    assert bucket.client.head_object(Bucket=bucket.bucket, Key=upload.clip_id)["ETag"].endswith('-3"')
    assert tails(bucket) == [] and unfinished(bucket) == []


def test_a_clip_of_exactly_whole_parts_and_one_in_a_single_patch(replicas, bucket):
    one, _ = replicas
    for data in (os.urandom(2 * PART), os.urandom(1000)):
        upload, _ = one.create(CAMDEN, len(data), metadata(data))
        assert send(one, upload.upload_id, 0, data).verified
        assert stored(bucket, upload.clip_id) == data
    assert unfinished(bucket) == [] and tails(bucket) == []


def test_an_empty_final_patch_completes_an_upload_whose_bytes_are_all_counted(replicas, bucket):
    """The bucket failed as the clip was completed: every part stays counted, and the station's retry
    (an empty PATCH at the end, through any replica) completes it."""
    one, other = replicas
    data = os.urandom(PART + 10)
    upload, _ = one.create(CAMDEN, len(data), metadata(data))
    with on_request(bucket, "CompleteMultipartUpload", network_down), pytest.raises(BlobStoreUnavailable):
        send(one, upload.upload_id, 0, data)
    counted = one.get(upload.upload_id)
    assert counted.offset == len(data) and not counted.verified and len(counted.part_md5s) == 2
    assert asyncio.run(other.append(CAMDEN, upload.upload_id, len(data), None, body())).verified
    assert stored(bucket, upload.clip_id) == data


def test_a_store_failure_mid_patch_counts_nothing_and_a_short_one_is_retried_unseen(replicas, bucket):
    one, _ = replicas
    data = os.urandom(PART + 10)
    upload, _ = one.create(CAMDEN, len(data), metadata(data))
    failures: list[int] = []

    def fail_twice(params):
        if len(failures) < 2:
            failures.append(1)
            network_down(params)

    with on_request(bucket, "UploadPart", fail_twice):  # StoreRetry: three attempts
        assert send(one, upload.upload_id, 0, data[:PART]).offset == PART
    with on_request(bucket, "PutObject", network_down), pytest.raises(BlobStoreUnavailable):
        send(one, upload.upload_id, PART, data[PART : PART + 5])
    assert one.get(upload.upload_id).offset == PART
    assert send(one, upload.upload_id, PART, data[PART:]).verified
    assert stored(bucket, upload.clip_id) == data


def test_a_body_cut_short_keeps_what_arrived_without_a_checksum_and_nothing_with_one(replicas, bucket):
    one, other = replicas
    data = os.urandom(PART + 3 * MiB)
    upload, _ = one.create(CAMDEN, len(data), metadata(data))
    checked = asyncio.run(
        one.append(CAMDEN, upload.upload_id, 0, sha256_checksum(data[: 2 * MiB]), body(data[:MiB], fail_after=True))
    )
    assert checked.offset == 0
    kept = asyncio.run(
        one.append(CAMDEN, upload.upload_id, 0, None, body(data[:PART], data[PART:][:MiB], fail_after=True))
    )
    assert kept.offset == PART + MiB and len(kept.part_md5s) == 1 and kept.tail_bytes == MiB
    assert send(other, upload.upload_id, kept.offset, data[kept.offset :]).verified
    assert stored(bucket, upload.clip_id) == data


def test_a_chunk_whose_checksum_does_not_match_counts_nothing(replicas, bucket):
    one, _ = replicas
    data = os.urandom(PART + 100)
    upload, _ = one.create(CAMDEN, len(data), metadata(data))
    with pytest.raises(ChecksumMismatch, match="Upload-Checksum"):
        asyncio.run(one.append(CAMDEN, upload.upload_id, 0, sha256_checksum(b"other"), body(data[: PART + 50])))
    assert one.get(upload.upload_id).offset == 0 and tails(bucket) == []
    assert send(one, upload.upload_id, 0, data).verified and stored(bucket, upload.clip_id) == data


def test_two_replicas_writing_one_upload_at_once_count_it_once(replicas, bucket):
    """A station's retry reached a second replica while the first still received: the first to
    commit wins, the other is told to ask the offset again, and the bytes counted are the winner's."""
    one, other = replicas
    data = os.urandom(PART + 2 * MiB)
    upload, _ = one.create(CAMDEN, len(data), metadata(data))

    async def scenario():
        gate = asyncio.Event()
        slow = asyncio.create_task(
            one.append(CAMDEN, upload.upload_id, 0, None, body(data[: 3 * MiB], data[3 * MiB : PART + MiB], gate=gate))
        )
        await asyncio.sleep(0)
        fast = await other.append(CAMDEN, upload.upload_id, 0, None, body(data[: PART + MiB]))
        gate.set()
        with pytest.raises(OffsetMismatch, match="another central process"):
            await slow
        return fast

    assert asyncio.run(scenario()).offset == PART + MiB
    assert len(tails(bucket)) == 1  # the loser's tail was not kept
    assert send(one, upload.upload_id, PART + MiB, data[PART + MiB :]).verified
    assert stored(bucket, upload.clip_id) == data


# -- the whole clip's SHA-256 --------------------------------------------------------------------


def test_a_wrong_clip_received_here_is_refused_before_it_is_ever_visible(replicas, bucket):
    one, _ = replicas
    data = os.urandom(PART + 10)
    upload, _ = one.create(CAMDEN, len(data), metadata(data))
    completes: list[dict] = []
    wrong = bytes([data[0] ^ 1]) + data[1:]
    with (
        on_request(bucket, "CompleteMultipartUpload", completes.append),
        pytest.raises(ChecksumMismatch, match="reset"),
    ):
        send(one, upload.upload_id, 0, wrong)
    assert completes == [] and not bucket.exists(upload.clip_id)
    restarted = one.get(upload.upload_id)
    assert restarted.offset == 0 and restarted.multipart_id != upload.multipart_id
    assert unfinished(bucket) == [upload.clip_id] and tails(bucket) == []  # the new multipart upload only
    assert send(one, upload.upload_id, 0, data).verified and stored(bucket, upload.clip_id) == data


def test_a_wrong_clip_resumed_here_is_hashed_once_stored_and_not_kept(replicas, bucket):
    one, other = replicas
    data = os.urandom(PART + 10)
    upload, _ = one.create(CAMDEN, len(data), metadata(data))
    send(one, upload.upload_id, 0, bytes([data[0] ^ 1]) + data[1:PART])
    with pytest.raises(ChecksumMismatch, match="reset"):
        send(other, upload.upload_id, PART, data[PART:])  # other never saw the first bytes
    assert not bucket.exists(upload.clip_id) and one.get(upload.upload_id).offset == 0
    assert send(other, upload.upload_id, 0, data).verified and stored(bucket, upload.clip_id) == data


# -- a process that dies -------------------------------------------------------------------------


class Died(BaseException):
    """The process died here (nothing after this point ran)."""


def die(*_args, **_kw):
    raise Died


def test_a_replica_that_dies_after_acknowledging_loses_no_acknowledged_byte(tmp_path, bucket):
    """What a PATCH was answered for is in the bucket and the database, nothing of it in the
    process: a new one (another replica, or the same restarted) goes on from there."""
    data = os.urandom(2 * PART + 10)
    store = central_store(tmp_path / "central")
    first = make_receiver(store, bucket, tmp_path / "first")
    upload, _ = first.create(CAMDEN, len(data), metadata(data))
    acknowledged = send(first, upload.upload_id, 0, data[: PART + MiB]).offset
    first.staged.parts.send_part = die  # type: ignore[method-assign]
    with pytest.raises(Died):  # dies in the middle of the next PATCH, its bytes half sent
        send(first, upload.upload_id, acknowledged, data[acknowledged:])
    store.close()  # the process, its memory and its connection gone

    store = central_store(tmp_path / "central")
    second = make_receiver(store, bucket, tmp_path / "second")
    try:
        assert second.get(upload.upload_id).offset == acknowledged
        assert send(second, upload.upload_id, acknowledged, data[acknowledged:]).verified
        assert stored(bucket, upload.clip_id) == data
    finally:
        second.close()
        store.close()


def test_completion_recorded_once_after_a_death_between_the_bucket_and_the_database(replicas, bucket):
    one, other = replicas
    data = os.urandom(PART + 10)
    upload, _ = one.create(CAMDEN, len(data), metadata(data))
    send(one, upload.upload_id, 0, data[:PART])
    one.uploads.mark_verified = die
    with pytest.raises(Died):
        send(one, upload.upload_id, PART, data[PART:])
    assert bucket.exists(upload.clip_id) and unfinished(bucket) == []  # completed, never recorded
    assert not other.get(upload.upload_id).verified
    # The station never heard back: it sends the last chunk again, through the other replica.
    done = send(other, upload.upload_id, PART, data[PART:])
    assert done.verified and stored(bucket, upload.clip_id) == data
    with other.uploads.writer.read() as db:
        recorded = db.execute(
            "SELECT count(*) FROM audit WHERE action = 'upload-verified' AND object_id = ?", [upload.clip_id]
        ).fetchone()[0]
    assert recorded == 1
    assert send(other, upload.upload_id, len(data), b"").verified  # and again: still the same answer


def test_a_clip_completed_by_a_dead_replica_is_recorded_by_the_expiry_job_not_deleted(replicas, bucket):
    one, other = replicas
    data = os.urandom(1000)
    upload, _ = one.create(CAMDEN, len(data), metadata(data))
    one.uploads.mark_verified = die
    with pytest.raises(Died):
        send(one, upload.upload_id, 0, data)
    assert asyncio.run(other.expire(utc_now() + timedelta(hours=2))) == 0
    assert other.get(upload.upload_id).verified and stored(bucket, upload.clip_id) == data


def test_a_multipart_upload_lost_from_the_bucket_restarts_the_upload(replicas, bucket):
    one, other = replicas
    data = os.urandom(PART + 10)
    upload, _ = one.create(CAMDEN, len(data), metadata(data))
    send(one, upload.upload_id, 0, data[:PART])
    bucket.client.abort_multipart_upload(Bucket=bucket.bucket, Key=upload.clip_id, UploadId=upload.multipart_id)
    with pytest.raises(OffsetMismatch, match="restarted at offset 0"):
        send(other, upload.upload_id, PART, data[PART:])
    assert other.get(upload.upload_id).offset == 0
    assert send(other, upload.upload_id, 0, data).verified and stored(bucket, upload.clip_id) == data


def test_completing_never_replaces_a_stored_object(replicas, bucket, tmp_path):
    one, _ = replicas
    data = os.urandom(1000)
    upload, _ = one.create(CAMDEN, len(data), metadata(data))
    bucket.client.put_object(Bucket=bucket.bucket, Key=upload.clip_id, Body=b"something else")
    with pytest.raises(Conflict, match="not replaced"):
        send(one, upload.upload_id, 0, data)
    assert stored(bucket, upload.clip_id) == b"something else" and not one.get(upload.upload_id).verified


# -- ending ---------------------------------------------------------------------------------------


def test_termination_and_expiry_abort_the_multipart_upload_and_delete_its_tail(replicas, bucket):
    one, other = replicas
    data = os.urandom(PART + MiB)
    ended = []
    for _ in range(2):
        upload, _ = one.create(CAMDEN, len(data), metadata(data))
        send(one, upload.upload_id, 0, data[: PART + 10])
        ended.append(upload)
    assert len(unfinished(bucket)) == 2 and len(tails(bucket)) == 2
    asyncio.run(other.terminate(CAMDEN, ended[0].upload_id))
    assert unfinished(bucket) == [ended[1].clip_id] and len(tails(bucket)) == 1
    assert asyncio.run(other.expire(utc_now() + timedelta(minutes=30))) == 0  # not yet expired
    assert asyncio.run(other.expire(utc_now() + timedelta(hours=2))) == 1
    assert unfinished(bucket) == [] and tails(bucket) == []
    assert other.uploads.upload(ended[1].upload_id) is None


def test_the_expiry_job_sweeps_what_no_upload_names_once_older_than_the_expiry(replicas, bucket):
    one, other = replicas
    data = os.urandom(PART + MiB)
    live, _ = one.create(CAMDEN, len(data), metadata(data))
    send(one, live.upload_id, 0, data[: PART + 10])
    bucket.client.create_multipart_upload(Bucket=bucket.bucket, Key="crashed-before-its-row")
    bucket.client.put_object(Bucket=bucket.bucket, Key=f"{TAILS}{'0' * 32}/left", Body=b"x")
    asyncio.run(other.expire(utc_now()))
    # Younger than the expiry: kept (moto dates every multipart upload 2010, so only the tail shows it).
    assert live.clip_id in unfinished(bucket) and len(tails(bucket)) == 2
    far = utc_now() + timedelta(days=30)
    live_row = other.get(live.upload_id)
    with other.uploads.writer.write() as db:  # the live upload still in use then
        db.execute(
            "UPDATE uploads SET expires_at = ? WHERE upload_id = ?", [to_iso(far + timedelta(days=1)), live.upload_id]
        )
    asyncio.run(other.expire(far))
    assert unfinished(bucket) == [live.clip_id] and tails(bucket) == [live_row.tail]
    assert send(one, live.upload_id, PART + 10, data[PART + 10 :]).verified


def test_start_up_leaves_staged_uploads_in_the_bucket(replicas, bucket):
    one, _ = replicas
    data = os.urandom(PART + 10)
    upload, _ = one.create(CAMDEN, len(data), metadata(data))
    send(one, upload.upload_id, 0, data[:PART])
    S3BlobStore(bucket.settings).check()  # another replica starting
    assert unfinished(bucket) == [upload.clip_id]
    assert send(one, upload.upload_id, PART, data[PART:]).verified


def test_a_staged_creation_refused_at_its_commit_leaves_no_multipart_upload(replicas, bucket, monkeypatch):
    """The claim check, made again in the creation's transaction, refuses it after its multipart
    upload began (another station's report of other bytes was applied meanwhile): the multipart
    upload is aborted, not left for the bucket's lifecycle rule."""
    one, _ = replicas
    data = os.urandom(1000)

    def claimed_meanwhile(*args, **kwargs):
        raise Conflict("clip reported copied off its camera by station kentish with other bytes")

    monkeypatch.setattr(one.uploads, "create_upload", claimed_meanwhile)
    with pytest.raises(Conflict):
        one.create(CAMDEN, len(data), metadata(data))
    assert unfinished(bucket) == [] and one.uploads.receiving_uploads() == []
