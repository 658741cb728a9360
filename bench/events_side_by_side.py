"""Events acknowledged and applied over HTTP by several centrals (source trees), side by side.

    .venv/bin/python -m bench.events_side_by_side ROUNDS EVENTS NAME=TREE [NAME=TREE ...]

e.g. ``-m bench.events_side_by_side 3 100000 before=/tmp/before after=.``, where ``/tmp/before``
holds ``git archive <commit>`` of the code before. Each round runs every tree on each engine
(SQLite, then PostgreSQL: a fresh database on one server started for the run), rotating who
goes first, each a fresh ``fleet central serve`` of that tree (``bench.events.over_http``: 8
stations, 2 senders, the same encoded batches). Then each tree's in-process cost of applying
(``bench.apply_cost``, PostgreSQL, CPU µs an event of client and server). Prints every run,
then medians and each tree's ratio to the first: the way to compare code before and after a
change when the host's noise swamps separate runs.

``--known-fleet``: every camera docks once before the clock starts (``bench.events.known_fleet``,
untimed), so the events measured are an ordinary day's, every camera known to central; without
it most dockings are of cameras new to central, as on a roll-out's first day. HTTP only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import events
from bench.common import median, side_by_side_args
from bench.databases import ENGINES, Databases

COST_EVENTS, COST_BATCH = 60_000, 10_000
"""The in-process cost's workload: 60,000 events, 10,000 a transaction (the worker's quiet ones are ~13,000)."""


def main(argv: list[str]) -> dict:
    known = "--known-fleet" in argv
    argv = [a for a in argv if a != "--known-fleet"]
    rounds, total = int(argv[0]), int(argv[1])
    trees = {name: str(Path(tree).resolve()) for name, tree in (arg.split("=", 1) for arg in argv[2:])}
    cost_script = str(Path(__file__).with_name("apply_cost.py").resolve())
    root = Path(tempfile.mkdtemp(prefix="bench-events-side-", dir=Path.cwd()))
    found = Databases(root / "databases")
    fleet = events.make_stations(8)
    before = events.known_fleet(fleet, 1000) if known else None
    plan = events.make_batches(fleet, total, 1000, after=before)
    count = sum(len(b.rows) for batches in plan for b in batches)
    here = Path.cwd()
    os.chdir(root)  # so each central imports its own tree (PYTHONPATH), not the current directory's
    names = list(trees)
    acked: dict[str, dict[str, list[float]]] = {e: {n: [] for n in names} for e in ENGINES}
    applied: dict[str, dict[str, list[float]]] = {e: {n: [] for n in names} for e in ENGINES}
    costs: dict[str, list[dict]] = {n: [] for n in names}
    try:
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for engine in ENGINES:
                for name in order:
                    where = root / f"{engine}-{name}-{r}"
                    os.environ["PYTHONPATH"] = trees[name]
                    try:
                        seconds = events.over_http(where, fleet, plan, 2, found.url(engine), before)
                    finally:
                        del os.environ["PYTHONPATH"]
                    acked[engine][name].append(count / seconds)
                    applied[engine][name].append(count / events.APPLIED_S[engine][-1])
                    shutil.rmtree(where, ignore_errors=True)
                    print(
                        f"round {r + 1}/{rounds} {engine} {name}: acknowledged {acked[engine][name][-1]:,.0f}/s, "
                        f"applied {applied[engine][name][-1]:,.0f}/s",
                        flush=True,
                    )
            for name in order if not known else ():  # in process: the roll-out day's plan only
                done = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')",
                        cost_script,
                        str(found.url("postgresql")),
                        str(COST_EVENTS),
                        str(COST_BATCH),
                    ],
                    env={**os.environ, "PYTHONPATH": trees[name]},
                    capture_output=True,
                    text=True,
                    check=True,
                )
                costs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"round {r + 1}/{rounds} in-process cost {name}: {costs[name][-1]}", flush=True)
        result: dict = {"events": count, "rounds": rounds, "trees": trees}
        for engine in ENGINES:
            medians = {n: {"acked": median(acked[engine][n]), "applied": median(applied[engine][n])} for n in names}
            result[engine] = {
                "acknowledged_per_s": acked[engine],
                "applied_per_s": applied[engine],
                "medians": medians,
                "applied_ratio_to_first": {n: medians[n]["applied"] / medians[names[0]]["applied"] for n in names},
            }
        keys = ("events_per_s", "client_us", "server_us", "writer_us", "wal_bytes")
        if not known:
            result["in_process_cost"] = {n: {key: median([c[key] for c in costs[n]]) for key in keys} for n in names}
        result["known_fleet"] = known
        return result
    finally:
        os.chdir(here)
        found.close()
        shutil.rmtree(root, ignore_errors=True)


def _numbers(first: list[str]) -> bool:
    """ROUNDS and EVENTS, whole numbers above 0 (and ``--known-fleet`` anywhere)."""
    numbers = [a for a in first if a != "--known-fleet"]
    return len(numbers) == 2 and all(a.isdigit() and int(a) > 0 for a in numbers)


if __name__ == "__main__":
    print(json.dumps(main(side_by_side_args(sys.argv[1:], _numbers, __doc__ or "")), indent=1))
