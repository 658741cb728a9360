import threading
from datetime import timedelta

import httpx
import pytest

from fleet.clock import utc_now
from simulation.camera import SimClip, dock_camera
from station.ingest import Ingestor
from station.sync.clips import SyncWorker, TusUploader, purge_local_copies
from tests.station.conftest import FAST, RECORDED, station_store
from tests.station.sync.fake_tus import FakeTus


def worker(store, server, concurrency=2, policy=FAST):
    client = httpx.Client(base_url="http://central", transport=server.transport())
    return SyncWorker(store, TusUploader(client, store, policy, chunk_bytes=64 * 1024), policy, concurrency=concurrency)


def dock(store, dock_dir, clips, name="cam"):
    dock_camera(dock_dir, "BWV-000001", clips, folder_name=name)
    Ingestor(store, "camden", dock_dir).scan()


def states(store):
    return dict(store.db.execute("SELECT clip_id, state FROM clips").fetchall())


def test_drains_the_queue_evidential_first(store, dock_dir):
    routine = [SimClip(1000, RECORDED - timedelta(hours=i)) for i in range(3)]
    evidential = SimClip(1000, RECORDED, evidential=True)
    dock(store, dock_dir, [*routine, evidential])
    server = FakeTus()
    report = worker(store, server, concurrency=1).run_once()
    assert sorted(report.verified) == sorted(c.clip_id for c in [*routine, evidential])
    posts = [r for r in server.requests if r[0] == "POST"]
    assert len(posts) == 4
    first_clip = next(iter(server.uploads.values()))["clip_id"]
    assert first_clip == evidential.clip_id
    assert set(states(store).values()) == {"verified"}
    assert store.queue.summary()["last_sync_ok_at"] is not None


def test_transient_failure_persists_attempts_error_and_next_time(tmp_path, dock_dir):
    store = station_store(tmp_path / "data")
    dock(store, dock_dir, [SimClip(1000, RECORDED), SimClip(1000, RECORDED)])
    server = FakeTus()
    server.fault = lambda r: httpx.Response(503, headers={"Retry-After": "600"}, json={"message": "maintenance"})
    report = worker(store, server).run_once()
    assert len(report.waiting) == 2 and not report.verified
    [a, b] = store.queue.transfers()
    for t in (a, b):
        assert t.state == "waiting" and t.attempts == 1
        assert t.last_error is not None and "maintenance" in t.last_error
        assert t.next_attempt_at is not None
        assert timedelta(seconds=590) < t.next_attempt_at - utc_now() <= timedelta(seconds=600)
    store.close()

    store = station_store(tmp_path / "data")  # a restart keeps the schedule
    server.fault = None
    assert worker(store, server).run_once().verified == []
    assert [t.attempts for t in store.queue.transfers()] == [1, 1]
    store.db.execute("UPDATE clips SET next_attempt_at = ?", ["2000-01-01T00:00:00Z"])
    assert len(worker(store, server).run_once().verified) == 2
    store.close()


def test_unreachable_central_stops_the_pass_early(store, dock_dir):
    dock(store, dock_dir, [SimClip(100, RECORDED) for _ in range(10)])
    server = FakeTus()

    def down(request):
        raise httpx.ConnectError("connection refused")

    server.fault = down
    report = worker(store, server, concurrency=2).run_once()
    assert report.central_unreachable
    assert len(report.waiting) <= 2  # did not hammer central with all ten
    assert list(states(store).values()).count("queued") >= 8


