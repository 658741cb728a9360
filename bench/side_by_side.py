"""Standard tus clients against several centrals (source trees) and the peer, side by side.

    .venv/bin/python -m bench.side_by_side ROUNDS CLIENTS NAME=TREE [NAME=TREE ...]

e.g. ``-m bench.side_by_side 5 curl,tuspy before=/tmp/before after=.``, where ``/tmp/before``
holds ``git archive <commit>`` of the code before. Each round runs every central and then
``@tus/server`` (bench/peer.py), rotating who goes first, each a fresh server on an empty
folder, with the same 1 GiB file and the same client (``bench.peer.standard_upload``): the
way to compare code before and after a change when the host's noise swamps separate runs.
Prints each round, then the medians and each central's ratio to the peer (its time ÷ ours).
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
from bench.common import median
from bench.upload import Central

SIZE = 1 << 30


def main(argv: list[str]) -> dict:
    rounds, clients, trees = int(argv[0]), argv[1].split(","), dict(arg.split("=", 1) for arg in argv[2:])
    trees = {name: str(Path(tree).resolve()) for name, tree in trees.items()}
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


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
