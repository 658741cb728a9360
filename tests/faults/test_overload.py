"""Overload: a saturated central answers 503/429 with Retry-After, stays up, and the backlog drains."""

import random

import httpx

from simulation.camera import dock_camera, random_shift
from tests.e2e.harness import wait_until
from tests.e2e.test_faults import assert_exactly_once
from tests.e2e.test_pipeline import expected

STATIONS = ("camden", "barnet", "lewisham", "hackney")


def test_saturated_central_sheds_load_and_every_station_still_drains(make_cluster):
    cluster = make_cluster(
        station_ids=STATIONS,
        central_tables={
            "limits": {"uploads_in_flight": 3, "events_in_flight": 1, "per_client_in_flight": 2, "retry_after_s": 1}
        },
        # A bandwidth cap keeps each upload in its lane for a while: a small clip is now one short
        # request, and without the cap the stations' uploads could all fit the lanes by chance.
        station_settings={
            "concurrent_uploads": 4,
            "retry_initial_s": 0.2,
            "retry_max_s": 2.0,
            "bandwidth_limit_mbps": 8,
        },
    )
    rng = random.Random(11)
    clips = []
    for sid in STATIONS:  # a backlog at every station before central comes up: they all arrive at once
        cluster.start_station(sid)
        for camera in range(2):
            shift = random_shift(rng, 3, min_size=50_000, max_size=400_000)
            dock_camera(cluster.dock_dir(sid), f"BWV-{sid[:2].upper()}{camera:04d}", shift)
            clips += shift
    wait_until(
        lambda: sum(cluster.station_status(s)["pending_clips"] for s in STATIONS) == len(clips),
        60,
        "every station holding its backlog",
    )
    cluster.start_central()
    health_seen = []

    def drained() -> bool:
        health = httpx.get(f"{cluster.url}/healthz", timeout=5)
        assert health.status_code == 200, "central stopped answering its health check under load"
        health_seen.append(health.json()["load"])
        return cluster.verified(expected(clips))

    wait_until(
        drained, 300, "every backlog drained through a saturated central", interval=0.2, check=cluster.check_alive
    )
    assert_exactly_once(cluster, expected(clips))
    load = health_seen[-1]
    assert load["refused_503"] + load["refused_429"] > 0, load  # it really was saturated (each status: test_admission)
    assert max(h["in_flight"]["uploads"] for h in health_seen) <= 3
    log = cluster.root.joinpath("central.log").read_text()
    assert "Traceback" not in log and " 500 " not in log