def _run_until(store, server, done, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        worker(store, server).run_once()
        time.sleep(0.01)
    return done()


def test_permanent_refusal_marks_failed_and_retry_command_requeues(store, dock_dir):
    dock(store, dock_dir, [SimClip(100, RECORDED)])
    server = FakeTus()
    server.fault = lambda r: httpx.Response(413, json={"message": "too large"})
    assert _run_until(store, server, lambda: store.queue.summary()["failed_clips"])
    assert len([r for r in server.requests if r[0] == "POST"]) == 2  # refused twice in the same words: final
    [failed] = store.queue.summary()["failed_clips"]
    assert "too large" in failed.last_error
    assert store.queue.requeue_failed() == 1
    server.fault = None
    assert len(worker(store, server).run_once().verified) == 1


def test_a_refusal_that_does_not_repeat_was_damage_on_the_way_and_the_clip_goes_through(store, dock_dir):
    """Fault seed 67: a flipped byte turned a header into one central did not know (400)."""
    dock(store, dock_dir, [SimClip(100, RECORDED)])
    server = FakeTus()
    refusals: list[httpx.Request] = []

    def damaged_once(request):
        if request.method == "POST" and not refusals:
            refusals.append(request)
            return httpx.Response(400, json={"error": "bad_request", "message": "Upload-Metadata is required"})
        return None

    server.fault = damaged_once
    assert _run_until(store, server, lambda: store.queue.summary()["verified_clips"] == 1)
    assert len(refusals) == 1 and store.queue.summary()["failed_clips"] == []


def test_concurrency_is_respected(store, dock_dir, monkeypatch):
    dock(store, dock_dir, [SimClip(100, RECORDED) for _ in range(8)])
    server = FakeTus()
    active, peak, lock = [0], [0], threading.Lock()
    inner = server.handle

    def counting(request):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            return inner(request)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(server, "handle", counting)
    assert len(worker(store, server, concurrency=3).run_once().verified) == 8
    assert peak[0] <= 3


def test_wake_during_a_pass_picks_up_new_work(store, dock_dir, monkeypatch):
    dock(store, dock_dir, [SimClip(100, RECORDED)], name="a")
    server = FakeTus()
    w = worker(store, server, concurrency=1)
    inner = server.handle
    docked: list[int] = []

    def dock_mid_pass(request):
        if not docked:
            docked.append(1)
            dock(store, dock_dir, [SimClip(100, RECORDED)], name="b")
            w.wake()
        return inner(request)

    monkeypatch.setattr(server, "handle", dock_mid_pass)
    assert len(w.run_once().verified) == 2


def test_purge_deletes_only_verified_copies_past_grace(store, dock_dir):
    dock(store, dock_dir, [SimClip(100, RECORDED), SimClip(100, RECORDED)])
    [first, second] = store.queue.claim_due(2)
    store.queue.mark_verified(first.clip_id)
    store.queue.mark_waiting(second.clip_id, "down", utc_now())
    assert purge_local_copies(store, timedelta(hours=1)) == 0  # within grace
    assert purge_local_copies(store, timedelta(0)) == 1
    assert not store.local_path(first.local_path).exists()
    assert store.local_path(second.local_path).exists()  # unverified: kept
    assert purge_local_copies(store, timedelta(0)) == 0


def test_purge_never_removes_a_held_copy_until_the_hold_is_released(store, dock_dir):
    from fleet.events import ClipHold

    dock(store, dock_dir, [SimClip(100, RECORDED), SimClip(100, RECORDED)])
    [held, free] = store.queue.claim_due(2)
    store.queue.mark_verified(held.clip_id)
    store.queue.mark_verified(free.clip_id)
    mirror = store.mirror
    mirror.apply([ClipHold(clip_id=held.clip_id, held=True)], cursor=1)
    assert purge_local_copies(store, timedelta(0)) == 1
    assert store.local_path(held.local_path).exists() and not store.local_path(free.local_path).exists()
    mirror.apply([ClipHold(clip_id=held.clip_id, held=False)], cursor=2)
    assert purge_local_copies(store, timedelta(0)) == 1
    assert not store.local_path(held.local_path).exists()


def test_the_clip_id_goes_to_central_as_the_station_records_it(store, dock_dir):
    """Upload-Metadata carries the clip id as the canonical text of the camera's UUID, the same
    text the queue holds, whatever case the camera wrote it in."""
    import base64
    import uuid

    written = str(uuid.uuid4()).upper()
    dock(store, dock_dir, [SimClip(1000, RECORDED, clip_id=written)])
    server = FakeTus()
    headers = []
    server.fault = lambda request: (
        headers.append(request.headers.get("Upload-Metadata")) if request.method == "POST" else None
    )
    worker(store, server).run_once()
    [header] = headers
    first = header.split(",")[0]
    assert first == "clip_id " + base64.b64encode(written.lower().encode()).decode()
    assert list(states(store)) == [written.lower()]


def test_the_cameras_pre_record_buffer_goes_to_central_with_the_clip(store, dock_dir):
    from fleet.protocol import parse_upload_metadata_header

    dock(store, dock_dir, [SimClip(1000, RECORDED)])  # the simulated camera's sidecar says 30 s
    server = FakeTus()
    headers = []
    server.fault = lambda request: (
        headers.append(request.headers.get("Upload-Metadata")) if request.method == "POST" else None
    )
    worker(store, server).run_once()
    [header] = headers
    assert parse_upload_metadata_header(header)["pre_record_s"] == "30.0"


def test_outside_the_upload_window_only_evidential_and_held_clips_go_up(store, dock_dir, monkeypatch):
    from datetime import UTC, datetime

    from fleet.events import ClipHold
    from fleet.protocol import StationStatus
    from station.status import station_status
    from station.sync import clips as clips_module
    from station.sync.window import UploadWindow
    from tests.station.test_status import settings_for

    routine, held = SimClip(1000, RECORDED), SimClip(1000, RECORDED - timedelta(hours=1))
    evidential = SimClip(1000, RECORDED - timedelta(hours=2), evidential=True)
    dock(store, dock_dir, [routine, held, evidential])
    store.mirror.apply([ClipHold(clip_id=held.clip_id)], cursor=1)
    settings = settings_for(store, dock_dir.parent, upload_window="19:00-07:00", bandwidth_limit_mbps=20)
    window = UploadWindow.of(settings)
    noon, night = datetime(2026, 7, 1, 11, 0, tzinfo=UTC), datetime(2026, 7, 1, 22, 30, tzinfo=UTC)  # 12:00, 23:30 BST
    assert window is not None and not window.is_open(noon) and window.is_open(night)
    assert window.is_open(datetime(2026, 12, 1, 6, 30, tzinfo=UTC)) and not window.is_open(
        datetime(2026, 7, 1, 6, 30, tzinfo=UTC)
    )

    server = FakeTus()
    sync = worker(store, server, concurrency=1)
    sync.window = window
    monkeypatch.setattr(clips_module, "utc_now", lambda: noon)
    assert sorted(sync.run_once().verified) == sorted([held.clip_id, evidential.clip_id])
    assert states(store)[routine.clip_id] == "queued"
    status: StationStatus = station_status(settings, store)
    assert (status.upload_window, status.bandwidth_limit_mbps) == ("19:00-07:00 Europe/London", 20.0)
    monkeypatch.setattr(clips_module, "utc_now", lambda: night)
    assert sync.run_once().verified == [routine.clip_id]


def test_an_upload_window_that_is_not_a_window_is_refused_when_the_config_loads(tmp_path):
    import pytest

    from fleet.config import StationSettings, settings_from_dict
    from fleet.errors import ConfigError

    base = {"station_id": "camden", "borough": "Camden", "central_url": "http://127.0.0.1:9", "token": "t"}
    base |= {"data_dir": "d", "dock_dir": "k"}
    for window, timezone, why in [
        ("25:00-07:00", "Europe/London", "25:00 is not a time of day"),
        ("07:00-07:00", "Europe/London", "opens and closes at once"),
        ("19:00-07:00", "Mars/Olympus", "not a known time zone"),
        ("7pm-7am", "Europe/London", "upload_window"),
    ]:
        with pytest.raises(ConfigError, match=why):
            settings_from_dict({**base, "upload_window": window, "timezone": timezone}, StationSettings)


def test_a_location_pointing_to_another_host_is_refused_and_nothing_is_sent_there(store, dock_dir):
    dock(store, dock_dir, [SimClip(1000, RECORDED)])
    server = FakeTus()
    sent_elsewhere = []

    def fault(request):
        if request.url.host != "central":
            sent_elsewhere.append(request)
            return httpx.Response(204)
        if request.method == "POST":
            return httpx.Response(201, headers={"Location": "http://collector.example/up/1", "Upload-Offset": "0"})
        return None

    server.fault = fault
    report = worker(store, server).run_once()
    assert report.verified == [] and sent_elsewhere == []
    [row] = store.db.execute("SELECT state, last_error FROM clips").fetchall()
    assert row[0] == "waiting" and "points away from http://central" in row[1]


def test_clips_verified_together_are_marked_in_one_durable_commit_with_an_event_each(store, dock_dir):
    dock(store, dock_dir, [SimClip(100, RECORDED) for _ in range(3)])
    claimed = [c.clip_id for c in store.queue.claim_due(3)]
    events_before = store.outbox.pending_count()
    seen: list[str] = []
    store.db.set_trace_callback(seen.append)
    store.queue.mark_verified(claimed)
    store.db.set_trace_callback(None)
    assert seen.count("BEGIN IMMEDIATE") == 1 and "PRAGMA synchronous=NORMAL" not in seen  # one FULL commit
    assert set(states(store).values()) == {"verified"}
    assert store.outbox.pending_count() == events_before + 3  # a ClipVerified each
    store.queue.mark_verified(claimed)  # again (a retry after a crash): no second event
    assert store.outbox.pending_count() == events_before + 3


def test_a_claim_is_committed_without_syncing(store, dock_dir):
    """'uploading' acknowledges nothing: a claim lost in a power cut leaves the clip queued,
    where recover_interrupted would put it anyway."""
    dock(store, dock_dir, [SimClip(100, RECORDED)])
    seen: list[str] = []
    store.db.set_trace_callback(seen.append)
    [clip] = store.queue.claim_due(1)
    store.db.set_trace_callback(None)
    assert seen[0] == "PRAGMA synchronous=NORMAL" and seen[-1] == "PRAGMA synchronous=FULL"
    assert states(store) == {clip.clip_id: "uploading"}
    store.close()
    again = station_store(store.data_dir)
    try:
        assert again.queue.recover_interrupted() == 1
        assert states(again) == {clip.clip_id: "queued"}
    finally:
        again.close()


def test_clips_central_verified_are_marked_so_when_the_pass_fails_before_marking_them(store, dock_dir, monkeypatch):
    dock(store, dock_dir, [SimClip(100, RECORDED) for _ in range(3)])
    w = worker(store, FakeTus(), concurrency=2)
    claim_due = store.queue.claim_due
    claims = []

    def claim_then_fail(limit, **kw):
        claims.append(limit)
        if len(claims) > 1:
            raise RuntimeError("the disk went away")
        return claim_due(limit, **kw)

    monkeypatch.setattr(store.queue, "claim_due", claim_then_fail)
    with pytest.raises(RuntimeError, match="the disk went away"):
        w.run_once()
    assert sorted(states(store).values()) == ["queued", "verified", "verified"]


def test_a_pass_with_nothing_to_check_again_reads_no_unsent_event(store, dock_dir, monkeypatch):
    """Clips to ask central about again exist only after its restore; the events not yet sent (thousands
    during an outage) are read for them then, not decoded at every upload pass."""
    server = FakeTus()
    dock(store, dock_dir, [SimClip(size=10_000, recorded_at=RECORDED)])

    def unexpected():
        raise AssertionError("the unsent events were read with nothing to check again")

    monkeypatch.setattr(store.outbox, "unacked_ingests", unexpected)
    report = worker(store, server).run_once()
    assert not report.failed and set(states(store).values()) == {"verified"}


@pytest.mark.parametrize("central_url", ["http://central.example:8000", "https://central.example/fleet"])
def test_uploads_go_where_httpx_puts_the_path_under_central_url(store, central_url):
    """The uploads URL is made once, the way httpx makes a relative one at each request (under a
    central_url's own path, behind a proxy that serves central below one)."""
    from fleet.retry import RetryPolicy
    from station.sync.clips import UPLOADS_PATH

    with httpx.Client(base_url=central_url) as client:
        uploader = TusUploader(client, store, RetryPolicy())
        assert uploader._uploads == client.build_request("POST", UPLOADS_PATH).url


def test_a_central_below_a_path_is_resumed_below_it_too(store, dock_dir):
    """Behind a proxy that serves central below central_url's path, central answers a creation
    with the Location it knows (``/api/v1/uploads/<id>``): its PATCHes and HEADs go below that
    path as the creation did, not to the proxy's root."""
    dock(store, dock_dir, [SimClip(200_000, RECORDED)])
    server = FakeTus()
    client = httpx.Client(base_url="http://central/fleet", transport=server.transport())
    uploader = TusUploader(client, store, FAST, chunk_bytes=64 * 1024)
    report = SyncWorker(store, uploader, FAST, concurrency=1).run_once()
    assert len(report.verified) == 1
    assert server.requests and all(path.startswith("/fleet/api/v1/uploads") for _, path in server.requests), (
        server.requests
    )


@pytest.mark.parametrize("state", ["verified", "receiving"])
def test_a_creation_answer_whose_location_points_away_sends_nothing_there(store, dock_dir, state):
    """A small clip whole in its creation: answered verified, its Location is never followed (the
    clip is done); answered otherwise, a Location away from central is refused, as ever."""
    from fleet.protocol import CLIP_STATE_HEADER

    dock(store, dock_dir, [SimClip(1000, RECORDED)])
    server = FakeTus(creation_with_upload=True)
    sent_elsewhere = []

    def fault(request):
        if request.url.host != "central":
            sent_elsewhere.append(request)
            return httpx.Response(204)
        if request.method == "POST":
            server.fault = None  # central takes the bytes; its answer is rewritten
            try:
                upload = server.handle(request)
            finally:
                server.fault = fault
            headers = httpx.Headers(upload.headers)
            headers["Location"], headers[CLIP_STATE_HEADER] = "http://collector.example/up/1", state
            return httpx.Response(upload.status_code, headers=headers)
        return None

    server.fault = fault
    report = worker(store, server).run_once()
    assert sent_elsewhere == []
    [(kept, last_error)] = store.db.execute("SELECT state, last_error FROM clips").fetchall()
    if state == "verified":
        assert report.verified and kept == "verified"
    else:
        assert not report.verified and kept == "waiting" and "points away from http://central" in last_error
