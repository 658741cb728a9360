"""The ``fleet`` command.

Sub-command groups come from the packages that own them, found through the
``fleet.commands`` entry-point group (``station``, ``central``, ``demo``), so this kernel
imports neither station nor central. Every FleetError becomes one line on stderr and
exit status 2, as does an SQLite database another process kept locked past the command's wait;
nothing reaches the user as a traceback.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from importlib.metadata import entry_points

from fleet import __version__
from fleet.errors import FleetError

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleet",
        description="Body-worn video fleet: borough docking stations and the force-wide central server.",
    )
    parser.add_argument("--version", action="version", version=f"fleet {__version__}")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    for ep in sorted(entry_points(group="fleet.commands"), key=lambda e: e.name):
        ep.load()(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except FleetError as exc:
        print(f"fleet: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise
        # Another process (central serving, a backup) kept the database past this command's wait;
        # its transaction was rolled back.
        print(f"fleet: error: the database is busy ({exc}): nothing was changed, run it again", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`fleet rollout plan | head`): not an error worth a traceback.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
