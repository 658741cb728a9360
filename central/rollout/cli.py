"""``fleet rollout …``: plan the roll-out, allocate cameras to officers, commit, track progress.

``plan`` is pure (the two TOML files, no server). The others read and write central's
database directly, like ``fleet central officers``, whether or not central is serving.
Tables for people (rich), ``--json`` for scripts, ``--csv`` for spreadsheets.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import date
from pathlib import Path

import msgspec

from central.core.cli import central_services
from fleet import csvio
from fleet.config import CentralSettings, load_settings
from fleet.errors import ConfigError, FleetError

DEFAULT_BOROUGHS = Path("config/boroughs.toml")
DEFAULT_SCENARIO = Path("config/rollout.toml")


def _formats(parser: argparse.ArgumentParser) -> None:
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="write JSON (for scripts) instead of tables")
    out.add_argument("--csv", action="store_true", help="write CSV (for spreadsheets) instead of tables")


def _central(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--config",
        required=required,
        metavar="FILE",
        help="central's TOML config file (its [rollout] table names the boroughs and scenario)",
    )


def register(groups: argparse._SubParsersAction) -> None:
    rollout = groups.add_parser(
        "rollout",
        help="plan the roll-out, allocate cameras, track progress",
        description="The roll-out planner: week-by-week waves per borough within deliveries, "
        "training places and dock slots; allocation of serials to officers; "
        "progress against the plan.",
    )
    commands = rollout.add_subparsers(dest="command", metavar="COMMAND", required=True)

    plan = commands.add_parser(
        "plan",
        help="plan the roll-out: waves, feasibility, what binds, what would fix it",
        description="Plan the scenario week by week. Without --config, reads "
        f"{DEFAULT_BOROUGHS} and {DEFAULT_SCENARIO} from the current folder. "
        "The figure options are what-ifs: they override the scenario's.",
    )
    _central(plan, required=False)
    plan.add_argument("--boroughs", metavar="FILE", help=f"the boroughs file (default {DEFAULT_BOROUGHS})")
    plan.add_argument("--scenario", metavar="FILE", help=f"the scenario file (default {DEFAULT_SCENARIO})")
    plan.add_argument("--deliveries", type=_positive, metavar="N", help="what if N cameras arrived a week")
    plan.add_argument("--training", type=_positive, metavar="N", help="what if a borough could train N officers a week")
    plan.add_argument(
        "--at-once", type=_non_negative, metavar="N", help="what if N boroughs could run at once (0: any)"
    )
    plan.add_argument("--units", type=_positive, metavar="N", help="what if N cameras were bought")
    plan.add_argument("--deadline", type=_date, metavar="YYYY-MM-DD", help="what if the deadline were this day")
    plan.add_argument(
        "--show",
        choices=["boroughs", "weeks", "stations", "storage", "all"],
        default="boroughs",
        help="which table to print after the summary (default: boroughs)",
    )
    _formats(plan)
    plan.set_defaults(handler=cmd_plan)

    allocate = commands.add_parser(
        "allocate",
        help="propose serials for officers (review, then commit)",
        description="Pair cameras in stock with officers still without one, honouring "
        "each borough's policy (central's [fleet] assignment modes). Nothing "
        "changes until `fleet rollout commit ID`.",
    )
    _central(allocate)
    allocate.add_argument(
        "--borough",
        action="append",
        default=[],
        metavar="NAME",
        help="this borough (repeat for several; default: every borough in plan order)",
    )
    allocate.add_argument("--week", type=_positive, metavar="N", help="what the plan has equipped by week N")
    allocate.add_argument("--count", type=_positive, metavar="N", help="at most N cameras per borough")
    allocate.add_argument(
        "--from-csv",
        metavar="FILE",
        help="the proposal from a CSV (device_serial, borough, mode, officer_id, station_id) instead",
    )
    _formats(allocate)
    allocate.set_defaults(handler=cmd_allocate)

    show = commands.add_parser("show", help="show a proposal", description="A proposal and its items.")
    show.add_argument("proposal", type=_positive, metavar="ID")
    _central(show)
    _formats(show)
    show.set_defaults(handler=cmd_show)

    for name, verb in (("commit", "commit a proposal: every item or none"), ("discard", "discard a proposal")):
        action = commands.add_parser(name, help=verb, description=verb[0].upper() + verb[1:] + ".")
        action.add_argument("proposal", type=_positive, metavar="ID")
        _central(action)
        action.add_argument("--json", action="store_true", help="write the proposal as JSON")
        action.set_defaults(handler=cmd_decide, decision=name)

    progress = commands.add_parser(
        "progress",
        help="planned vs delivered vs issued vs in service, by week",
        description="Per borough and overall, cumulative by week: officers the plan "
        "equipped, cameras delivered to the borough, issued to officers, "
        "and in service (docked with clips).",
    )
    _central(progress)
    progress.add_argument(
        "--borough", metavar="NAME", help="only this borough (default: the force, and every borough with --json/--csv)"
    )
    _formats(progress)
    progress.set_defaults(handler=cmd_progress)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    if value > 2**62:
        raise argparse.ArgumentTypeError(f"{text} is too large")
    return value


def _non_negative(text: str) -> int:
    return 0 if text.strip() == "0" else _positive(text)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2016-03-31") from None


def _emit(value, args, csv_rows=None, csv_kind=None) -> bool:
    """JSON or CSV when asked; True if written."""
    if getattr(args, "json", False):
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(value), indent=2).decode() + "\n")
        return True
    if getattr(args, "csv", False) and csv_kind is not None:
        sys.stdout.write(csvio.write_csv(csv_rows, csv_kind))
        return True
    return False


def _load(args):
    from central.rollout.scenario import load_rollout

    if args.config:
        settings = load_settings(args.config, CentralSettings)
        files = settings.rollout
        if files.boroughs is None or files.scenario is None:  # load_settings lets through both or neither
            raise ConfigError(f"{args.config}: no [rollout] table naming the boroughs and scenario files")
        return load_rollout(args.boroughs or files.boroughs, args.scenario or files.scenario)
    return load_rollout(args.boroughs or DEFAULT_BOROUGHS, args.scenario or DEFAULT_SCENARIO)


def cmd_plan(args: argparse.Namespace) -> int:
    from central.rollout.plan import Wave, plan
    from central.rollout.storage import StorageMonth, forecast

    rollout = _load(args)
    result = plan(
        rollout,
        deliveries=args.deliveries,
        training=args.training,
        at_once=args.at_once,
        units=args.units,
        deadline=args.deadline,
    )
    storage = forecast(result, rollout.scenario)
    if args.json:
        _emit({"plan": result, "storage": storage}, args)
        return 0
    if args.csv:
        if args.show == "storage":
            sys.stdout.write(csvio.write_csv(storage.months, StorageMonth))
        elif args.show == "stations":
            from central.rollout.plan import StationDocks

            sys.stdout.write(csvio.write_csv(result.stations, StationDocks))
        else:
            sys.stdout.write(csvio.write_csv(result.waves, Wave))
        return 0
    from central.rollout.tables import print_plan

    print_plan(result, storage, rollout, args.show)
    return 0


def cmd_allocate(args: argparse.Namespace) -> int:
    from central.rollout.service import ProposalItem, ProposeRequest
    from central.rollout.tables import print_proposal

    with central_services(args.config) as services:
        service, actor = services.rollout, "cli:" + getpass.getuser()
        if args.from_csv:
            if args.borough or args.week or args.count:
                raise FleetError("--from-csv takes the proposal as it is: leave out --borough, --week and --count")
            try:
                text = Path(args.from_csv).read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as exc:
                raise FleetError(f"cannot read {args.from_csv}: {exc}") from None
            proposal = service.import_proposal(csvio.read_csv(text, ProposalItem), actor, f"imported {args.from_csv}")
        else:
            request = ProposeRequest(boroughs=args.borough, week=args.week, count=args.count)
            proposal = service.propose(request, actor)
    if not _emit(proposal, args, proposal.items, ProposalItem):
        print_proposal(proposal)
        print(
            f"review it (fleet rollout show {proposal.id} --csv), then: fleet rollout commit {proposal.id} "
            f"--config {args.config}"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from central.rollout.service import ProposalItem
    from central.rollout.tables import print_proposal

    with central_services(args.config) as services:
        proposal = services.rollout.proposal(args.proposal)
    if not _emit(proposal, args, proposal.items, ProposalItem):
        print_proposal(proposal, items=True)
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        service, actor = services.rollout, "cli:" + getpass.getuser()
        proposal = (service.commit if args.decision == "commit" else service.discard)(args.proposal, actor)
    if not _emit(proposal, args):
        cameras = len(proposal.items)
        done = "committed" if args.decision == "commit" else "discarded"
        boroughs = len(proposal.boroughs)
        print(f"proposal {proposal.id} {done}: {cameras} cameras in {boroughs} borough{'s' if boroughs != 1 else ''}")
    return 0


def cmd_progress(args: argparse.Namespace) -> int:
    from central.rollout.service import ProgressRow
    from central.rollout.tables import print_progress

    with central_services(args.config) as services:
        progress = services.rollout.progress(args.borough)
    if not _emit(progress, args, progress.rows, ProgressRow):
        print_progress(progress, args.borough or "all")
    return 0
