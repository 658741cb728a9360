"""P1 ingest: copy + hash + encrypt + fsync + queue of ≥ 1 GiB of clips, against ``cp`` + ``sync``
(``sync`` of the copies and their folder, so only these bytes).

Each round (cp+sync, the station's ingest, the same ingest with a plain copy instead of the
sealed one, openssl dgst) runs on the same files, the writers in rotating order, with the page
cache dropped before each run when the kernel allows it; medians and ratios are reported.
"ingest-plain" is the ingest as it was before clips were sealed at rest (the kernel copies,
``copy_and_hash``), everything else alike, so the cost of sealing is measured side by side.
With ``before=TREE`` (``--before DIR``: a checkout of older code, e.g. ``git archive``), an
"ingest-before" side runs that tree's ingest in a process of its own, timed there by this file's
``one_ingest``, in the same rounds. Each ingest is timed from its station's database open to its
clips queued and ``INGESTED.json`` written (copy + hash + encrypt + fsync + queue: what issue 21
names the ingest, and what ``cp`` + ``sync`` compares with); the camera's wipe after it is timed
apart, and the whole dock pass (ingest and wipe) reported beside it (a station opens its database
once, not per camera: creating and closing that new database is reported apart too). Also: peak
RSS of a station process ingesting one 4 GiB clip (sealed), and with ``stages`` what each step
of a sealed ingest costs alone (``stages``).
"""

from __future__ import annotations

import hashlib
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import bench_keys, drop_caches, machine, median, mib_s, save, timed
from fleet.clock import utc_now
from simulation.camera import SimClip, dock_camera

GiB = 1 << 30


