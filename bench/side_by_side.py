"""Standard tus clients against several centrals (source trees) and the peer, side by side.

    .venv/bin/python -m bench.side_by_side ROUNDS CLIENTS NAME=TREE [NAME=TREE ...]

e.g. ``-m bench.side_by_side 5 curl,tuspy before=/tmp/before after=.``, where ``/tmp/before``
holds ``git archive <commit>`` of the code before. Each round runs every central and then
``@tus/server`` (bench/peer.py), rotating who goes first, each a fresh server on an empty
folder, with the same 1 GiB file and the same client (``bench.peer.standard_upload``): the
way to compare code before and after a change when the host's noise swamps separate runs.
Prints each round, then the medians and each central's ratio to the peer (its time ÷ ours).

    .venv/bin/python -m bench.side_by_side ROUNDS station before=/tmp/before after=.

does the same with our station's own client (``bench.peer.sync_worker_pass``: the sync worker,
64 MiB chunks, the sealed copy) on ``bench peer``'s two workloads, one 1 GiB clip and 2,000 ×
64 KiB, 4 at once: each tree's client against its own central and against the peer, so the
client's changes count on both sides as they do in ``bench peer``. Each pass runs in a
process of that tree; only the pass is timed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import peer
from bench.common import median, side_by_side_args
from bench.upload import Central

SIZE = 1 << 30


def main(argv: list[str]) -> dict:
    rounds, clients, trees = int(argv[0]), argv[1].split(","), dict(arg.split("=", 1) for arg in argv[2:])
    trees = {name: str(Path(tree).resolve()) for name, tree in trees.items()}
    if clients == ["station"]:
        return station_client(rounds, trees)
    peer.install_peer()
    root = Path(tempfile.mkdtemp(prefix="bench-side-"))
    here = Path.cwd()
    os.chdir(root)  # so each central imports its own tree (PYTHONPATH), not the current directory's
    try:
        path = root / "standard.bin"
        with open(path, "wb") as f:
            for _ in range(0, SIZE, 16 << 20):
                f.write(os.urandom(16 << 20))
        with open(path, "rb") as f:
            sha256 = hashlib.file_digest(f, "sha256").hexdigest()
        names = [*trees, "peer"]
        result = {}
        for client in clients:
            seconds: dict[str, list[float]] = {name: [] for name in names}
            for r in range(rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    where = root / f"{client}-{name}-{r}"
                    server = peer.Peer(where) if name == "peer" else _central(where, trees[name])
                    try:
                        began = time.perf_counter()
                        peer.standard_upload(server, client, path, sha256)
                        seconds[name].append(time.perf_counter() - began)
                    finally:
                        server.stop()
                    subprocess.run(["sync"], check=True)
                    print(f"{client} round {r + 1}/{rounds} {name}: {seconds[name][-1]:.2f} s", flush=True)
            medians = {name: median(v) for name, v in seconds.items()}
            result[client] = {
                "seconds": seconds,
                "median_s": medians,
                "ratio_to_peer": {name: medians["peer"] / medians[name] for name in trees},
            }
            print(client, json.dumps(medians), json.dumps(result[client]["ratio_to_peer"]), flush=True)
        return result
    finally:
        os.chdir(here)
        shutil.rmtree(root, ignore_errors=True)


def _central(where: Path, tree: str) -> Central:
    os.environ["PYTHONPATH"] = tree
    try:
        return Central(where)
    finally:
        del os.environ["PYTHONPATH"]


WORKLOADS = {"1 GiB": (1, SIZE), "2,000 x 64 KiB": (2000, 64 << 10)}
PASS = """
import json, sys, time
from pathlib import Path
from bench import peer
from fleet.config import DEFAULT_CHUNK_BYTES
station, url, plain, count = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "peer", int(sys.argv[4])
peer.requeue(str(station / "data"))
began = time.perf_counter()
peer.sync_worker_pass(station, url, plain_tus=plain, count=count, concurrency=1 if count == 1 else 4,
                      chunk_bytes=DEFAULT_CHUNK_BYTES)
print(json.dumps(time.perf_counter() - began))
"""
"""One pass of a tree's station client over a station's whole queue (re-queued first), timed inside."""


def station_client(rounds: int, trees: dict[str, str]) -> dict:
    """Each tree's station client against its own central and against the peer, rotating the order."""
    from bench.upload import ingest, station_settings
    from fleet.clock import utc_now
    from fleet.config import DEFAULT_CHUNK_BYTES
    from simulation.camera import SimClip

    peer.install_peer()
    root = Path(tempfile.mkdtemp(prefix="bench-side-", dir=Path.cwd()))
    here = Path.cwd()
    os.chdir(root)  # so each central imports its own tree (PYTHONPATH), not the current directory's
    try:
        result = {}
        for workload, (count, size) in WORKLOADS.items():
            station = root / f"station-{count}"
            ingest(
                station_settings(station, "http://unused", chunk_bytes=DEFAULT_CHUNK_BYTES),
                [SimClip(size, utc_now(), seed=i) for i in range(count)],
            )
            runs = [(tree, server) for tree in trees for server in ("ours", "peer")]
            seconds: dict[str, list[float]] = {f"{tree}/{server}": [] for tree, server in runs}
            for r in range(rounds):
                for tree, server in runs[r % len(runs) :] + runs[: r % len(runs)]:
                    where = root / f"{count}-{tree}-{server}-{r}"
                    process = peer.Peer(where) if server == "peer" else _central(where, trees[tree])
                    try:
                        out = subprocess.run(
                            [sys.executable, "-c", PASS, str(station), process.url, server, str(count)],
                            env={**os.environ, "PYTHONPATH": trees[tree]},
                            cwd=root,
                            check=True,
                            capture_output=True,
                            text=True,
                        )
                    finally:
                        process.stop()
                    seconds[f"{tree}/{server}"].append(json.loads(out.stdout.splitlines()[-1]))
                    subprocess.run(["sync"], check=True)
                    print(f"{workload} round {r + 1}/{rounds} {tree}/{server}: {seconds[f'{tree}/{server}'][-1]:.2f} s")
            medians = {name: median(v) for name, v in seconds.items()}
            result[workload] = {
                "seconds": seconds,
                "median_s": medians,
                "ratio_to_peer": {tree: medians[f"{tree}/peer"] / medians[f"{tree}/ours"] for tree in trees},
            }
            print(workload, json.dumps(medians), json.dumps(result[workload]["ratio_to_peer"]), flush=True)
        return result
    finally:
        os.chdir(here)
        shutil.rmtree(root, ignore_errors=True)


def _rounds_and_clients(first: list[str]) -> bool:
    """ROUNDS, a whole number above 0, and CLIENTS."""
    return len(first) == 2 and first[0].isdigit() and int(first[0]) > 0


if __name__ == "__main__":
    print(json.dumps(main(side_by_side_args(sys.argv[1:], _rounds_and_clients, __doc__ or ""))))
