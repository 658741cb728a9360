"""Checkout at a station while central is down; central learns it, with the station's time."""

import signal
import sqlite3
import subprocess
import sys

import httpx

from fleet.clock import from_iso
from simulation.camera import SimClip, dock_camera
from tests.e2e.harness import free_port, wait_until
from tests.station.conftest import RECORDED


def station_db(cluster, sid, sql):
    path = cluster.station_data(sid) / "station.db"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        try:
            return db.execute(sql).fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            return []


def fleet(*args):
    return subprocess.run([sys.executable, "-m", "fleet.cli", *args], capture_output=True, text=True, timeout=60)


def test_offline_checkout_reaches_central_with_the_station_time(make_cluster):
    api_port = free_port()
    cluster = make_cluster(station_ids=("camden",), station_settings={"api_port": api_port})
    config = str(cluster.root / "camden" / "station.toml")
    central = cluster.start_central()
    with cluster.admin() as admin:
        admin.post(
            "/api/v1/officers/",
            json=[{"officer_id": "PC1", "borough": "Camden"}, {"officer_id": "PC2", "borough": "Camden"}],
        ).raise_for_status()
    cluster.start_station("camden")
    dock_camera(cluster.dock_dir("camden"), "BWV-1", [SimClip(1000, RECORDED)], battery_pct=96)
    dock_camera(cluster.dock_dir("camden"), "BWV-2", [], battery_pct=97)
    wait_until(
        lambda: len(station_db(cluster, "camden", "SELECT * FROM officers")) == 2,
        30,
        "officers mirrored",
        check=cluster.check_alive,
    )
    wait_until(lambda: len(station_db(cluster, "camden", "SELECT * FROM dockings")) == 2, 30, "both docked")

    central.kill()  # SIGKILL: central is simply gone
    done = fleet("station", "checkout", "BWV-1", "PC1", "--config", config, "--by", "sgt-test")
    assert done.returncode == 0, done.stderr
    assert "checked out to PC1" in done.stdout
    refused = fleet("station", "checkout", "BWV-2", "PC1", "--config", config)
    assert refused.returncode != 0 and "already has camera BWV-1" in refused.stderr
    via_api = httpx.post(
        f"http://127.0.0.1:{api_port}/checkouts", json={"device_serial": "BWV-2", "officer_id": "PC2"}, timeout=10
    )
    assert via_api.status_code == 201, via_api.text
    assert (
        httpx.post(
            f"http://127.0.0.1:{api_port}/checkouts", json={"device_serial": "BWV-2", "officer_id": "PC1"}, timeout=10
        ).json()["error"]
        == "conflict"
    )
    out_at = {
        serial: from_iso(at)
        for serial, at in station_db(
            cluster, "camden", "SELECT device_serial, out_at FROM checkouts WHERE in_at IS NULL"
        )
    }

    cluster.start_central()

    def held():
        with cluster.admin() as admin:
            rows = admin.get("/api/v1/assignments", params={"active": True}).json()
        return {a["device_serial"]: a for a in rows} if len(rows) == 2 else None

    assignments = wait_until(held, 60, "both checkouts at central", check=cluster.check_alive)
    for serial, officer in (("BWV-1", "PC1"), ("BWV-2", "PC2")):
        a = assignments[serial]
        assert (a["officer_id"], a["mode"], a["station_id"]) == (officer, "pool", "camden")
        assert from_iso(a["started_at"]) == out_at[serial]  # the station's clock, not central's arrival time
    assert assignments["BWV-1"]["started_by"] == "sgt-test@camden"


def test_central_stops_promptly_while_stations_long_poll(make_cluster):
    cluster = make_cluster(station_ids=("camden",), station_settings={"feed_wait_s": 25.0})
    central = cluster.start_central()
    cluster.start_station("camden")
    wait_until(
        lambda: station_db(cluster, "camden", "SELECT value FROM meta WHERE key = 'feed_cursor'"),
        30,
        "the station following the feed",
        check=cluster.check_alive,
    )
    central.kill(signal.SIGTERM)  # fails the test if it takes 20 s
    log = (cluster.root / "central.log").read_text()
    assert "Traceback" not in log and "timeout graceful shutdown exceeded" not in log
    assert central.popen.returncode in (0, -15)
