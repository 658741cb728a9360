import hashlib

import httpx
import pytest

from fleet.errors import PermanentTransferError, TransientTransferError
from simulation.camera import SimClip, dock_camera
from station.ingest import Ingestor
from station.sync.clips import TusUploader
from tests.central.apps import central_client
from tests.station.conftest import FAST, RECORDED
from tests.station.sync.fake_tus import FakeTus

CHUNK = 64 * 1024


def queue(store, dock_dir, *clips):
    dock_camera(dock_dir, "BWV-000001", list(clips))
    Ingestor(store, "camden", dock_dir).scan()
    return store.queue.claim_due(100)


def uploader(store, server, **kw):
    client = httpx.Client(base_url="http://central", transport=server.transport())
    return TusUploader(client, store, kw.pop("policy", FAST), chunk_bytes=CHUNK, **kw)


def test_uploads_in_checksummed_chunks_until_verified(store, dock_dir):
    server = FakeTus()
    [clip] = queue(store, dock_dir, SimClip(5 * CHUNK + 123, RECORDED))
    uploader(store, server).upload(clip)
    assert hashlib.sha256(server.verified()[clip.clip_id]).hexdigest() == clip.sha256
    assert [m for m, _ in server.requests].count("PATCH") == 6


def test_resumes_from_centrals_offset_after_a_cut(store, dock_dir):
    server = FakeTus()
    [clip] = queue(store, dock_dir, SimClip(4 * CHUNK, RECORDED))
    patches = {"n": 0}

    def cut_third_patch(request):
        if request.method == "PATCH":
            patches["n"] += 1
            if patches["n"] == 3:
                raise httpx.RemoteProtocolError("connection reset")
        return None

    server.fault = cut_third_patch
    uploader(store, server).upload(clip)
    assert hashlib.sha256(server.verified()[clip.clip_id]).hexdigest() == clip.sha256
    assert server.patched_bytes == clip.size  # nothing sent twice
    assert ("HEAD", server.requests[-3][1]) in server.requests  # it asked where to resume


def test_restart_uses_the_saved_upload_url_and_head(store, dock_dir):
    server = FakeTus()
    [clip] = queue(store, dock_dir, SimClip(3 * CHUNK, RECORDED))

    def down_after_first_chunk(request):
        if request.method == "PATCH" and server.patched_bytes >= CHUNK:
            raise httpx.ConnectError("down")

    server.fault = down_after_first_chunk
    with pytest.raises(TransientTransferError, match="down"):
        uploader(store, server).upload(clip)
    server.fault = None
    store.queue.release([clip.clip_id])
    [again] = store.queue.claim_due(10)
    assert again.upload_url and again.upload_url.endswith(server.by_clip[clip.clip_id])
    server.requests.clear()
    uploader(store, server).upload(again)
    assert server.requests[0][0] == "HEAD"
    assert server.patched_bytes == clip.size


def test_chunk_checksum_mismatch_is_retried(store, dock_dir):
    server = FakeTus()
    [clip] = queue(store, dock_dir, SimClip(2 * CHUNK, RECORDED))
    seen = {"n": 0}

    def corrupt_first(request):
        if request.method == "PATCH" and seen["n"] == 0:
            seen["n"] = 1
            request.headers["Upload-Checksum"] = "sha256 " + "A" * 43 + "="
        return None

    server.fault = corrupt_first
    uploader(store, server).upload(clip)
    assert clip.clip_id in server.verified()


def test_permanent_refusal_is_not_retried(store, dock_dir):
    server = FakeTus()
    [clip] = queue(store, dock_dir, SimClip(100, RECORDED))
    server.fault = lambda r: httpx.Response(403, json={"status": 403, "error": "forbidden", "message": "not yours"})
    with pytest.raises(PermanentTransferError, match="not yours"):
        uploader(store, server).upload(clip)
    assert [m for m, _ in server.requests] == ["OPTIONS", "POST"]  # the POST refused once, not retried


def test_retry_after_is_carried_on_the_error(store, dock_dir):
    server = FakeTus()
    [clip] = queue(store, dock_dir, SimClip(100, RECORDED))
    server.fault = lambda r: httpx.Response(503, headers={"Retry-After": "42"}, json={"message": "busy"})
    with pytest.raises(TransientTransferError) as info:
        uploader(store, server).upload(clip)
    assert info.value.retry_after == 42.0 and info.value.status == 503
    assert len(server.requests) == 1  # 42 s is longer than a quick retry waits: left to the persisted backoff


