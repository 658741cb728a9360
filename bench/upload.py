"""P2 upload: station→central verified upload over loopback against ``curl -T``.

Central runs as a real process (``fleet central serve``, uvicorn + httptools + uvloop).
Ours: the station's TusUploader sending a ≥ 1 GiB clip in checksummed 16 MiB chunks until
central answers "verified". Baseline: ``curl -T`` of the same bytes into a single tus PATCH
of a fresh upload on the same central (which also checks the whole-file SHA-256 before
answering). Rounds alternate; medians and the ratio are reported. Then many small clips:
2,000 × 64 KiB through the station's sync worker, in clips per second.

``--tls``: central serves HTTPS with a certificate from a throwaway CA (trustme); the station
verifies it against that CA, and curl is given it with ``--cacert``: both pay for TLS.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.common import bench_keys, machine, median, mib_s, save, timed
from fleet.clock import utc_now
from fleet.config import StationSettings, settings_from_dict
from fleet.protocol import UploadMetadata, encode_upload_metadata
from simulation.camera import SimClip, dock_camera, write_clip_file

ADMIN = "bench-admin-token"  # benchmark value, not a secret
STATION = "bench-station-token"
GiB = 1 << 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """A server process on a loopback port, in its own session so ``stop`` ends it and its children."""

    port: int
    proc: subprocess.Popen
    ca: Path | None = None
    """Over TLS: the CA that signed its certificate."""

    @property
    def url(self) -> str:
        return f"{'https' if self.ca else 'http'}://127.0.0.1:{self.port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=self.ca) if self.ca else True

    def wait_until_up(self, ready: Callable[[], bool], name: str) -> None:
        deadline = time.monotonic() + 120  # start-up can take half a minute on a busy 2-core host
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.proc.returncode} before answering")
            try:
                if ready():
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{name} did not start")

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=30)


class Central(LocalServer):
    def __init__(self, root: Path, tls: bool = False) -> None:
        self.port = free_port()
        self.root = root
        (root / "central").mkdir(parents=True)
        config = f'port = {self.port}\ndata_dir = "data"\nadmin_token = "{ADMIN}"\nlog_level = "warning"\n'
        if tls:
            self.ca = make_tls(root / "tls")
            config += f'[tls]\ncertificate = "{root / "tls" / "central.pem"}"\nkey = "{root / "tls" / "central.key"}"\n'
        (root / "central" / "central.toml").write_text(
            config + f'[stations.bench]\nborough = "Camden"\ntoken = "{STATION}"\n'
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fleet.cli", "central", "serve", "--config", str(root / "central" / "central.toml")],
            start_new_session=True,
        )
        self.wait_until_up(lambda: httpx.get(f"{self.url}/healthz", verify=self.verify).status_code == 200, "central")


def make_tls(folder: Path) -> Path:
    """A throwaway CA (benchmark values, not secrets) and central's certificate for 127.0.0.1; the CA's file."""
    import trustme

    folder.mkdir(parents=True)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    (folder / "central.pem").write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(folder / "central.key")
    ca.cert_pem.write_to_path(folder / "ca.pem")
    return folder / "ca.pem"


def station_settings(root: Path, url: str, ca: Path | None = None, **extra) -> StationSettings:
    return settings_from_dict(
        {
            "station_id": "bench",
            "borough": "Camden",
            "central_url": url,
            "token": STATION,
            "data_dir": str(root / "data"),
            "dock_dir": str(root / "dock"),
            **({"tls": {"ca_bundle": str(ca)}} if ca else {}),
            **extra,
        },
        StationSettings,
    )


def ingest(settings: StationSettings, clips: list[SimClip]) -> None:
    from station.ingest import Ingestor
    from station.store import StationStore

    Path(settings.dock_dir).mkdir(parents=True, exist_ok=True)
    for start in range(0, len(clips), 50):
        dock_camera(settings.dock_dir, "BWV-000001", clips[start : start + 50], folder_name=f"cam{start:06d}")
    store = StationStore(settings.data_dir, keys=bench_keys())
    Ingestor(
        store,
        settings.station_id,
        settings.dock_dir,
        chunk_bytes=settings.chunk_bytes,
        chunk_algorithm=settings.chunk_checksum,
    ).scan()
    store.close()


def ours_big(settings: StationSettings) -> None:
    """One full verified upload of the queued clip by the station's own uploader."""
    from fleet.retry import RetryPolicy
    from station.store import StationStore
    from station.sync.clips import TusUploader
    from station.sync.link import build_client

    store = StationStore(settings.data_dir, keys=bench_keys())
    store.db.execute("UPDATE clips SET state = 'queued', upload_url = NULL")
    with build_client(settings) as client:
        [clip] = store.queue.claim_due(1)
        TusUploader(
            client, store, RetryPolicy(), chunk_bytes=settings.chunk_bytes, chunk_algorithm=settings.chunk_checksum
        ).upload(clip)
    store.close()


