"""P1 ingest: copy + hash + encrypt + fsync + queue of ≥ 1 GiB of clips, against ``cp`` + ``sync``.

Each round (cp+sync, the station's ingest, the same ingest with a plain copy instead of the
sealed one, openssl dgst) runs on the same files, the writers in rotating order, with the page
cache dropped before each run when the kernel allows it; medians and ratios are reported.
"ingest-plain" is the ingest as it was before clips were sealed at rest (the kernel copies,
``copy_and_hash``), everything else alike, so the cost of sealing is measured side by side.
Also: peak RSS of a station process ingesting one 4 GiB clip (sealed).
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
import tempfile
import uuid
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


def one_ingest(dock: Path, data: Path, sealed: bool = True) -> None:
    from fleet.config import DEFAULT_CHUNK_BYTES
    from station import ingest
    from station.store import StationStore

    store = StationStore(data, keys=bench_keys())
    real = ingest.copy_hash_and_seal
    if not sealed:  # the copy as it was before sealing: for comparison only, never in a station
        ingest.copy_hash_and_seal = _plain_copy  # type: ignore[assignment]
    try:
        folder = dock / "cam"
        # As a station runs: the upload's chunk checksums are computed in the same pass.
        ingest.Ingestor(store, "bench", dock, chunk_bytes=DEFAULT_CHUNK_BYTES).ingest_folder(folder)
    finally:
        ingest.copy_hash_and_seal = real
        store.close()


def _plain_copy(src, dst, _sealer, _size, chunk_bytes=None, **options):
    from fleet.hashing import copy_and_hash

    return copy_and_hash(src, dst, chunk_bytes, **options)


def restore_dock(pristine: Path, dock: Path) -> None:
    """Ingest wipes the camera: give it its clips back, as copies (ingest refuses a file with a
    second name: a camera's storage has no hard links; ``drop_caches`` then writes them out)."""
    if dock.exists():
        shutil.rmtree(dock)
    shutil.copytree(pristine, dock)


def run(total: int = GiB, clip_size: int = 128 << 20, rounds: int = 3, rss_clip: int = 4 * GiB) -> dict:
    root = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=Path.cwd()))
    try:
        pristine = make_dock(root / "pristine", total, clip_size)
        files = sorted((pristine / "cam" / "clips").glob("*.mp4"))
        nbytes = sum(f.stat().st_size for f in files)
        dropped = drop_caches()
        times: dict[str, list[float]] = {"cp+sync": [], "ingest": [], "ingest-plain": [], "openssl": []}

        outputs = iter(range(1_000_000))

        def fresh(name: str) -> Path:
            # Every run writes to a new folder and nothing is deleted until the end: deleting a
            # GiB just before a run makes the (discard-mounted) disk slow for whichever runs next.
            return root / "runs" / f"{name}-{next(outputs)}"

        def cp_sync() -> None:
            target = fresh("cp")
            target.mkdir(parents=True)
            subprocess.run(["cp", *map(str, files), str(target)], check=True)
            subprocess.run(["sync"], check=True)

        def ingest() -> None:
            one_ingest(root / "dock", fresh("station"))

        def ingest_plain() -> None:
            one_ingest(root / "dock", fresh("plain"), sealed=False)

        def openssl() -> None:
            subprocess.run(["openssl", "dgst", "-sha256", *map(str, files)], check=True, capture_output=True)

        runs = {"cp+sync": cp_sync, "ingest": ingest, "ingest-plain": ingest_plain, "openssl": openssl}
        writers = ["cp+sync", "ingest", "ingest-plain"]
        # The disk here is virtual: a run right after a GiB of writes is slowed while the host
        # drains them. So one unrecorded warm-up of each writer, then each round rotates which
        # writer goes first, so each follows the others' writes equally often.
        for name in writers:
            restore_dock(pristine, root / "dock")
            drop_caches()
            runs[name]()
        for r in range(rounds):
            for name in ["openssl", *writers[r % 3 :], *writers[: r % 3]]:
                restore_dock(pristine, root / "dock")
                drop_caches()
                times[name].append(timed(runs[name]))
        medians = {k: median(v) for k, v in times.items()}
        result = {
            "machine": machine(),
            "bytes": nbytes,
            "files": len(files),
            "rounds": rounds,
            "page_cache_dropped": dropped,
            "seconds": times,
            "median_s": medians,
            "MiB_per_s": {k: mib_s(nbytes, v) for k, v in medians.items()},
            "ratio_ingest_vs_cp_sync": medians["cp+sync"] / medians["ingest"],
            "ratio_ingest_plain_vs_cp_sync": medians["cp+sync"] / medians["ingest-plain"],
            "ratio_ingest_vs_ingest_plain": medians["ingest-plain"] / medians["ingest"],
            "ratio_ingest_vs_openssl": medians["openssl"] / medians["ingest"],
        }
        shutil.rmtree(root / "pristine")
        if rss_clip:
            result["peak_rss_4gib_clip_mib"] = peak_rss_ingest(root / "rss", rss_clip)
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


def peak_rss_ingest(root: Path, size: int) -> float:
    """Peak RSS of a fresh process that ingests one clip of ``size`` bytes."""
    dock = root / "dock"
    dock_camera(dock, "BWV-000002", [SimClip(size, utc_now(), clip_id=str(uuid.uuid4()), seed=1)], folder_name="cam")
    code = (
        "import sys; from bench.ingest import one_ingest; from pathlib import Path; "
        "one_ingest(Path(sys.argv[1]), Path(sys.argv[2]))"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run([sys.executable, "-c", code, str(dock), str(root / "station")], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(before, after) / 1024


if __name__ == "__main__":
    import json

    print(json.dumps(save("ingest", run()), indent=2))