def make_dock(root: Path, total: int, clip_size: int) -> Path:
    dock = root / "dock"
    clips = [SimClip(clip_size, utc_now(), seed=i) for i in range(total // clip_size)]
    dock_camera(dock, "BWV-000001", clips, folder_name="cam")
    return dock


def one_ingest(dock: Path, data: Path, sealed: bool = True) -> tuple[float, float, float]:
    """Ingest ``dock``'s camera into a new station in ``data``: (seconds the ingest took to its
    clips queued, seconds creating and closing the station's database took, seconds wiping the
    camera took). A station opens its database once and ingests camera after camera, so only the
    first is the ingest's; the wipe comes after the ingest's commit, on the camera's storage."""
    from fleet.config import DEFAULT_CHUNK_BYTES
    from station import ingest
    from station.store import StationStore

    real = ingest.copy_hash_and_seal
    real_wipe = ingest.Ingestor._wipe
    wiping: list[float] = []

    def timed_wipe(self, *args, **kwargs):
        began = time.perf_counter()
        try:
            return real_wipe(self, *args, **kwargs)
        finally:
            wiping.append(time.perf_counter() - began)

    ingest.Ingestor._wipe = timed_wipe  # type: ignore[method-assign]
    if not sealed:  # the copy as it was before sealing: for comparison only, never in a station
        ingest.copy_hash_and_seal = _plain_copy  # type: ignore[assignment]
    began = time.perf_counter()
    store = StationStore(data, keys=bench_keys())
    opened = time.perf_counter()
    try:
        folder = dock / "cam"
        # As a station runs: the upload's chunk checksums are computed in the same pass.
        ingest.Ingestor(store, "bench", dock, chunk_bytes=DEFAULT_CHUNK_BYTES).ingest_folder(folder)
        ingested = time.perf_counter()
    finally:
        ingest.copy_hash_and_seal = real
        ingest.Ingestor._wipe = real_wipe  # type: ignore[method-assign]
        store.close()
    wiped = sum(wiping)
    return ingested - opened - wiped, (opened - began) + (time.perf_counter() - ingested), wiped


def _plain_copy(src, dst, _sealer, _size, chunk_bytes=None, **options):
    from fleet.hashing import copy_and_hash

    return copy_and_hash(src, dst, chunk_bytes, **options)


def restore_dock(pristine: Path, dock: Path) -> None:
    """Ingest wipes the camera: give it its clips back, as copies (ingest refuses a file with a
    second name: a camera's storage has no hard links; ``drop_caches`` then writes them out)."""
    if dock.exists():
        shutil.rmtree(dock)
    shutil.copytree(pristine, dock)


def run(
    total: int = GiB,
    clip_size: int = 128 << 20,
    rounds: int = 3,
    rss_clip: int = 4 * GiB,
    before: Path | None = None,
    with_stages: bool = False,
) -> dict:
    root = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=Path.cwd()))
    try:
        pristine = make_dock(root / "pristine", total, clip_size)
        files = sorted((pristine / "cam" / "clips").glob("*.mp4"))
        nbytes = sum(f.stat().st_size for f in files)
        dropped = drop_caches()
        times: dict[str, list[float]] = {"cp+sync": [], "ingest": [], "ingest-plain": [], "openssl": []}
        if before:
            times["ingest-before"] = []
        database: dict[str, list[float]] = {name: [] for name in times if name.startswith("ingest")}
        """Seconds each ingest side spent creating and closing its new station's database (not the ingest's)."""
        wipes: dict[str, list[float]] = {name: [] for name in times if name.startswith("ingest")}
        """Seconds each ingest side spent wiping the camera after its commit."""
        loads: list[float] = []

        outputs = iter(range(1_000_000))

        def fresh(name: str) -> Path:
            # Every run writes to a new folder and nothing is deleted until the end: deleting a
            # GiB just before a run makes the (discard-mounted) disk slow for whichever runs next.
            return root / "runs" / f"{name}-{next(outputs)}"

        def cp_sync() -> None:
            target = fresh("cp")
            target.mkdir(parents=True)
            subprocess.run(["cp", *map(str, files), str(target)], check=True)
            # `sync` of these files and their folder (fsync each, as ingest does its own): a bare
            # `sync` writes out every process's dirty pages, on a shared host others' too.
            subprocess.run(["sync", *(str(target / f.name) for f in files), str(target)], check=True)

        def ingest() -> tuple[float, float, float]:
            return one_ingest(root / "dock", fresh("station"))

        def ingest_plain() -> tuple[float, float, float]:
            return one_ingest(root / "dock", fresh("plain"), sealed=False)

        def openssl() -> None:
            subprocess.run(["openssl", "dgst", "-sha256", *map(str, files)], check=True, capture_output=True)

        runs: dict[str, Callable[[], object]] = {"cp+sync": cp_sync, "openssl": openssl}
        ingests: dict[str, Callable[[], tuple[float, float, float]]] = {"ingest": ingest, "ingest-plain": ingest_plain}
        """The ingest sides time themselves (the "before" one in its own process)."""
        if before:
            ingests["ingest-before"] = lambda: child_ingest(before, root / "dock", fresh("before"))
        runs.update(ingests)
        writers = ["cp+sync", *ingests]
        # The disk here is virtual: a run right after a GiB of writes is slowed while the host
        # drains them. So one unrecorded warm-up of each writer, then each round rotates which
        # writer goes first, so each follows the others' writes equally often.
        for name in writers:
            restore_dock(pristine, root / "dock")
            drop_caches()
            runs[name]()
        for r in range(rounds):
            k = r % len(writers)
            for name in ["openssl", *writers[k:], *writers[:k]]:
                restore_dock(pristine, root / "dock")
                drop_caches()
                if name in ingests:
                    ingest_s, database_s, wipe_s = ingests[name]()
                    times[name].append(ingest_s)
                    database[name].append(database_s)
                    wipes[name].append(wipe_s)
                else:
                    times[name].append(timed(runs[name]))
            loads.append(os.getloadavg()[0])
        medians = {k: median(v) for k, v in times.items()}
        result = {
            "machine": machine(),
            "bytes": nbytes,
            "files": len(files),
            "rounds": rounds,
            "load_average_1min_after_each_round": loads,
            "page_cache_dropped": dropped,
            "seconds": times,
            "median_s": medians,
            "database_create_and_close_median_s": {k: median(v) for k, v in database.items()},
            "camera_wipe_median_s": {k: median(v) for k, v in wipes.items()},
            "ratio_dock_pass_vs_cp_sync": medians["cp+sync"]
            / median([i + w for i, w in zip(times["ingest"], wipes["ingest"], strict=True)]),
            "MiB_per_s": {k: mib_s(nbytes, v) for k, v in medians.items()},
            "ratio_ingest_vs_cp_sync": medians["cp+sync"] / medians["ingest"],
            "ratio_ingest_plain_vs_cp_sync": medians["cp+sync"] / medians["ingest-plain"],
            "ratio_ingest_vs_ingest_plain": medians["ingest-plain"] / medians["ingest"],
            "ratio_ingest_vs_openssl": medians["openssl"] / medians["ingest"],
        }
        if before:
            result["ratio_ingest_before_vs_cp_sync"] = medians["cp+sync"] / medians["ingest-before"]
            result["ratio_ingest_vs_ingest_before"] = medians["ingest-before"] / medians["ingest"]
        if with_stages:
            result["stages"] = stages(files, root / "stages", rounds)
        shutil.rmtree(root / "pristine")
        shutil.rmtree(root / "runs")  # the timed runs are over: their GiBs are not needed for the next part
        if rss_clip:
            result["peak_rss_4gib_clip_mib"] = peak_rss_ingest(root / "rss", rss_clip)
            if before:
                result["peak_rss_4gib_clip_mib_before"] = peak_rss_ingest(root / "rss-before", rss_clip, before)
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


