"""Shared bits of the benchmarks: timing, medians, the machine line, writing results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).parent / "out"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    return f"{os.cpu_count()} cores, {cpu}, {mem:.0f} GiB RAM, {system}"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


def drop_caches() -> bool:
    """Flush dirty pages and drop the page cache when allowed (root on a real kernel)."""
    subprocess.run(["sync"], check=True)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def save(name: str, result: dict) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    return path


def mib_s(nbytes: int, seconds: float) -> float:
    return nbytes / (1 << 20) / seconds


def bench_keys():
    """The station key of benchmark stations: a BENCHMARK value, not a secret."""
    from fleet.cipher import Keyring

    return Keyring(bytes.fromhex("be" * 32))


def side_by_side_args(argv: list[str], leading: Callable[[list[str]], bool], doc: str) -> list[str]:
    """The arguments of a side-by-side run: those before the trees, checked by ``leading``, then
    NAME=TREE, each TREE a folder. Else ``doc`` on stderr and exit 2, never a traceback."""
    import sys

    first = [a for a in argv if "=" not in a]
    trees = [a for a in argv if "=" in a]
    if not trees or not leading(first) or not all(Path(a.split("=", 1)[1]).is_dir() for a in trees):
        print(doc, file=sys.stderr)
        sys.exit(2)
    return argv