def curl_big(central: Central, path: Path, sha256: str, size: int) -> None:
    meta = UploadMetadata(
        clip_id=uuid.uuid4(), sha256=sha256, device_serial="BWV-000002", recorded_at=utc_now(), filename="curl.mp4"
    )
    created = httpx.post(
        f"{central.url}/api/v1/uploads/",
        verify=central.verify,
        headers={
            "Authorization": f"Bearer {ADMIN}",
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(size),
            "Upload-Metadata": encode_upload_metadata(meta),
        },
    )
    created.raise_for_status()
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PATCH",
            "-T",
            str(path),
            "-H",
            f"Authorization: Bearer {ADMIN}",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Upload-Offset: 0",
            "-H",
            "Content-Type: application/offset+octet-stream",
            "-H",
            "Expect:",
            *(["--cacert", str(central.ca)] if central.ca else []),
            central.url + created.headers["Location"],
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    if out.stdout != "204":
        raise RuntimeError(f"curl PATCH answered {out.stdout}")


def many_small(central: Central, root: Path, count: int, size: int, concurrency: int) -> dict:
    from fleet.retry import RetryPolicy
    from station.store import StationStore
    from station.sync.clips import SyncWorker, TusUploader
    from station.sync.link import build_client

    settings = station_settings(root, central.url, central.ca, concurrent_uploads=concurrency)
    ingest(settings, [SimClip(size, utc_now(), seed=i) for i in range(count)])
    store = StationStore(settings.data_dir, keys=bench_keys())
    policy = RetryPolicy()
    with build_client(settings) as client:
        worker = SyncWorker(store, TusUploader(client, store, policy), policy, concurrency=concurrency)
        start = time.perf_counter()
        report = worker.run_once()
        seconds = time.perf_counter() - start
    store.close()
    if len(report.verified) != count:
        raise RuntimeError(f"only {len(report.verified)} of {count} small clips verified")
    return {
        "clips": count,
        "clip_bytes": size,
        "concurrency": concurrency,
        "seconds": seconds,
        "clips_per_s": count / seconds,
        "MiB_per_s": mib_s(count * size, seconds),
    }


def run(
    size: int = GiB,
    rounds: int = 3,
    small_count: int = 2000,
    small_size: int = 64 * 1024,
    where: str | None = None,
    chunk_bytes: int | None = None,
    chunk_checksum: str | None = None,
    tls: bool = False,
) -> dict:
    root = Path(tempfile.mkdtemp(prefix="bench-upload-", dir=where or Path.cwd()))
    central = Central(root, tls=tls)
    try:
        settings = station_settings(
            root / "station",
            central.url,
            central.ca,
            **({"chunk_bytes": chunk_bytes} if chunk_bytes else {}),
            **({"chunk_checksum": chunk_checksum} if chunk_checksum else {}),
        )
        clip = SimClip(size, utc_now(), seed=42)
        ingest(settings, [clip])  # the station's copy is sealed at rest: ours decrypts as it sends
        local = root / "plain.mp4"  # curl sends the camera's bytes as they are
        sha256 = write_clip_file(local, clip)
        times: dict[str, list[float]] = {"ours": [], "curl": []}
        for r in range(rounds):
            for name in ["ours", "curl"] if r % 2 == 0 else ["curl", "ours"]:
                fn = (
                    (lambda: ours_big(settings)) if name == "ours" else (lambda: curl_big(central, local, sha256, size))
                )
                times[name].append(timed(fn))
                for blob in (root / "central" / "data" / "blobs").rglob("*"):
                    if blob.is_file():
                        blob.unlink()
                if name == "ours":  # let the next round upload the same clip again
                    subprocess.run(
                        [
                            sys.executable,
                            "-c",
                            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]);"
                            "c.execute('DELETE FROM clips'); c.execute('DELETE FROM uploads'); c.commit()",
                            str(root / "central" / "data" / "central.db"),
                        ],
                        check=True,
                    )
        medians = {k: median(v) for k, v in times.items()}
        result = {
            "machine": machine(),
            "bytes": size,
            "rounds": rounds,
            "tls": tls,
            "chunk_bytes": settings.chunk_bytes,
            "chunk_checksum": settings.chunk_checksum,
            "seconds": times,
            "median_s": medians,
            "MiB_per_s": {k: mib_s(size, v) for k, v in medians.items()},
            "ratio_ours_vs_curl": medians["curl"] / medians["ours"],
            "directory": str(root.parent),
        }
        if small_count:
            result["small_clips"] = many_small(central, root / "small", small_count, small_size, concurrency=4)
        return result
    finally:
        central.stop()
        shutil.rmtree(root, ignore_errors=True)