def child_ingest(tree: Path, dock: Path, data: Path) -> tuple[float, float, float]:
    """``one_ingest`` of ``dock`` with ``tree``'s code, in a process of its own: the timing is this
    file's, so both sides are timed alike whatever the older tree's benchmark timed."""
    code = (
        "import runpy, sys; from pathlib import Path; "
        "one_ingest = runpy.run_path(sys.argv[3])['one_ingest']; "
        "print(*one_ingest(Path(sys.argv[1]), Path(sys.argv[2])))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", code, str(dock.resolve()), str(data.resolve()), str(Path(__file__).resolve())],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        check=True,
        capture_output=True,
        text=True,
    )
    ingest_s, database_s, wipe_s = ran.stdout.split()[-3:]
    return float(ingest_s), float(database_s), float(wipe_s)


def peak_rss_ingest(root: Path, size: int, tree: Path | None = None) -> float:
    """Peak RSS of a fresh process that ingests one clip of ``size`` bytes (with ``tree``'s code)."""
    dock = root / "dock"
    dock_camera(dock, "BWV-000002", [SimClip(size, utc_now(), clip_id=str(uuid.uuid4()), seed=1)], folder_name="cam")
    # The child reports its own high-water mark (VmHWM): a child's ru_maxrss starts from its
    # parent's RSS at the fork (Linux keeps the larger across exec), and this process is bigger.
    code = (
        "import re, sys; from bench.ingest import one_ingest; from pathlib import Path; "
        "one_ingest(Path(sys.argv[1]), Path(sys.argv[2])); "
        "print(re.search(r'VmHWM:\\s*(\\d+) kB', open('/proc/self/status').read())[1])"
    )
    ran = subprocess.run(
        [sys.executable, "-c", code, str(dock.resolve()), str((root / "station").resolve())],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)} if tree else None,
        check=True,
        capture_output=True,
        text=True,
    )
    return int(ran.stdout.split()[-1]) / 1024


