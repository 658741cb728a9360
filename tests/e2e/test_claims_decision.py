"""A person's word on a waiting report (``fleet central claims refuse --instead``), given at central's
console while central serves and its projection worker applies other stations' events."""

import hashlib
import json
import os
import subprocess
import sys
import threading
import uuid

import httpx
import pytest

from fleet.protocol import UploadMetadata, encode_upload_metadata
from tests.central.fleetdata import batch, docked, ingested
from tests.e2e.harness import Cluster, wait_until

SERIAL = "BWV-000123"


def fleet(cluster: Cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fleet.cli", *args, "--config", str(cluster.config_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def send(cluster: Cluster, station: str, events, first_seq: int, hours: list[float]) -> None:
    httpx.post(
        f"{cluster.url}/api/v1/events/",
        content=batch(events, first_seq, hours=hours),
        headers={"Authorization": f"Bearer {cluster.token(station)}", "Content-Type": "application/json"},
        timeout=30,
    ).raise_for_status()


def show(cluster: Cluster, clip_id: str) -> dict:
    done = fleet(cluster, "central", "claims", "show", clip_id, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


class Busy(threading.Thread):
    """Camden's other cameras docking with clips, batch after batch, until stopped: the projection
    worker has events to apply all the while."""

    def __init__(self, cluster: Cluster, first_seq: int) -> None:
        super().__init__(daemon=True)
        self.cluster, self.seq, self.stop, self.sent = cluster, first_seq, threading.Event(), 0

    def run(self) -> None:
        while not self.stop.is_set():
            serial = f"BWV-{900000 + self.sent}"
            events = [docked(serial, 4, clips=10)] + [ingested(serial, 4) for _ in range(10)]
            send(self.cluster, "camden", events, self.seq, [4] * len(events))
            self.seq += len(events)
            self.sent += 1


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_report_put_in_place_of_a_false_one_while_central_serves_and_projects(make_cluster, database):
    cluster = make_cluster(station_ids=("camden", "kentish"), database=database)
    text = cluster.config_path.read_text()
    cluster.config_path.write_text(text.replace('borough = "Kentish"', 'borough = "Camden"'))  # one borough
    cluster.start_central()
    data = os.urandom(3000)
    clip = ingested(SERIAL, 2, data=data)
    send(cluster, "camden", [docked(SERIAL, 1)], 1, [1])
    send(cluster, "kentish", [ingested(SERIAL, 2, clip_id=clip.clip_id, data=os.urandom(3000))], 1, [3])
    wait_until(lambda: show(cluster, clip.clip_id)["waiting"] is not None, 60, "Kentish's report applied")
    send(cluster, "camden", [docked(SERIAL, 3, clips=1), clip], 2, [3, 3])
    wait_until(lambda: show(cluster, clip.clip_id)["refused"], 60, "Camden's report refused")

    busy = Busy(cluster, first_seq=4)
    busy.start()
    try:
        wait_until(lambda: busy.sent >= 3, 60, "Camden's other cameras on their way")
        done = fleet(
            cluster, "central", "claims", "refuse", clip.clip_id, "--reason", "forged", "--instead", "camden", "--json"
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["reinstated"]["station_id"] == "camden"
    finally:
        busy.stop.set()
        busy.join(timeout=60)

    meta = UploadMetadata(
        clip_id=uuid.UUID(clip.clip_id),
        sha256=hashlib.sha256(data).hexdigest(),
        device_serial=SERIAL,
        recorded_at=clip.recorded_at,
        filename="c.mp4",
    )
    camden = {"Authorization": f"Bearer {cluster.token('camden')}", "Tus-Resumable": "1.0.0"}
    created = httpx.post(
        f"{cluster.url}/api/v1/uploads/",
        headers={**camden, "Upload-Length": str(len(data)), "Upload-Metadata": encode_upload_metadata(meta)},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    httpx.patch(
        httpx.URL(cluster.url).join(created.headers["Location"]),
        content=data,
        headers={**camden, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        timeout=30,
    ).raise_for_status()
    with cluster.admin() as admin:
        records = admin.get(f"/api/v1/clips/{clip.clip_id}/custody").raise_for_status().json()
        attributed = admin.get(f"/api/v1/clips/{clip.clip_id}/attribution").raise_for_status().json()
    assert sorted((r["action"], r["place"]) for r in records) == [
        ("claim-refused", "central"),
        ("claim-reinstated", "central"),
        ("ingest", "camden"),
        ("upload-verified", "central"),
    ]
    assert attributed["station_id"] == "camden"
    verified = fleet(cluster, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
