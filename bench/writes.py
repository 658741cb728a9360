"""Why central writes uploads past the page cache: 1 GiB in 4 MiB batches, fsync every 64 MiB.

Side by side, alternating, both through ``fleet.directio.PartWriter``: *buffered* without
a direct descriptor (every byte through the page cache, as central wrote before), *ours* as
central writes now (the aligned middle of each batch O_DIRECT). Both fsync every 64 MiB and at
the end, as central does per chunk. Each round writes a new file and deletes it after.
Reported: wall and kernel (system) CPU of each, medians.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path

from bench.common import machine, median, mib_s
from fleet.directio import PartWriter

BATCH = 4 << 20
CHUNK = 64 << 20


def _write(path: Path, total: int, direct_io: bool, batch: list[bytes]) -> tuple[float, float]:
    before, began = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    writer = PartWriter(2 * BATCH)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    direct = writer.open_direct(path) if direct_io else None
    try:
        for offset in range(0, total, BATCH):
            writer.write(fd, direct, batch, offset)
            if (offset + BATCH) % CHUNK == 0:
                os.fsync(fd)
        os.fsync(fd)
    finally:
        os.close(fd)
        if direct is not None:
            os.close(direct)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter() - began, after.ru_stime - before.ru_stime


def run(total: int = 1 << 30, rounds: int = 5, where: str | None = None) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="bench-writes-", dir=where or Path.cwd()))
    batch = [os.urandom(64 << 10) for _ in range(BATCH // (64 << 10))]  # pieces as received
    runs: dict[str, dict[str, list[float]]] = {n: {"seconds": [], "system_cpu_s": []} for n in ("buffered", "ours")}
    try:
        for r in range(rounds):
            for name in ("buffered", "ours") if r % 2 == 0 else ("ours", "buffered"):
                path = folder / f"{name}-{r}.part"
                seconds, system = _write(path, total, name == "ours", batch)
                path.unlink()
                runs[name]["seconds"].append(seconds)
                runs[name]["system_cpu_s"].append(system)
                print(f"  round {r + 1}/{rounds} {name}: {seconds:.2f} s ({system:.2f} s system CPU)", flush=True)
    finally:
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()
    medians = {name: {k: median(v) for k, v in values.items()} for name, values in runs.items()}
    return {
        "machine": machine(),
        "bytes": total,
        "rounds": rounds,
        "directory": str(folder.parent),
        "runs": runs,
        "median": medians,
        "MiB_per_s": {n: mib_s(total, m["seconds"]) for n, m in medians.items()},
        "ratio_ours_vs_buffered": medians["buffered"]["seconds"] / medians["ours"]["seconds"],
    }
