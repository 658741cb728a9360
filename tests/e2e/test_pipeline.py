"""Dock → station → central, with real processes on loopback."""

import hashlib
import random

from simulation.camera import SimClip, dock_camera, random_shift
from tests.e2e.harness import wait_until
from tests.station.conftest import RECORDED


def expected(clips):
    return {c.clip_id: (hashlib.sha256(c.content()).hexdigest(), c.size) for c in clips}


def test_docked_clips_arrive_verified_with_matching_sha256(make_cluster):
    cluster = make_cluster(station_ids=("camden", "barnet"))
    cluster.start_central()
    for sid in cluster.station_ids:
        cluster.start_station(sid)
    rng = random.Random(7)
    clips = []
    for i, sid in enumerate(["camden", "barnet", "camden"]):
        shift = random_shift(rng, 3, min_size=1, max_size=700_000)
        dock_camera(cluster.dock_dir(sid), f"BWV-00000{i}", shift)
        clips += shift
    want = expected(clips)
    wait_until(lambda: cluster.verified(want), 60, "every clip verified", check=cluster.check_alive)

    at_central = {c["clip_id"]: c for c in cluster.central_clips()}
    assert set(at_central) == set(want)  # nothing extra, nothing twice
    for clip_id, (sha, size) in want.items():
        c = at_central[clip_id]
        assert (c["sha256"], c["size"], c["state"]) == (sha, size, "verified")
        assert c["station_id"] in ("camden", "barnet")
    with cluster.admin() as client:
        some = clips[0]
        body = client.get(f"/api/v1/clips/{some.clip_id}/content").raise_for_status().content
        assert hashlib.sha256(body).hexdigest() == want[some.clip_id][0]

    status = wait_until(
        lambda: (s := cluster.station_status("camden"))["local_copies"] == 0 and s,
        30,
        "local copies deleted after the (zero) grace period",
    )
    assert status["pending_clips"] == 0 and status["verified_clips"] == 6
    assert status["failed_folders"] == []


def test_bad_folder_is_reported_and_others_still_flow(make_cluster):
    cluster = make_cluster()
    cluster.start_central()
    cluster.start_station("camden")
    bad = dock_camera(cluster.dock_dir("camden"), "BWV-000001", [SimClip(100, RECORDED)])
    next((bad / "clips").glob("*.mp4")).unlink()
    good = random_shift(random.Random(2), 2, min_size=1000, max_size=5000)
    dock_camera(cluster.dock_dir("camden"), "BWV-000002", good)
    wait_until(lambda: cluster.verified(expected(good)), 30, "good clips verified", check=cluster.check_alive)
    status = cluster.station_status("camden")
    [folder] = status["failed_folders"]
    assert folder["folder"] == bad.name and "sidecar without its video" in folder["reason"]
    assert (bad / "clips").exists() and not (bad / "INGESTED.json").exists()
