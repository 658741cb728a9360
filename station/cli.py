"""``fleet station …``: run a station node and read its local state."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgspec

from fleet.config import StationSettings, load_settings
from fleet.errors import FleetError
from fleet.logs import configure_logging


def register(groups: argparse._SubParsersAction) -> None:
    station = groups.add_parser("station", help="run a borough docking station or inspect its queue",
                                description="A borough docking station: dock ingest, local queue, sync to central.")
    commands = station.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="run the station (dock ingest + sync + jobs) until stopped",
                              description="Watch dock_dir, ingest docked cameras, upload clips to central. "
                                          "Stops cleanly on Ctrl-C or SIGTERM.")
    run.add_argument("--config", required=True, metavar="FILE", help="the station's TOML config file")
    run.set_defaults(handler=cmd_run)

    status = commands.add_parser("status", help="show the local queue (works whether or not the station runs)",
                                 description="Read the station's database and show its queue and problems.")
    status.add_argument("--config", required=True, metavar="FILE", help="the station's TOML config file")
    status.add_argument("--json", action="store_true", help="print JSON (contract §4) instead of a table")
    status.set_defaults(handler=cmd_status)

    retry = commands.add_parser("retry", help="requeue clips central refused, after fixing the cause",
                                description="Put every clip in state 'failed' back in the upload queue.")
    retry.add_argument("--config", required=True, metavar="FILE", help="the station's TOML config file")
    retry.set_defaults(handler=cmd_retry)


def cmd_run(args: argparse.Namespace) -> int:
    from station.node import StationNode

    settings = load_settings(args.config, StationSettings)
    configure_logging(settings.log_level)
    StationNode(settings).run()
    return 0


def _open_store(config: str):
    from station.store import StationStore

    settings = load_settings(config, StationSettings)
    if not (Path(settings.data_dir) / "station.db").exists():
        raise FleetError(f"no station database in {settings.data_dir} yet: has `fleet station run` started?")
    return settings, StationStore(settings.data_dir)


def cmd_status(args: argparse.Namespace) -> int:
    from station.status import render_status, station_status

    settings, store = _open_store(args.config)
    try:
        status = station_status(settings, store)
    finally:
        store.close()
    if args.json:
        sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(status)) + b"\n")
    else:
        render_status(status)
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    settings, store = _open_store(args.config)
    try:
        count = store.requeue_failed()
    finally:
        store.close()
    print(f"{count} failed clip(s) requeued; the running station uploads them on its next pass")
    return 0
