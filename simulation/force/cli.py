"""``fleet simulate``: a month of a whole force on this machine, with a central outage in the middle."""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import shlex
import shutil
import sys
import time
from datetime import timedelta
from pathlib import Path

from fleet.errors import FleetError

DESCRIPTION = """\
Simulate a month of a force at full roll-out on this machine: real central (`fleet central
serve` under uvicorn) and real station nodes (several to a process: `fleet station run
--config A --config B ...`); simulated cameras dock into the stations' dock inboxes on a
compressed clock (a simulated day lasts --day-seconds of wall time; `docked_at` and
`recorded_at` carry simulated times, the month ending at yesterday's midnight UTC). In the
middle central is stopped for --outage hours while the stations keep ingesting and
queueing; then it comes back and everything drains. Usage model: boroughs, stations and
officers from config/boroughs.toml; 10-hour shifts at 07:00, 15:00 and 23:00; a camera goes
out on --shifts-per-week of 7 days and docks when its shift ends; each docking writes
telemetry (device.json), a shift records a Poisson number of clips (--clips-per-shift),
--evidential-share of them evidential, a few KiB each (the run is about coordination, not
disk). Seeded: the same options dock the same cameras with the same clips.

At the end every docked clip is checked against central's API (lost / duplicated /
corrupted: another SHA-256) and every docking's telemetry against central's database
(read-only). Prints throughput at central, backlog peak, drain time after the outage, p95
latencies (wall) and the check; writes it all as JSON (--out). Exits 1 if anything was
lost, duplicated or corrupted or the backlog did not drain, 2 on bad options.

Then the public asks to keep footage (about one request per 2,000 clips, through the public
form, each from an address of its own), an information manager narrows a third of the requests
and closes a third, and the retention job runs as if 40 days had passed: the summary counts the
wrongful deletions (a clip a request covered, deleted while it was open or after it was
narrowed to keep it), which must be 0.
State goes to a fast folder (/dev/shm when there is one): the run is about coordination.
The station host processes run at a lower CPU priority (nice 5) than central and the driver:
in a force each station has a machine of its own, and here they would starve central.

With --database postgresql central's state is in a PostgreSQL server started for the run
(Debian's postgresql: `make services` installs it), and with --replicas N central is N
processes on it behind HAProxy, the stations talking to the balancer. Then the replica
leading the jobs that run once is SIGKILLed a third of the way through the month
(--kill-replica-at) and started again at once: another replica takes the jobs over, the
stations' requests it held are retried, and the check still finds nothing lost. The outage
stops every replica.

With --deploy a firmware release goes to every camera during the month (docs/firmware.md): a
throwaway vendor key (a SIMULATION key, new every run, its private half never written) is trusted
in central's and every station's [firmware] release_keys; every camera is registered at central,
a release of a few KiB is added, signed, and deployed to all of them in phases of 1, 10, 50 and
100 % (each pausing the deployment when more than --deploy-max-failure-pct of its cameras fail;
charge gate 20 %, the simulated docks reading the battery at a shift's end). Stations hand the
update to each camera that docks; the camera applies it when taken out of the dock, failing
--deploy-failure-rate of its attempts. The summary adds the share of cameras updated by
simulated day, failed attempts, and the deployment's final state and phases; the check and the
clip latencies are the usual ones, to compare with a run without --deploy."""


def _default_workdir() -> Path:
    shm = Path("/dev/shm")
    return shm / "fleet-simulate" if shm.is_dir() and os.access(shm, os.W_OK) else Path("simulate-data")


