"""Backups proven by restore: central restored to an earlier point into a fresh data folder (or a
fresh PostgreSQL database) while a station keeps working; a station whose disk failed replaced."""

import hashlib
import random
import shutil
import subprocess
import sys

import httpx
import psycopg
import pytest

from simulation.camera import dock_camera, random_shift
from tests.e2e.harness import wait_until


def fleet(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "fleet.cli", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def expected(clips):
    return {c.clip_id: (hashlib.sha256(c.content()).hexdigest(), c.size) for c in clips}


def received_bytes(cluster) -> float:
    """Upload bytes this central process received (its /metrics): 0 when nothing was sent again."""
    with cluster.admin() as client:
        text = client.get("/metrics").raise_for_status().text
    return sum(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith("fleet_central_upload_received_bytes")
    )


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_central_restored_to_an_earlier_point_and_the_station_carries_on(make_cluster, tmp_path, database):
    anchors = tmp_path / "published" / "anchors.jsonl"  # kept apart from central's data, as deployed
    cluster = make_cluster(database=database, central_tables={"audit": {"anchors_file": str(anchors)}})
    config = str(cluster.config_path)
    cluster.start_central()
    cluster.start_station("camden")
    rng = random.Random(24)
    before = random_shift(rng, 3, min_size=1000, max_size=300_000)
    dock_camera(cluster.dock_dir("camden"), "BWV-000001", before)
    wait_until(lambda: cluster.verified(expected(before)), 60, "clips verified", check=cluster.check_alive)
    fleet("central", "add-user", "j.smith", "--role", "viewer", "--no-password", "--config", config)
    token = fleet("central", "token", "create", "j.smith", "--label", "nightly", "--config", config).split()[-1]
    with cluster.admin() as client:
        client.post(
            "/api/v1/holds", json={"kind": "clip", "clip_id": before[0].clip_id, "reason": "complaint 7"}
        ).raise_for_status()
        holds_then = client.get("/api/v1/holds").raise_for_status().json()
    fleet("audit", "publish", "--config", config)

    fleet("central", "backup", "--to", str(tmp_path / "backups"), "--name", "b1", "--config", config)

    after = random_shift(rng, 3, min_size=1000, max_size=300_000)  # work goes on after the backup
    dock_camera(cluster.dock_dir("camden"), "BWV-000002", after)
    wait_until(lambda: cluster.verified(expected(after)), 60, "later clips verified", check=cluster.check_alive)
    wait_until(lambda: cluster.station_status("camden")["local_copies"] == 0, 30, "the station's copies purged")
    acked_before = cluster.station_status("camden")["acked_event_seq"]
    fleet("audit", "publish", "--config", config)

    # The bad day: central's database is gone. Its blob store (kept apart) survives.
    cluster.processes.pop("central").kill(__import__("signal").SIGTERM)
    old_data = cluster.central_data()
    text = cluster.config_path.read_text().replace('data_dir = "data"', 'data_dir = "restored"')
    if database == "postgresql":
        with psycopg.connect(cluster.postgres.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE central_restored")
        text = text.replace(cluster.postgres.url("central"), cluster.postgres.url("central_restored"))
    cluster.config_path.write_text(text)
    new_data = cluster.root / "central" / "restored"
    new_data.mkdir()
    shutil.move(old_data / "blobs", new_data / "blobs")
    fleet("central", "restore", str(tmp_path / "backups" / "b1"), "--config", config)
    cluster.start_central()

    want = expected(before + after)
    wait_until(lambda: cluster.verified(want), 60, "every clip verified again", check=cluster.check_alive)
    assert {c["clip_id"] for c in cluster.central_clips()} == set(want)  # nothing lost, nothing extra
    for clip in cluster.central_clips():
        assert (clip["sha256"], clip["size"]) == want[clip["clip_id"]]
    assert received_bytes(cluster) == 0  # central had every byte: nothing was uploaded again
    status = wait_until(
        lambda: (s := cluster.station_status("camden"))["pending_events"] == 0 and s, 30, "events resent"
    )
    assert status["acked_event_seq"] >= acked_before and status["failed_clips"] == []
    with cluster.admin() as client:
        assert client.get("/api/v1/holds").raise_for_status().json() == holds_then
        refusals = client.get("/api/v1/stations/camden").raise_for_status().json()["refused_events"]
    assert refusals == 0  # no "verified" report of a clip central had lost was judged a lie
    assert "j.smith" in fleet("central", "users", "--config", config)
    response = httpx.get(f"{cluster.url}/api/v1/devices", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200  # the token made before the backup still works
    verified = fleet("audit", "verify", "--config", config)
    assert "audit trail intact" in verified and "lost" in verified

    more = random_shift(rng, 2, min_size=1000, max_size=100_000)  # and the dock keeps working
    dock_camera(cluster.dock_dir("camden"), "BWV-000003", more)
    wait_until(lambda: cluster.verified(expected(more)), 60, "new clips verified", check=cluster.check_alive)


def test_a_replaced_station_rejoins_and_its_dock_keeps_working(make_cluster, tmp_path):
    cluster = make_cluster()
    cluster.start_central()
    station = cluster.start_station("camden")
    rng = random.Random(25)
    first = random_shift(rng, 2, min_size=1000, max_size=100_000)
    dock_camera(cluster.dock_dir("camden"), "BWV-000001", first)
    wait_until(lambda: cluster.verified(expected(first)), 60, "clips verified", check=cluster.check_alive)
    wait_until(lambda: cluster.station_status("camden")["pending_events"] == 0, 30, "events sent")
    fleet(
        "station",
        "backup",
        "--to",
        str(tmp_path / "station-backups"),
        "--config",
        str(cluster.root / "camden" / "station.toml"),
    )

    station.kill(__import__("signal").SIGKILL)  # the disk fails: its data folder is gone
    del cluster.processes["camden"]
    shutil.rmtree(cluster.station_data("camden"))
    with cluster.admin() as client:
        acked = client.get("/api/v1/stations/camden").raise_for_status().json()["acked_seq"]
    cluster.start_station("camden")  # a new disk, a new database, the same config and key

    second = random_shift(rng, 2, min_size=1000, max_size=100_000)
    dock_camera(cluster.dock_dir("camden"), "BWV-000002", second)
    wait_until(lambda: cluster.verified(expected(second)), 60, "the new station's clips", check=cluster.check_alive)
    status = wait_until(
        lambda: (s := cluster.station_status("camden"))["pending_events"] == 0 and s, 30, "its events acknowledged"
    )
    assert status["acked_event_seq"] > acked  # its own events numbered after the old station's
    assert status["feed_cursor"] > 0  # the snapshot (or the feed from the start) came down
    with cluster.admin() as client:
        camden = client.get("/api/v1/stations/camden").raise_for_status().json()
        device = client.get("/api/v1/devices/BWV-000002").raise_for_status().json()
    assert camden["refused_events"] == 0 and device["device"]["borough"] == "Camden"  # its docking applied
