"""``fleet central …``: run the force-wide server."""

from __future__ import annotations

import argparse
import logging

from fleet.config import CentralSettings, load_settings
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


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from central.app import create_app

    settings = load_settings(args.config, CentralSettings)
    configure_logging(settings.log_level)
    logging.getLogger(__name__).info("central on http://%s:%d, data in %s", settings.host, settings.port,
                                     settings.data_dir)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, loop="uvloop", http="httptools",
                log_level=settings.log_level.lower(), access_log=False, lifespan="on", log_config=None,
                timeout_graceful_shutdown=5)  # long polls and slow uploads may not hold a shutdown up
    return 0