def s3_staging(
    size: int = 256 << 20, chunk_bytes: int = 16 << 20, rounds: int = 3, endpoint: str | None = None
) -> dict:
    """Uploads in progress in .part files then put in the bucket, against staged in the bucket as
    they arrive (``[blobs] stage_uploads``): one clip in checksummed chunks through central's
    receiver until "verified", against moto's server in this process (``endpoint``: another).

    ``staged_resumed_elsewhere``: the last chunk through a second receiver (another replica),
    which has no running hash, so it completes the object and reads it back to hash it.
    moto keeps objects in this process's memory and is slow: indicative figures only."""
    import asyncio
    from datetime import timedelta

    import msgspec

    from central.access.auth import Principal
    from central.core.store import CentralStore
    from central.uploads.blobstore_s3 import S3BlobStore
    from central.uploads.receiver import Checksum, UploadReceiver
    from fleet.config import BlobSettings

    if endpoint is None:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
    station = Principal("station:bench", station_id="bench")
    data = os.urandom(size)
    sha256 = hashlib.sha256(data).hexdigest()
    chunks = [data[at : at + chunk_bytes] for at in range(0, size, chunk_bytes)]
    sums = [Checksum("sha256", hashlib.sha256(c).digest()) for c in chunks]

    async def body(piece: bytes):
        for at in range(0, len(piece), 64 << 10):  # as uvicorn hands a body over
            yield piece[at : at + (64 << 10)]

    def send(receiver: UploadReceiver, upload_id: str, first: int, last: int) -> None:
        for n in range(first, last):
            done = asyncio.run(receiver.append(station, upload_id, n * chunk_bytes, sums[n], body(chunks[n])))
            assert n < len(chunks) - 1 or done.verified

    root = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    times: dict[str, list[float]] = {"files": [], "staged": [], "staged_resumed_elsewhere": []}
    try:
        for r in range(rounds):
            for name in times:
                settings = {
                    "backend": "s3",
                    "endpoint_url": endpoint,
                    "bucket": f"bench-{uuid.uuid4().hex[:16]}",
                    "create_bucket": True,
                    "region": "eu-west-2",
                    "access_key_id": "bench",
                    "secret_access_key": "bench",  # moto takes anything; not a secret
                    "stage_uploads": name != "files",
                }
                blobs = S3BlobStore(msgspec.convert(settings, BlobSettings))
                blobs.check()
                store = CentralStore(root / f"{name}-{r}")
                receivers = [
                    UploadReceiver(
                        store,
                        blobs,
                        root / f"{name}-{r}" / f"uploads-{n}",
                        max_upload_bytes=size,
                        expiry=timedelta(hours=1),
                    )
                    for n in range(2)
                ]
                meta = UploadMetadata(
                    clip_id=uuid.uuid4(),
                    sha256=sha256,
                    device_serial="BWV-BENCH",
                    recorded_at=utc_now(),
                    filename="c.mp4",
                )
                start = time.perf_counter()
                upload, _ = receivers[0].create(station, size, encode_upload_metadata(meta))
                last = len(chunks) - 1 if name == "staged_resumed_elsewhere" else len(chunks)
                send(receivers[0], upload.upload_id, 0, last)
                send(receivers[1], upload.upload_id, last, len(chunks))
                times[name].append(time.perf_counter() - start)
                for receiver in receivers:
                    receiver.close()
                store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    medians = {k: median(v) for k, v in times.items()}
    return {
        "machine": machine(),
        "bytes": size,
        "chunk_bytes": chunk_bytes,
        "rounds": rounds,
        "server": endpoint,
        "seconds": times,
        "median_s": medians,
        "MiB_per_s": {k: mib_s(size, v) for k, v in medians.items()},
    }


if __name__ == "__main__":
    import json

    if sys.argv[1:2] == ["s3"]:  # python -m bench.upload s3 [MiB]: staged uploads against moto
        result = s3_staging(size=(int(sys.argv[2]) if sys.argv[2:] else 256) << 20)
        save("upload-s3", result)
    else:
        result = run()
        save("upload", result)
    print(json.dumps(result, indent=2, default=str))