def stages(files: list[Path], root: Path, rounds: int) -> dict[str, dict[str, float]]:
    """Each step of a sealed ingest of ``files`` alone, as an ingest does it (4 MiB blocks), wall and
    CPU seconds (medians): which one sets the pace, and whether the disk can read and write at once."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from fleet.cipher import SEGMENT_BYTES, TAG_BYTES
    from fleet.directio import preallocate
    from fleet.hashing import COPY_BUFFER_BYTES, new_checksum

    block = COPY_BUFFER_BYTES
    nbytes = sum(f.stat().st_size for f in files)
    data = memoryview(mmap.mmap(-1, block))
    data[:] = os.urandom(block)
    sealed = memoryview(mmap.mmap(-1, block + block // SEGMENT_BYTES * TAG_BYTES))
    root.mkdir(parents=True)
    names = iter(range(1_000_000))

    def in_memory(step: Callable[[], object]) -> Callable[[], None]:
        def steps() -> None:
            for _ in range(nbytes // block):
                step()

        return steps

    def read_cached() -> None:  # as cp and openssl read: through the page cache, its read-ahead
        buffer = memoryview(bytearray(block))
        for f in files:
            fd = os.open(f, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            while os.readv(fd, [buffer]):
                pass
            os.close(fd)

    def two_at_once(job: Callable[[int], object], count: int) -> None:
        """``job(0..count-1)``, two at a time (as the ingest keeps two reads and two writes in flight)."""
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(job, range(count)))

    def read_direct() -> None:  # as the ingest reads
        buffers = [memoryview(mmap.mmap(-1, block)) for _ in range(2)]
        for f in files:
            fd = os.open(f, os.O_RDONLY | os.O_DIRECT)

            def read(n: int, fd: int = fd) -> int:  # two reads may share a buffer: nothing looks at it
                return os.preadv(fd, [buffers[n % 2]], n * block)

            try:
                two_at_once(read, -(-f.stat().st_size // block))
            finally:
                os.close(fd)

    def write_direct() -> None:  # as the ingest writes: preallocated, two in flight, one fsync
        fd = os.open(root / f"direct-{next(names)}", os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
        try:
            preallocate(fd, nbytes)
            two_at_once(lambda n: os.pwrite(fd, data, n * block), nbytes // block)
            os.fsync(fd)
        finally:
            os.close(fd)

    def read_and_write() -> None:
        reading = threading.Thread(target=read_direct)
        reading.start()
        write_direct()
        reading.join()

    sha256, crc = hashlib.sha256(), new_checksum("crc32c")
    aead, nonce = AESGCM(os.urandom(32)), os.urandom(12)

    def seal() -> None:
        for at in range(0, block, SEGMENT_BYTES):
            out = at // SEGMENT_BYTES * (SEGMENT_BYTES + TAG_BYTES)
            piece = data[at : at + SEGMENT_BYTES]
            aead.encrypt_into(nonce, piece, b"aad", sealed[out : out + SEGMENT_BYTES + TAG_BYTES])

    steps: dict[str, Callable[[], None]] = {
        "read cold through the page cache (as cp)": read_cached,
        "read cold direct, two in flight (as ingest)": read_direct,
        "SHA-256 (in memory)": in_memory(lambda: sha256.update(data)),
        "CRC-32C chunk checksums (in memory)": in_memory(lambda: crc.update(data)),
        "AES-256-GCM seal, 1 MiB segments (in memory)": in_memory(seal),
        "write direct, two in flight, + fsync": write_direct,
        "read direct while writing direct (the disk's floor)": read_and_write,
    }
    measured: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            drop_caches()
            cpu = time.process_time()
            wall = timed(step)
            measured[name].append((wall, time.process_time() - cpu))
    shutil.rmtree(root)
    return {
        name: {
            "wall_s": median([w for w, _ in runs]),
            "cpu_s": median([c for _, c in runs]),
            "MiB_per_s": mib_s(nbytes, median([w for w, _ in runs])),
        }
        for name, runs in measured.items()
    }


if __name__ == "__main__":
    import json

    print(json.dumps(save("ingest", run()), indent=2))
