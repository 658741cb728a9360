"""Issue 7: upload throughput of our central against a peer, the reference tus server.

The peer is ``@tus/server`` with its ``FileStore`` on Node.js (bench/peer/server.js,
versions pinned in bench/peer/package-lock.json, installed with ``npm ci`` on first run).
Both receive the same clips from the same client: the station's sync worker and
``TusUploader``, same chunk size, same precomputed ``Upload-Checksum`` headers. The only
difference on the client side is ``plain_tus=True`` for the peer, which never answers
"verified": there an upload is done once the peer holds every byte.

What each server does per byte is not the same, and the report says so: central checks
each chunk's checksum, keeps the whole-file SHA-256, fsyncs before answering, commits the
offset to SQLite, and on the last byte checks the SHA-256, renames into the blob store
and records the clip; the peer's FileStore appends to a file and answers (no checksum, no
fsync; its offset is the file's size).

Rounds alternate the order of the two servers; each round starts a fresh server on an
empty folder (not timed) and ends with a ``sync`` (timed apart, not in the figures), so
neither inherits the other's dirty pages. A round's files are removed only when the whole
run ends: ext4 skips, one by one, inodes freed in the last few seconds when it allocates a
new one (``recently_deleted`` in its allocator), so removing 2,000 files just before the
next round made every file that round created cost more, ever more with each round
(round times rose 9 s → 16 s for both servers in one run; perf showed ext4's inode search
at 15 % of central's CPU). Two workloads: one big clip (MiB/s) and many
small clips through 4 concurrent uploads (clips/s). Medians over rounds; the ratio is
ours ÷ peer in throughput, so > 1 means ours is faster.

Then *standard clients*, not ours, on the same file against both servers (``--standard``):
``curl -T`` sending the whole file in one PATCH, and tuspy (the Python tus client) sending it
in fixed chunks without checksums; central still checks the whole file's SHA-256 and fsyncs
before each answer, the peer appends.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.common import bench_keys, machine, median, mib_s
from bench.upload import Central, LocalServer, free_port, ingest, station_settings
from fleet.clock import utc_now
from fleet.config import DEFAULT_CHUNK_BYTES
from simulation.camera import SimClip

PEER_DIR = Path(__file__).parent / "peer"
GiB = 1 << 30
SERVERS = ("ours", "peer")


def install_peer() -> dict:
    """``npm ci`` the pinned peer once; return the versions in use."""
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        raise SystemExit("bench peer needs Node.js (>= 20.19) and npm on PATH")
    if not (PEER_DIR / "node_modules" / "@tus" / "server").is_dir():
        print("installing the peer tus server (npm ci in bench/peer)", flush=True)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEER_DIR, check=True)
    version = subprocess.run([node, "--version"], check=True, capture_output=True, text=True).stdout.strip()
    packages = {
        name: json.loads((PEER_DIR / "node_modules" / "@tus" / name / "package.json").read_text())["version"]
        for name in ("server", "file-store")
    }
    return {"node": version, "@tus/server": packages["server"], "@tus/file-store": packages["file-store"]}


class Peer(LocalServer):
    """``node bench/peer/server.js`` on a free port, storing under ``root/files``."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.files = root / "files"
        self.files.mkdir(parents=True)
        with open(root / "peer.log", "wb") as log:
            self.proc = subprocess.Popen(
                ["node", str(PEER_DIR / "server.js"), str(self.port), str(self.files)],
                stdout=log,
                start_new_session=True,
            )
        self.wait_until_up(
            lambda: httpx.options(f"{self.url}/api/v1/uploads/").status_code == 204,
            f"the peer (log: {root / 'peer.log'})",
        )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def requeue(data_dir: str) -> None:
    """Put every clip of the station back in the queue, as if freshly ingested."""
    from station.store import StationStore

    store = StationStore(data_dir, keys=bench_keys())
    store.db.execute(
        "UPDATE clips SET state = 'queued', upload_url = NULL, attempts = 0, next_attempt_at = NULL, "
        "last_error = NULL, uploaded_bytes = 0, verified_at = NULL"
    )
    store.close()


