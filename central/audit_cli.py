"""``fleet audit verify``: recompute central's audit hash chain and name the first broken record."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgspec

from fleet.config import CentralSettings, load_settings

EXIT_BROKEN = 1


def register(groups: argparse._SubParsersAction) -> None:
    audit = groups.add_parser("audit", help="check central's tamper-evident audit trail",
                              description="The audit trail is a hash chain: every record carries the hash of the "
                                          "one before it.")
    commands = audit.add_subparsers(dest="command", metavar="COMMAND", required=True)
    verify = commands.add_parser("verify", help="recompute the chain; exit 1 naming the first broken record",
                                 description="Recompute every record's hash from the first; an edited, deleted, "
                                             "inserted or reordered record is named. Works whether or not central "
                                             "is serving.")
    verify.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    verify.add_argument("--json", action="store_true", help="write the result as JSON")
    verify.set_defaults(handler=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    from central import audit
    from central.store import CentralStore

    settings = load_settings(args.config, CentralSettings)
    CentralStore(settings.data_dir).close()  # creates or migrates the database if need be
    report = audit.verify_file(Path(settings.data_dir) / "central.db")
    if args.json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    elif report.intact:
        print(f"audit trail intact: {report.records} records, last hash {report.last_hash}")
    else:
        print(f"audit trail BROKEN at record {report.first_broken}: {report.reason} "
              f"({report.records} records verified before it)", file=sys.stderr)
    return 0 if report.intact else EXIT_BROKEN