def test_already_verified_clip_costs_one_request(store, dock_dir):
    server = FakeTus()
    [clip] = queue(store, dock_dir, SimClip(1000, RECORDED))
    uploader(store, server).upload(clip)
    server.requests.clear()
    store.queue.set_upload_url(clip.clip_id, None)
    store.queue.release([clip.clip_id])
    uploader(store, server).upload(store.queue.claim_due(1)[0])
    assert [m for m, _ in server.requests] == ["OPTIONS", "POST"]  # OPTIONS: once per uploader, for its extensions


def test_missing_local_copy_is_permanent(store, dock_dir):
    server = FakeTus()
    [clip] = queue(store, dock_dir, SimClip(100, RECORDED))
    store.local_path(clip.local_path).unlink()
    with pytest.raises(PermanentTransferError, match="missing"):
        uploader(store, server).upload(clip)


def test_bandwidth_cap_meters_every_byte(store, dock_dir):
    from station.throttle import Throttle

    consumed = []

    class Recording(Throttle):
        def consume(self, n):
            consumed.append(n)

    server = FakeTus()
    [clip] = queue(store, dock_dir, SimClip(3 * CHUNK + 5, RECORDED))
    uploader(store, server, throttle=Recording(1e6)).upload(clip)
    assert sum(consumed) == clip.size
    assert hashlib.sha256(server.verified()[clip.clip_id]).hexdigest() == clip.sha256


def test_checksums_from_ingest_are_used_and_right(store, dock_dir):
    dock_camera(dock_dir, "BWV-000001", [SimClip(5 * CHUNK + 7, RECORDED)])
    Ingestor(store, "camden", dock_dir, chunk_bytes=CHUNK).scan()
    [clip] = store.queue.claim_due(1)
    assert clip.chunk_bytes == CHUNK and len(clip.chunk_checksums) == 6 and clip.chunk_algorithm == "crc32c"
    server = FakeTus()  # verifies every Upload-Checksum it is sent
    uploader(store, server).upload(clip)
    assert hashlib.sha256(server.verified()[clip.clip_id]).hexdigest() == clip.sha256


@pytest.mark.parametrize("algorithm", ["crc32c", "crc32", "sha1", "sha256"])
def test_every_chunk_checksum_algorithm_is_accepted(store, dock_dir, algorithm):
    dock_camera(dock_dir, "BWV-000001", [SimClip(3 * CHUNK + 1, RECORDED)])
    Ingestor(store, "camden", dock_dir, chunk_bytes=CHUNK, chunk_algorithm=algorithm).scan()
    [clip] = store.queue.claim_due(1)
    server = FakeTus()
    client = httpx.Client(base_url="http://central", transport=server.transport())
    TusUploader(client, store, FAST, chunk_bytes=CHUNK, chunk_algorithm=algorithm).upload(clip)
    assert clip.clip_id in server.verified()
    assert {r.split(" ")[0] for r in server.checksums} == {algorithm}