def sync_worker_pass(root: Path, url: str, *, plain_tus: bool, count: int, concurrency: int, chunk_bytes: int) -> None:
    """The station's own sync pass over its queue: every clip must come back done."""
    from fleet.retry import RetryPolicy
    from station.store import StationStore
    from station.sync.clips import SyncWorker, TusUploader
    from station.sync.link import build_client

    settings = station_settings(root, url, concurrent_uploads=concurrency, chunk_bytes=chunk_bytes)
    store = StationStore(settings.data_dir, keys=bench_keys())
    policy = RetryPolicy()
    try:
        with build_client(settings) as client:
            uploader = TusUploader(
                client,
                store,
                policy,
                chunk_bytes=settings.chunk_bytes,
                chunk_algorithm=settings.chunk_checksum,
                plain_tus=plain_tus,
            )
            report = SyncWorker(store, uploader, policy, concurrency=concurrency).run_once()
    finally:
        store.close()
    if len(report.verified) != count:
        raise RuntimeError(
            f"{len(report.verified)} of {count} clips done ({len(report.waiting)} waiting, {len(report.failed)} failed)"
        )


def start(name: str, root: Path) -> Central | Peer:
    return Central(root) if name == "ours" else Peer(root)


def workload(root: Path, station: Path, *, rounds: int, count: int, concurrency: int, chunk_bytes: int) -> dict:
    """Alternate the two servers over ``rounds``; every round of each on a fresh server."""
    runs: dict[str, dict[str, list[float]]] = {
        n: {"seconds": [], "server_cpu_s": [], "client_cpu_s": [], "sync_after_s": []} for n in SERVERS
    }
    for r in range(rounds):
        for name in SERVERS if r % 2 == 0 else SERVERS[::-1]:
            where = root / f"{station.name}-{name}-{r}"
            requeue(str(station / "data"))
            server = start(name, where)
            try:
                cpu_before, client_before = cpu_seconds(server.proc.pid), time.process_time()
                began = time.perf_counter()
                sync_worker_pass(
                    station,
                    server.url,
                    plain_tus=name == "peer",
                    count=count,
                    concurrency=concurrency,
                    chunk_bytes=chunk_bytes,
                )
                runs[name]["seconds"].append(time.perf_counter() - began)
                runs[name]["server_cpu_s"].append(cpu_seconds(server.proc.pid) - cpu_before)
                runs[name]["client_cpu_s"].append(time.process_time() - client_before)
                began = time.perf_counter()
                subprocess.run(["sync"], check=True)  # the peer's bytes may still be in the page cache
                runs[name]["sync_after_s"].append(time.perf_counter() - began)
            finally:
                server.stop()  # its folder stays until the run ends (``run`` removes it): see below
            print(f"  round {r + 1}/{rounds} {name}: {runs[name]['seconds'][-1]:.2f} s", flush=True)
    return {name: {**values, "median": {k: median(v) for k, v in values.items()}} for name, values in runs.items()}


def summarise(runs: dict, per_round: Callable[[float], float], unit: str) -> dict:
    medians = {name: runs[name]["median"]["seconds"] for name in SERVERS}
    return {
        "rounds": runs,
        "median_s": medians,
        unit: {name: per_round(seconds) for name, seconds in medians.items()},
        "ratio_ours_vs_peer": medians["peer"] / medians["ours"],
    }


def run(
    size: int = GiB,
    rounds: int = 5,
    small_count: int = 2000,
    small_size: int = 64 * 1024,
    concurrency: int = 4,
    where: str | None = None,
    chunk_bytes: int | None = None,
    standard: bool = False,
) -> dict:
    versions = install_peer()
    chunk_bytes = chunk_bytes or DEFAULT_CHUNK_BYTES
    root = Path(tempfile.mkdtemp(prefix="bench-peer-", dir=where or Path.cwd()))
    try:
        result: dict = {
            "machine": machine(),
            "peer": versions,
            "rounds": rounds,
            "chunk_bytes": chunk_bytes,
            "directory": str(root.parent),
        }
        if size:
            big = root / "station-big"
            ingest(station_settings(big, "http://unused", chunk_bytes=chunk_bytes), [SimClip(size, utc_now(), seed=42)])
            print(f"one clip of {size / GiB:.2f} GiB, {rounds} rounds each", flush=True)
            runs = workload(root, big, rounds=rounds, count=1, concurrency=1, chunk_bytes=chunk_bytes)
            result["big_clip"] = {"bytes": size, **summarise(runs, lambda s: mib_s(size, s), "MiB_per_s")}
            shutil.rmtree(big, ignore_errors=True)
        if small_count:
            small = root / "station-small"
            ingest(
                station_settings(small, "http://unused", chunk_bytes=chunk_bytes),
                [SimClip(small_size, utc_now(), seed=i) for i in range(small_count)],
            )
            print(
                f"{small_count} clips of {small_size >> 10} KiB, {concurrency} at once, {rounds} rounds each",
                flush=True,
            )
            runs = workload(
                root, small, rounds=rounds, count=small_count, concurrency=concurrency, chunk_bytes=chunk_bytes
            )
            result["small_clips"] = {
                "clips": small_count,
                "clip_bytes": small_size,
                "concurrency": concurrency,
                **summarise(runs, lambda s: small_count / s, "clips_per_s"),
            }
        if standard and size:
            print(f"standard clients (curl, tuspy) with {size / GiB:.2f} GiB, {rounds} rounds each", flush=True)
            result["standard_clients"] = standard_clients(root, size, rounds)
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


