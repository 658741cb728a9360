"""``python -m bench [ingest|upload|writes|peer|events|fleet|rollout|retention|pages|all] [--quick]
[--engines sqlite,postgresql] [--clips N]``:
run benchmarks, print and save the results.

Results go to bench/out/<name>.json; BENCHMARKS.md quotes them with the command.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench import events, fleet, ingest, pages, peer, retention, rollout, upload, writes
from bench.common import save
from bench.databases import ENGINES


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "which",
        nargs="?",
        choices=["ingest", "upload", "writes", "peer", "events", "fleet", "rollout", "retention", "pages", "all"],
        default="all",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the benchmarks run")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per measurement (medians are reported)")
    parser.add_argument(
        "--dir",
        default=None,
        help="where the upload benchmarks keep their files (default: here); "
        "e.g. /dev/shm to take the disk out of the comparison",
    )
    parser.add_argument(
        "--chunk-mib", type=int, default=None, help="upload chunk size in MiB (default: the station's default)"
    )
    parser.add_argument(
        "--chunk-checksum",
        default=None,
        choices=["crc32c", "crc32", "sha1", "sha256"],
        help="upload: the station's per-chunk checksum (default: the station's default)",
    )
    parser.add_argument(
        "--standard",
        action="store_true",
        help="peer: also standard tus clients (curl in one PATCH, tuspy in fixed chunks) against both servers",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="upload: central serves HTTPS (a throwaway CA); the baseline pays for TLS too",
    )
    parser.add_argument(
        "--before",
        default=None,
        help="ingest: a checkout of older code (e.g. `git archive` of a commit) whose ingest runs side by side",
    )
    parser.add_argument("--stages", action="store_true", help="ingest: also time each step of a sealed ingest alone")
    parser.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help=f"events, retention, pages: the databases to run on, comma-separated (default: {','.join(ENGINES)})",
    )
    parser.add_argument(
        "--clips", type=int, default=None, help="retention, pages: clip records (default: the benchmark's full size)"
    )
    args = parser.parse_args()
    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        parser.error(f"--engines: one or more of {', '.join(ENGINES)}")
    gib = 1 << 30
    if args.which in ("ingest", "all"):
        result = ingest.run(
            total=(64 << 20) if args.quick else gib,
            clip_size=(16 << 20) if args.quick else 128 << 20,
            rounds=args.rounds,
            rss_clip=(64 << 20) if args.quick else 4 * gib,
            before=Path(args.before).resolve() if args.before else None,
            with_stages=args.stages,
        )
        print(json.dumps({k: v for k, v in result.items() if k != "seconds"}, indent=2))
        save("ingest", result)
    if args.which in ("upload", "all"):
        result = upload.run(
            size=(64 << 20) if args.quick else gib,
            rounds=args.rounds,
            small_count=100 if args.quick else 2000,
            where=args.dir,
            chunk_bytes=args.chunk_mib << 20 if args.chunk_mib else None,
            chunk_checksum=args.chunk_checksum,
            tls=args.tls,
        )
        print(json.dumps({k: v for k, v in result.items() if k != "seconds"}, indent=2))
        save("upload-tls" if args.tls else "upload", result)
    if args.which in ("writes", "all"):
        result = writes.run(total=(64 << 20) if args.quick else gib, rounds=args.rounds, where=args.dir)
        print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
        save("writes", result)
    if args.which in ("peer", "all"):
        result = peer.run(
            size=(64 << 20) if args.quick else gib,
            rounds=args.rounds,
            small_count=100 if args.quick else 2000,
            where=args.dir,
            chunk_bytes=args.chunk_mib << 20 if args.chunk_mib else None,
            standard=args.standard,
        )
        print(json.dumps(peer.headline(result), indent=2))
        save("peer", result)
    if args.which in ("events", "all"):
        result = events.run(total=20_000 if args.quick else 200_000, rounds=args.rounds, engines=engines)
        print(json.dumps({k: v for k, v in result.items() if k != "seconds"}, indent=2))
        save("events", result)
    if args.which in ("fleet", "all"):
        result = fleet.run(devices=2_000, officers=3_000, readings=50_000, requests=100) if args.quick else fleet.run()
        print(json.dumps(result, indent=2))
        save("fleet", result)
    if args.which in ("rollout", "all"):
        result = rollout.run(rounds=args.rounds, officers=2_000 if args.quick else 20_000)
        print(json.dumps({k: v for k, v in result.items() if k != "seconds"}, indent=2))
        save("rollout", result)
    if args.which in ("retention", "all"):
        sized = {"clips": 50_000, "holds": 500} if args.quick else {}
        if args.clips:
            sized["clips"] = args.clips
        result = retention.run(**sized, engines=engines)
        print(json.dumps(result, indent=2))
        save("retention", result)
    if args.which in ("pages", "all"):
        sized = {"clips": 20_000, "devices": 2_000, "rounds": 5} if args.quick else {}
        if args.clips:
            sized["clips"] = args.clips
        result = pages.run(**sized, engines=engines)
        print(json.dumps(result, indent=2))
        save("pages", result)


if __name__ == "__main__":
    main()