def test_a_different_chunk_size_falls_back_to_hashing_on_the_fly(store, dock_dir):
    dock_camera(dock_dir, "BWV-000001", [SimClip(3 * CHUNK, RECORDED)])
    Ingestor(store, "camden", dock_dir, chunk_bytes=CHUNK // 2).scan()
    [clip] = store.queue.claim_due(1)
    server = FakeTus()
    uploader(store, server).upload(clip)
    assert clip.clip_id in server.verified()


def test_a_plain_tus_server_never_verifies_so_the_default_client_keeps_trying(store, dock_dir):
    server = FakeTus(plain=True)
    [clip] = queue(store, dock_dir, SimClip(2 * CHUNK, RECORDED))
    with pytest.raises(TransientTransferError, match="verified"):
        uploader(store, server).upload(clip)


def test_plain_tus_mode_is_done_when_the_server_holds_every_byte(store, dock_dir):
    server = FakeTus(plain=True)
    [clip] = queue(store, dock_dir, SimClip(3 * CHUNK + 7, RECORDED))
    cuts = {"n": 0}

    def cut_second_patch(request):
        if request.method == "PATCH":
            cuts["n"] += 1
            if cuts["n"] == 2:
                raise httpx.RemoteProtocolError("connection reset")
        return None

    server.fault = cut_second_patch
    uploader(store, server, plain_tus=True).upload(clip)
    [upload] = server.uploads.values()
    assert hashlib.sha256(upload["data"]).hexdigest() == clip.sha256
    assert server.patched_bytes == clip.size  # resumed from the server's offset
    server.requests.clear()
    store.queue.release([clip.clip_id])
    uploader(store, server, plain_tus=True).upload(store.queue.claim_due(1)[0])
    assert [m for m, _ in server.requests] == ["HEAD"]  # a finished upload is asked about, not re-sent


def test_a_small_clip_goes_whole_in_its_creation_when_the_server_offers_it(store, dock_dir):
    server = FakeTus(creation_with_upload=True)
    [clip] = queue(store, dock_dir, SimClip(CHUNK - 10, RECORDED))
    uploader(store, server).upload(clip)
    assert [m for m, _ in server.requests] == ["OPTIONS", "POST"]
    assert hashlib.sha256(server.verified()[clip.clip_id]).hexdigest() == clip.sha256
    assert [c.split(" ")[0] for c in server.checksums] == ["crc32c"]  # checked by the server
    # verified at once: there is nothing to resume, so no upload URL was written down
    assert store.db.execute("SELECT upload_url FROM clips").fetchall() == [(None,)]


def test_a_clip_over_one_chunk_is_created_empty_then_patched(store, dock_dir):
    server = FakeTus(creation_with_upload=True)
    [clip] = queue(store, dock_dir, SimClip(CHUNK + 10, RECORDED))
    uploader(store, server).upload(clip)
    assert [m for m, _ in server.requests] == ["POST", "PATCH", "PATCH"]  # too big to go whole: no need to ask
    assert clip.clip_id in server.verified()


def test_a_lost_reply_to_a_creation_with_the_whole_clip_is_retried_and_verified(store, dock_dir):
    """Central took the bytes and verified the clip, but its reply never arrived."""
    server = FakeTus(creation_with_upload=True)
    [clip] = queue(store, dock_dir, SimClip(5000, RECORDED))

    def lose_the_first_reply(request):
        if request.method == "POST" and not server.verified():
            server.fault = None
            server.handle(request)
            server.fault = lose_the_first_reply
            raise httpx.ReadError("connection reset by peer")
        return None

    server.fault = lose_the_first_reply
    uploader(store, server).upload(clip)
    assert [m for m, _ in server.requests].count("POST") == 3  # the lost one (counted twice here), the retry
    assert hashlib.sha256(server.verified()[clip.clip_id]).hexdigest() == clip.sha256


def test_an_upload_gone_at_central_mid_way_is_created_again_not_failed(store, dock_dir):
    server = FakeTus()
    [clip] = queue(store, dock_dir, SimClip(3 * CHUNK, RECORDED))
    patches = []

    def forget_the_upload_at_the_second_patch(request):
        if request.method == "PATCH":
            patches.append(request)
            if len(patches) == 2:  # central expired it meanwhile: 410, and it is gone
                server.uploads.clear()
                server.by_clip.clear()
                return httpx.Response(410, json={"status": 410, "error": "gone", "message": "expired"})
        return None

    server.fault = forget_the_upload_at_the_second_patch
    uploader(store, server).upload(clip)
    assert [m for m, _ in server.requests].count("POST") == 2
    assert hashlib.sha256(server.verified()[clip.clip_id]).hexdigest() == clip.sha256


@pytest.mark.parametrize("whole_at_creation", [True, False])
def test_a_zero_byte_clip_is_verified_by_centrals_app(store, dock_dir, tmp_path, monkeypatch, whole_at_creation):

    from station.sync import clips as uploader_module
    from tests.central.conftest import ADMIN, CAMDEN, make_settings

    if not whole_at_creation:  # an older station: the creation carries no body
        monkeypatch.setattr(uploader_module, "WHOLE_AT_CREATION_BYTES", -1)
    [clip] = queue(store, dock_dir, SimClip(0, RECORDED))
    assert clip.size == 0
    with central_client(make_settings(tmp_path / "central"), base_url="http://central.local") as central:
        central.headers.update(CAMDEN)
        TusUploader(central, store, FAST, chunk_bytes=CHUNK).upload(clip)
        listed = central.get(f"/api/v1/clips/{clip.clip_id}", headers=ADMIN).json()
    assert listed["state"] == "verified" and listed["size"] == 0 and listed["sha256"] == hashlib.sha256(b"").hexdigest()