STANDARD_CHUNK = 16 << 20
"""tuspy's chunks: fixed, no checksum (its default would be one PATCH, as curl's)."""


def standard_upload(server: Central | Peer, client: str, path: Path, sha256: str) -> None:
    """One whole upload of ``path`` by a standard tus client; raises unless every byte is taken."""
    import base64
    import uuid

    from bench.upload import ADMIN
    from fleet.protocol import UploadMetadata, encode_upload_metadata

    size = path.stat().st_size
    meta = UploadMetadata(
        clip_id=uuid.uuid4(), sha256=sha256, device_serial="BWV-000009", recorded_at=utc_now(), filename=path.name
    )
    headers = {"Authorization": f"Bearer {ADMIN}", "Tus-Resumable": "1.0.0"}
    if client == "tuspy":
        from tusclient.client import TusClient

        fields = dict(pair.split(" ") for pair in encode_upload_metadata(meta).split(","))
        plain = {key: base64.b64decode(value).decode() for key, value in fields.items()}
        uploader = TusClient(f"{server.url}/api/v1/uploads/", headers=headers).uploader(
            str(path), chunk_size=STANDARD_CHUNK, metadata=plain
        )
        uploader.upload()
        if uploader.offset != size:
            raise RuntimeError(f"tuspy stopped at {uploader.offset} of {size}")
        return
    created = httpx.post(
        f"{server.url}/api/v1/uploads/",
        headers={**headers, "Upload-Length": str(size), "Upload-Metadata": encode_upload_metadata(meta)},
    )
    created.raise_for_status()
    location = created.headers["Location"]
    out = subprocess.run(
        [
            *("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PATCH", "-T", str(path)),
            *("-H", f"Authorization: Bearer {ADMIN}", "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0"),
            *("-H", "Content-Type: application/offset+octet-stream", "-H", "Expect:"),
            location if location.startswith("http") else server.url + location,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    if out.stdout != "204":
        raise RuntimeError(f"curl PATCH answered {out.stdout}")


def standard_clients(root: Path, size: int, rounds: int) -> dict:
    """Each standard client against each server, rounds alternating the servers' order, a fresh server each time."""
    import hashlib

    path = root / "standard.bin"
    with open(path, "wb") as f:
        for offset in range(0, size, 16 << 20):
            f.write(os.urandom(min(16 << 20, size - offset)))
    with open(path, "rb") as f:
        sha256 = hashlib.file_digest(f, "sha256").hexdigest()
    result = {}
    for client in ("curl", "tuspy"):
        seconds: dict[str, list[float]] = {name: [] for name in SERVERS}
        for r in range(rounds):
            for name in SERVERS if r % 2 == 0 else SERVERS[::-1]:
                server = start(name, root / f"standard-{client}-{name}-{r}")
                try:
                    began = time.perf_counter()
                    standard_upload(server, client, path, sha256)
                    seconds[name].append(time.perf_counter() - began)
                finally:
                    server.stop()
                subprocess.run(["sync"], check=True)
                print(f"  {client} round {r + 1}/{rounds} {name}: {seconds[name][-1]:.2f} s", flush=True)
        medians = {name: median(v) for name, v in seconds.items()}
        result[client] = {
            "chunk_bytes": STANDARD_CHUNK if client == "tuspy" else size,
            "seconds": seconds,
            "median_s": medians,
            "MiB_per_s": {name: mib_s(size, v) for name, v in medians.items()},
            "ratio_ours_vs_peer": medians["peer"] / medians["ours"],
        }
    return result


def headline(result: dict) -> dict:
    """The figures BENCHMARKS.md quotes, without every round."""
    out = {k: v for k, v in result.items() if k not in ("big_clip", "small_clips")}
    if "standard_clients" in result:
        out["standard_clients"] = {
            client: {k: v for k, v in w.items() if k != "seconds"} for client, w in result["standard_clients"].items()
        }
    for workload_name in ("big_clip", "small_clips"):
        if workload_name in result:
            w = result[workload_name]
            out[workload_name] = {
                **{k: v for k, v in w.items() if k != "rounds"},
                "median": {name: w["rounds"][name]["median"] for name in SERVERS},
            }
    return out
