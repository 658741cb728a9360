"""``fleet central …``: run the force-wide server."""

from __future__ import annotations

import argparse
import getpass
import logging

from fleet.config import CentralSettings, load_settings
from fleet.errors import FleetError
from fleet.logs import configure_logging


def register(groups: argparse._SubParsersAction) -> None:
    central = groups.add_parser("central", help="run the force-wide central server",
                                description="Central: receives clips from every station and serves the API.")
    commands = central.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser("serve", help="serve the API under uvicorn until stopped",
                                description="Serve central's API (tus uploads, clips) on host:port from the "
                                            "config. Stops cleanly on Ctrl-C or SIGTERM.")
    serve.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    serve.set_defaults(handler=cmd_serve)

    officers = commands.add_parser("officers", help="import or export officers as CSV",
                                   description="Officers CSV (columns officer_id, borough, team, role, name, "
                                               "active), read and written straight to central's database; "
                                               "works whether or not central is serving.")
    actions = officers.add_subparsers(dest="action", metavar="ACTION", required=True)
    load = actions.add_parser("import", help="create or update officers from a CSV file",
                              description="Nothing is imported unless every row is valid; errors name the line.")
    load.add_argument("csv", metavar="FILE", help="the CSV file ('-' for standard input)")
    load.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    load.set_defaults(handler=cmd_officers_import)
    dump = actions.add_parser("export", help="write officers as CSV", description="Write every officer as CSV.")
    dump.add_argument("csv", metavar="FILE", nargs="?", default="-", help="where to write (default: standard output)")
    dump.add_argument("--borough", help="only this borough's officers")
    dump.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    dump.set_defaults(handler=cmd_officers_export)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from central.app import create_app

    settings = load_settings(args.config, CentralSettings)
    configure_logging(settings.log_level)
    logging.getLogger(__name__).info("central on http://%s:%d, data in %s", settings.host, settings.port,
                                     settings.data_dir)
    app = create_app(settings)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            # Long polls answer at once (an empty page) instead of holding the shutdown up.
            changes = app.state.get("changes")
            if changes is not None:
                changes.close()
            super().handle_exit(sig, frame)

    Server(uvicorn.Config(app, host=settings.host, port=settings.port, loop="uvloop", http="httptools",
                          log_level=settings.log_level.lower(), access_log=False, lifespan="on", log_config=None,
                          timeout_graceful_shutdown=10)).run()
    return 0


def _services(config: str):
    from central.app import build_services
    from central.store import CentralStore

    settings = load_settings(config, CentralSettings)
    store = CentralStore(settings.data_dir)
    return store, build_services(store, settings)


def cmd_officers_import(args: argparse.Namespace) -> int:
    import sys

    from central.officers import officers_from_csv

    try:
        text = sys.stdin.read() if args.csv == "-" else open(args.csv, encoding="utf-8-sig").read()
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetError(f"cannot read {args.csv}: {exc}") from None
    officers = officers_from_csv(text)
    store, services = _services(args.config)
    try:
        result = services["officers"].upsert(officers, "cli:" + getpass.getuser())
    finally:
        store.close()
    print(f"{len(officers)} officers read: {result.created} created, {result.updated} updated, "
          f"{result.unchanged} unchanged")
    return 0


def cmd_officers_export(args: argparse.Namespace) -> int:
    import sys

    import msgspec

    from central.officers import OfficerRow
    from fleet import csvio

    store, services = _services(args.config)
    try:
        rows = services["officers"].all(args.borough)
    finally:
        store.close()
    text = csvio.write_csv((OfficerRow(**msgspec.structs.asdict(o)) for o in rows), OfficerRow)
    if args.csv == "-":
        sys.stdout.write(text)
    else:
        with open(args.csv, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        print(f"{len(rows)} officers written to {args.csv}", file=sys.stderr)
    return 0
