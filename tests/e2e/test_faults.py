"""Crashes, outages and network faults: nothing lost, nothing duplicated, nothing corrupted."""

import hashlib
import random
import signal

from simulation.camera import SimClip, dock_camera, random_shift
from tests.e2e.harness import wait_until
from tests.e2e.test_pipeline import expected
from tests.station.conftest import RECORDED
from tests.support.faultproxy import FaultProxy

MiB = 1 << 20


def _where_things_are(cluster) -> str:
    """What a failure should show: central's files and the end of its log (a blob count that was once
    0 for three verified clips, and passed alone, left nothing to go on)."""
    files = sorted(str(p.relative_to(cluster.root)) for p in cluster.root.rglob("*") if p.is_file())
    log = cluster.root / "central.log"
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else "(no central.log)"
    return f"files under the cluster: {files[:80]}\ncentral's log, its end:\n{tail}"


def assert_exactly_once(cluster, want):
    at_central = list(cluster.central_clips())
    ids = [c["clip_id"] for c in at_central]
    assert sorted(ids) == sorted(want), "lost or extra clips at central"
    assert len(ids) == len(set(ids)), "duplicated clips at central"
    for c in at_central:
        assert (c["sha256"], c["size"], c["state"]) == (*want[c["clip_id"]], "verified")
    blobs = [p for p in (cluster.central_data() / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == len(want), f"one blob per clip; {_where_things_are(cluster)}"
    for blob in blobs:
        assert hashlib.sha256(blob.read_bytes()).hexdigest() in {s for s, _ in want.values()}


def test_station_killed_mid_ingest_then_restarted(make_cluster):
    cluster = make_cluster()
    cluster.start_central()
    station = cluster.start_station("camden")
    clips = [SimClip(120 * MiB, RECORDED)]
    clips += random_shift(random.Random(4), 3, min_size=1000, max_size=100_000)
    dock_camera(cluster.dock_dir("camden"), "BWV-000001", clips)
    tmp = cluster.station_data("camden") / "tmp"
    wait_until(lambda: any(p.stat().st_size > 0 for p in tmp.glob("*.part")), 30, "ingest under way")
    station.kill(signal.SIGKILL)
    cluster.start_station("camden")
    want = expected(clips)
    wait_until(lambda: cluster.verified(want), 120, "all verified after restart", check=cluster.check_alive)
    assert_exactly_once(cluster, want)


def test_station_killed_mid_upload_then_restarted(make_cluster):
    cluster = make_cluster(station_settings={"bandwidth_limit_mbps": 40.0})
    cluster.start_central()
    station = cluster.start_station("camden")
    clips = random_shift(random.Random(5), 2, min_size=6 * MiB, max_size=8 * MiB)
    dock_camera(cluster.dock_dir("camden"), "BWV-000001", clips)
    parts = cluster.central_data() / "uploads"
    wait_until(
        lambda: any(p.stat().st_size > 1 * MiB for p in parts.glob("*.part")), 30, "central holding part of an upload"
    )
    station.kill(signal.SIGKILL)
    cluster.start_station("camden")
    want = expected(clips)
    wait_until(lambda: cluster.verified(want), 120, "all verified after restart", check=cluster.check_alive)
    assert_exactly_once(cluster, want)


def test_central_killed_mid_chunk_upload_resumes_from_its_offset(make_cluster):
    cluster = make_cluster()
    size = 24 * MiB
    with FaultProxy("127.0.0.1", cluster.port) as proxy:
        cluster.write_station_config("camden", proxy.url, chunk_bytes=1 * MiB, bandwidth_limit_mbps=64.0)
        central = cluster.start_central()
        cluster.start_station("camden")
        clip = SimClip(size, RECORDED)
        dock_camera(cluster.dock_dir("camden"), "BWV-000001", [clip])
        wait_until(lambda: proxy.bytes_up > size // 2, 60, "half the clip sent")
        central.kill(signal.SIGKILL)  # in the middle of a chunk: the bandwidth cap keeps one in flight
        sent_before_crash = proxy.bytes_up
        cluster.start_central()
        want = expected([clip])
        wait_until(lambda: cluster.verified(want), 120, "verified after central restart", check=cluster.check_alive)
        assert_exactly_once(cluster, want)
        resent = proxy.bytes_up - size
        print(f"sent before crash {sent_before_crash}, re-sent {resent}")
        # Resumed from central's last durable chunk: at most the chunk in flight (plus headers) again.
        assert sent_before_crash > size // 2
        assert resent < 2 * MiB, f"{resent} bytes re-sent: the upload restarted instead of resuming"


def test_central_down_station_keeps_ingesting_then_drains(make_cluster):
    cluster = make_cluster()
    cluster.start_station("camden")  # central not started: it is "down"
    clips = random_shift(random.Random(8), 5, min_size=1000, max_size=200_000)
    dock_camera(cluster.dock_dir("camden"), "BWV-000001", clips)
    status = wait_until(
        lambda: (
            (s := cluster.station_status("camden"))["pending_clips"] == 5
            and s["clips_by_state"].get("waiting", 0) >= 1
            and s
        ),
        30,
        "clips ingested and waiting",
    )
    assert status["verified_clips"] == 0 and status["waiting_clips"][0]["last_error"]
    folder = next(cluster.dock_dir("camden").iterdir())
    assert (folder / "INGESTED.json").exists()  # the camera was wiped: the station holds them now
    cluster.start_central()
    want = expected(clips)
    wait_until(lambda: cluster.verified(want), 60, "queue drained after central came back", check=cluster.check_alive)
    assert_exactly_once(cluster, want)


def test_connection_reset_and_flipped_byte_are_survived(make_cluster):
    cluster = make_cluster()
    with FaultProxy("127.0.0.1", cluster.port) as proxy:
        cluster.write_station_config("camden", proxy.url, chunk_bytes=256 * 1024)
        cluster.start_central()
        proxy.reset_after(300 * 1024)
        proxy.flip_byte_at(900 * 1024)
        cluster.start_station("camden")
        clips = random_shift(random.Random(9), 3, min_size=500_000, max_size=900_000)
        dock_camera(cluster.dock_dir("camden"), "BWV-000001", clips)
        want = expected(clips)
        wait_until(lambda: cluster.verified(want), 60, "verified despite faults", check=cluster.check_alive)
        assert len(proxy.faults_fired) == 2
        assert_exactly_once(cluster, want)


def test_station_stops_promptly_on_sigterm_while_retrying(make_cluster):
    """A clean stop must not wait on (or deadlock with) jobs that are rescheduling themselves."""
    cluster = make_cluster()
    station = cluster.start_station("camden")  # central is down: every pass fails and reschedules
    dock_camera(
        cluster.dock_dir("camden"), "BWV-000001", random_shift(random.Random(10), 3, min_size=1000, max_size=5000)
    )
    wait_until(
        lambda: cluster.station_status("camden")["clips_by_state"].get("waiting", 0) >= 1,
        30,
        "uploads failing and being rescheduled",
    )
    station.kill(signal.SIGTERM)  # raises if the process does not exit
    assert station.popen.returncode == 0
    assert "station camden stopped" in station.log.read_text()
