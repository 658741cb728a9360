"""Central as several replicas on one PostgreSQL behind HAProxy: stations never notice which
replica answers, one replica leads the jobs that run once, and another takes over when it dies."""

import hashlib
import os
import random
import signal
import subprocess
import sys
import uuid

import httpx

from fleet.protocol import UploadMetadata, encode_upload_metadata
from simulation.camera import dock_camera, random_shift
from tests.e2e.harness import wait_until
from tests.station.conftest import RECORDED


def expected(clips):
    return {c.clip_id: (hashlib.sha256(c.content()).hexdigest(), c.size) for c in clips}


def device(cluster, serial: str) -> dict | None:
    with cluster.admin() as client:
        response = client.get(f"/api/v1/devices/{serial}")
    return response.json()["device"] if response.status_code == 200 else None


def test_two_replicas_serve_as_one_and_the_jobs_move_when_the_leader_dies(make_cluster):
    cluster = make_cluster(station_ids=("camden", "barnet"), replicas=2, database="postgresql")
    cluster.start_central()
    for sid in cluster.station_ids:
        cluster.start_station(sid)
    leader = wait_until(cluster.leader, 30, "a leading replica")
    rng = random.Random(20)
    first = random_shift(rng, 4, min_size=1, max_size=400_000)
    dock_camera(cluster.dock_dir("camden"), "BWV-100001", first)
    wait_until(lambda: cluster.verified(expected(first)), 60, "the first clips verified", check=cluster.check_alive)
    # The station's events (docked, ingested) were applied by the leader, whichever replica took them.
    wait_until(lambda: (d := device(cluster, "BWV-100001")) and d["last_docked_at"], 30, "the docking applied")

    cluster.processes.pop(cluster.replica_name(leader)).kill(signal.SIGKILL)
    other = 2 if leader == 1 else 1
    wait_until(lambda: cluster.leader() == other, 30, "the other replica leading")

    second = random_shift(rng, 4, min_size=1, max_size=400_000)
    dock_camera(cluster.dock_dir("barnet"), "BWV-100002", second)
    want = expected(first + second)
    wait_until(lambda: cluster.verified(want), 60, "every clip verified", check=cluster.check_alive)
    wait_until(lambda: (d := device(cluster, "BWV-100002")) and d["last_docked_at"], 30, "the new leader applying")
    at_central = {c["clip_id"]: c for c in cluster.central_clips()}
    assert set(at_central) == set(want)
    assert all((at_central[i]["sha256"], at_central[i]["size"]) == v for i, v in want.items())

    cluster.start_replica(leader)  # back, and following: the lead stays where it is
    assert cluster.leader() == other
    verify = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleet.cli",
            "audit",
            "verify",
            "--config",
            str(cluster.root / "central" / "central.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stderr
    assert "audit trail intact" in verify.stdout


def test_an_upload_started_on_one_replica_is_finished_on_the_other(make_cluster):
    cluster = make_cluster(station_ids=("camden",), replicas=2, database="postgresql")
    cluster.start_central()
    data = os.urandom(700_000)
    meta = encode_upload_metadata(
        UploadMetadata(
            clip_id=uuid.uuid4(),
            sha256=hashlib.sha256(data).hexdigest(),
            device_serial="BWV-100003",
            recorded_at=RECORDED,
            filename="clip.mp4",
        )
    )
    headers = {"Authorization": f"Bearer {cluster.token('camden')}", "Tus-Resumable": "1.0.0"}
    patch = {**headers, "Content-Type": "application/offset+octet-stream"}
    with httpx.Client(base_url=cluster.replica_url(1), headers=headers, timeout=30) as one:
        created = one.post("/api/v1/uploads/", headers={"Upload-Length": str(len(data)), "Upload-Metadata": meta})
        assert created.status_code == 201, created.text
        location = created.headers["Location"]
        half = one.patch(location, content=data[:300_000], headers={**patch, "Upload-Offset": "0"})
        assert half.status_code == 204, half.text
    with httpx.Client(base_url=cluster.replica_url(2), headers=headers, timeout=30) as two:
        assert two.head(location).headers["Upload-Offset"] == "300000"
        rest = two.patch(location, content=data[300_000:], headers={**patch, "Upload-Offset": "300000"})
        assert rest.status_code == 204, rest.text
    clips = cluster.central_clips()
    assert [(c["sha256"], c["state"]) for c in clips] == [(hashlib.sha256(data).hexdigest(), "verified")]