def register(groups: argparse._SubParsersAction) -> None:
    sim = groups.add_parser(
        "simulate",
        help="simulate a month of the whole force (real central and stations)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = sim.add_argument
    add("--devices", type=int, default=20_000, metavar="N", help="cameras in the force (default: 20000)")
    add(
        "--boroughs",
        type=int,
        default=32,
        metavar="N",
        help="boroughs (default: 32; the first 32 are config/boroughs.toml's, more are made up)",
    )
    add(
        "--stations-per-borough",
        type=int,
        default=2,
        metavar="N",
        help="stations in each borough (default: 2, so 64 stations)",
    )
    add("--days", type=int, default=30, metavar="N", help="simulated days (default: 30)")
    add(
        "--outage",
        type=float,
        default=24.0,
        metavar="HOURS",
        help="central is down this many simulated hours in the middle of the month (default: 24; 0: none)",
    )
    add(
        "--outage-at",
        type=float,
        default=None,
        metavar="HOUR",
        help="start the outage at this simulated hour of the month instead (default: centred on the middle)",
    )
    add("--seed", type=int, default=7, help="random seed of the usage model (default: 7)")
    add(
        "--day-seconds",
        type=float,
        default=10.0,
        metavar="S",
        help="wall seconds one simulated day takes (default: 10)",
    )
    add(
        "--shifts-per-week",
        type=float,
        default=1.25,
        metavar="N",
        help="shifts a camera goes out on in a week, on average (default: 1.25)",
    )
    add(
        "--clips-per-shift",
        type=float,
        default=0.7,
        metavar="N",
        help="clips a camera records on a shift, on average (default: 0.7)",
    )
    add(
        "--evidential-share",
        type=float,
        default=0.05,
        metavar="SHARE",
        help="share of clips marked evidential on the camera (default: 0.05)",
    )
    add(
        "--max-clip-kib",
        type=float,
        default=8.0,
        metavar="KIB",
        help="largest clip in KiB; clips are 1 KiB up to this (default: 8)",
    )
    add("--hosts", type=int, default=4, metavar="N", help="processes the station nodes are shared among (default: 4)")
    add(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="central's database: SQLite (default) or a PostgreSQL server started for the run",
    )
    add(
        "--replicas",
        type=int,
        default=1,
        metavar="N",
        help="run central as N processes behind HAProxy (needs --database postgresql; default: 1)",
    )
    add(
        "--kill-replica-at",
        type=float,
        default=None,
        metavar="HOUR",
        help="SIGKILL the leading replica at this simulated hour of the month and start it again "
        "(default with --replicas 2 or more: a third of the way through the month)",
    )
    add(
        "--workdir",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"work folder for configs, databases, docks and logs, cleared first (default: {_default_workdir()})",
    )
    add("--out", type=Path, default=None, metavar="FILE", help="the JSON summary (default: WORKDIR/summary.json)")
    add(
        "--keep-state",
        action="store_true",
        help="keep the databases, blobs and dock folders at the end (default: keep only configs, logs, summary)",
    )
    add(
        "--drain-timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="after the month, give up waiting for the backlog to drain after this many wall seconds (default: 600)",
    )
    add(
        "--deploy",
        action="store_true",
        help="deploy a firmware release to every camera during the month (a SIMULATION vendor key, new every run)",
    )
    add(
        "--deploy-failure-rate",
        type=float,
        default=0.02,
        metavar="SHARE",
        help="with --deploy: share of update attempts that fail on the camera (default: 0.02)",
    )
    add(
        "--deploy-max-failure-pct",
        type=float,
        default=10.0,
        metavar="PCT",
        help="with --deploy: a phase pauses the deployment when over this %% of its cameras failed (default: 10)",
    )
    add(
        "--deploy-phases",
        default="1,10,50,100",
        metavar="PCTS",
        help="with --deploy: the phases' cumulative shares of the cameras, the last 100 (default: 1,10,50,100)",
    )
    add(
        "--deploy-min-results",
        type=int,
        default=20,
        metavar="N",
        help="with --deploy: results a phase needs before it is judged (default: 20, so that one failure alone "
        "does not pass a 5 %% threshold)",
    )
    add(
        "--deploy-soak-hours",
        type=float,
        default=72.0,
        metavar="H",
        help="with --deploy: simulated hours a phase soaks before the next opens with enough good results "
        "(default: 72, central's)",
    )
    sim.set_defaults(handler=cmd_simulate)


def plan_from(args: argparse.Namespace):
    """Validate the options into a Plan; FleetError (one line, exit 2) for anything out of range."""
    from simulation.force.deploy import DeployPlan
    from simulation.force.run import Plan
    from simulation.force.usage import UsageModel

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise FleetError(message)

    need(1 <= args.devices <= 999_999, "--devices must be between 1 and 999999")
    need(1 <= args.boroughs <= 500, "--boroughs must be between 1 and 500")
    need(1 <= args.stations_per_borough <= 20, "--stations-per-borough must be between 1 and 20")
    stations = args.boroughs * args.stations_per_borough
    need(stations <= 512, f"{stations} stations is more than this machine can host (at most 512)")
    need(1 <= args.days <= 366, "--days must be between 1 and 366")
    need(0 <= args.outage < args.days * 24, "--outage must be at least 0 hours and shorter than the month")
    need(0 < args.day_seconds <= 3600, "--day-seconds must be more than 0 and at most 3600")
    need(0 < args.shifts_per_week <= 7, "--shifts-per-week must be more than 0 and at most 7")
    need(0 <= args.clips_per_shift <= 50, "--clips-per-shift must be between 0 and 50")
    need(0 <= args.evidential_share <= 1, "--evidential-share must be between 0 and 1")
    need(1 <= args.max_clip_kib <= 64 * 1024, "--max-clip-kib must be between 1 and 65536")
    need(1 <= args.hosts <= 64, "--hosts must be between 1 and 64")
    need(args.drain_timeout > 0, "--drain-timeout must be positive")
    need(1 <= args.replicas <= 8, "--replicas must be between 1 and 8")
    need(
        args.replicas == 1 or args.database == "postgresql",
        "--replicas N share one PostgreSQL: give --database postgresql",
    )
    need(
        args.kill_replica_at is None or args.replicas > 1,
        "--kill-replica-at needs --replicas 2 or more (another replica takes over)",
    )
    need(0 <= args.deploy_failure_rate <= 1, "--deploy-failure-rate must be between 0 and 1")
    need(0 <= args.deploy_max_failure_pct <= 100, "--deploy-max-failure-pct must be between 0 and 100")
    need(0 <= args.deploy_soak_hours <= 2160, "--deploy-soak-hours must be between 0 and 2160")
    need(1 <= args.deploy_min_results <= 100_000, "--deploy-min-results must be between 1 and 100000")
    phases = _phases(args.deploy_phases)
    kill_at = args.kill_replica_at
    if kill_at is None and args.replicas > 1:
        kill_at = args.days * 24 / 3
    need(kill_at is None or 0 <= kill_at < args.days * 24, "--kill-replica-at must fall inside the month")
    plan = Plan(
        devices=args.devices,
        boroughs=args.boroughs,
        stations_per_borough=args.stations_per_borough,
        days=args.days,
        outage_hours=args.outage,
        outage_at_hours=args.outage_at,
        seed=args.seed,
        day_seconds=args.day_seconds,
        hosts=min(args.hosts, stations),
        drain_timeout_s=args.drain_timeout,
        database=args.database,
        replicas=args.replicas,
        kill_replica_at_hours=kill_at,
        deploy=DeployPlan(
            failure_rate=args.deploy_failure_rate,
            max_failure_pct=args.deploy_max_failure_pct,
            phases_pct=phases,
            min_results=args.deploy_min_results,
            soak_hours=args.deploy_soak_hours,
        )
        if args.deploy
        else None,
        model=UsageModel(
            shifts_per_week=args.shifts_per_week,
            clips_per_shift=args.clips_per_shift,
            evidential_share=args.evidential_share,
            min_clip_bytes=1024,
            max_clip_bytes=int(args.max_clip_kib * 1024),
        ),
    )
    if args.outage:
        need(
            plan.outage_start_h >= 0 and plan.outage_start_h + args.outage <= args.days * 24,
            "--outage-at: the outage must fall inside the month",
        )
    return plan


def _phases(text: str) -> tuple[float, ...]:
    """``--deploy-phases``: increasing shares, each in (0, 100], the last 100 (as central takes them)."""
    try:
        shares = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise FleetError(f"--deploy-phases: {text!r} is not a list of numbers such as 1,10,50,100") from None
    if not 1 <= len(shares) <= 20 or shares[-1] != 100 or any(not 0 < s <= 100 for s in shares):
        raise FleetError("--deploy-phases: 1 to 20 shares between 0 and 100, the last 100 (e.g. 1,10,50,100)")
    if any(b <= a for a, b in itertools.pairwise(shares)):
        raise FleetError("--deploy-phases: each share must be larger than the one before")
    return shares


def cmd_simulate(args: argparse.Namespace) -> int:
    from fleet.console import console as make_console
    from simulation.force.check import check, wait_until_applied
    from simulation.force.cluster import SimCluster, prepare_workdir
    from simulation.force.deploy import finish
    from simulation.force.keep_requests import exercise
    from simulation.force.progress import Progress
    from simulation.force.report import summarise, table, write_json
    from simulation.force.run import Simulation
    from simulation.force.usage import build_layout
    from simulation.local_cluster import stop_on_sigterm

    plan = plan_from(args)
    console = make_console()
    started = time.monotonic()
    root = (args.workdir or _default_workdir()).resolve()
    out = (args.out or root / "summary.json").resolve()
    prepare_workdir(root)
    layout = build_layout(plan.devices, plan.boroughs, plan.stations_per_borough, plan.seed)
    cluster = SimCluster(
        root, layout.stations, plan.hosts, plan.day_seconds, database=plan.database, replicas=plan.replicas
    )
    central = (
        f"central on {plan.database}"
        if plan.replicas == 1
        else f"{plan.replicas} central replicas on {plan.database} behind HAProxy"
    )
    console.print(
        f"[bold]Simulating {plan.days} days of {plan.devices:,} cameras at {len(layout.stations)} stations "
        f"in {len(layout.boroughs)} boroughs[/] ({central}; {plan.hosts} station hosts; state and logs in {root})"
    )
    simulation = Simulation(plan, layout, cluster)
    wall: dict[str, float] = {}
    result = None
    requests = None
    stop_on_sigterm()
    try:
        cluster.start_database()
        cluster.write_configs([simulation.vendor_key.public_hex] if simulation.vendor_key is not None else None)
        with Progress(console, plan) as progress:
            outcome = simulation.run(progress.update)
        wall["setup"] = simulation.mono0 - started
        wall["month"], wall["drain"] = outcome.month_wall_s, outcome.drain_wall_s
        checked = time.monotonic()
        console.print("checking every clip and every docking against central…")
        if wait_until_applied(cluster.central_db, timeout=120):
            with cluster.admin() as admin:
                result = check(outcome.records, layout.stations, admin, cluster.central_db, seed=plan.seed)
        if outcome.deploy is not None:
            with cluster.admin() as admin:
                finish(admin, outcome.deploy)
        wall["check"] = time.monotonic() - checked
        asked = time.monotonic()
        console.print("the public asks to keep footage; an information manager decides; retention runs 40 days on…")
        requests = exercise(
            cluster.url,
            root / "central" / "central.toml",
            outcome.records,
            layout.stations,
            outcome.sim_start + timedelta(days=plan.days),
            plan.seed,
        )
        wall["keep_requests"] = time.monotonic() - asked
        cpu = cluster.cpu_seconds()
    except KeyboardInterrupt:
        console.print("\nStopping…")
        return 130
    finally:
        cluster.stop_all()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu["driver"] = usage.ru_utime + usage.ru_stime
    wall["total"] = time.monotonic() - started
    summary = summarise(
        plan,
        outcome,
        result,
        stations=len(layout.stations),
        wall=wall,
        cpu=cpu,
        command=shlex.join(["fleet", *sys.argv[1:]]),
        keep_requests=requests,
    )
    write_json(summary, out)
    if not args.keep_state:
        if cluster.postgres is not None:
            cluster.postgres.remove()
        for bulky in [
            root / "central" / "data",
            *(root / "stations").glob("*/data"),
            *(root / "stations").glob("*/dock"),
        ]:
            shutil.rmtree(bulky, ignore_errors=True)
    console.print(table(summary))
    console.print(f"summary written to {out}")
    return 0 if summary["ok"] else 1
