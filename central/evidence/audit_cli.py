"""``fleet audit verify``: recompute central's audit hash chain and name the first broken record."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgspec

from fleet.config import CentralSettings, load_settings
from fleet.errors import FleetError

EXIT_BROKEN = 1


def register(groups: argparse._SubParsersAction) -> None:
    audit = groups.add_parser(
        "audit",
        help="check central's tamper-evident audit trail",
        description="The audit trail is a hash chain: every record carries the hash of the one before it.",
    )
    commands = audit.add_subparsers(dest="command", metavar="COMMAND", required=True)
    verify = commands.add_parser(
        "verify",
        help="recompute the chain; exit 1 naming the first broken record",
        description="Recompute every record's hash from the first; an edited, deleted, "
        "inserted or reordered record is named. Works whether or not central "
        "is serving.",
    )
    verify.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    verify.add_argument(
        "--anchors",
        metavar="FILE",
        help="the published anchors to check the chain against (default: [audit] anchors_file, if it exists)",
    )
    verify.add_argument("--json", action="store_true", help="write the result as JSON")
    verify.set_defaults(handler=cmd_verify)
    publish = commands.add_parser(
        "publish",
        help="append new anchors and the chain's head to the anchors file",
        description="What central does every [audit] publish_minutes: the anchors "
        "written since the last publication and the chain's head are "
        "appended (fsynced) to the anchors file, kept outside the database.",
    )
    publish.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    publish.add_argument("--to", metavar="FILE", help="another anchors file (default: [audit] anchors_file)")
    publish.set_defaults(handler=cmd_publish)


def cmd_verify(args: argparse.Namespace) -> int:
    from central.core.store import CentralStore
    from central.evidence import audit

    settings = load_settings(args.config, CentralSettings)
    anchors_file = Path(args.anchors) if args.anchors else settings.anchors_file
    if args.anchors and not anchors_file.is_file():
        raise FleetError(f"no anchors file {anchors_file}")
    published = audit.read_published(anchors_file)
    store = CentralStore.open(settings)  # creates or migrates the database if need be
    try:
        report = audit.verify_database(store.writer, published)
    finally:
        store.close()
    if args.json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    elif report.intact:
        checked = (
            f"; matches the {len(published)} anchors published in {anchors_file}"
            if published
            else "; no published anchors to check against"
        )
        print(f"audit trail intact: {report.records} records, last hash {report.last_hash}{checked}")
        for restore in report.lost_at_restores:
            print(f"  {restore}")
    else:
        print(
            f"audit trail BROKEN at record {report.first_broken}: {report.reason} "
            f"({report.records} records verified before it)",
            file=sys.stderr,
        )
    return 0 if report.intact else EXIT_BROKEN


def cmd_publish(args: argparse.Namespace) -> int:
    from central.core.store import CentralStore
    from central.evidence import audit

    settings = load_settings(args.config, CentralSettings)
    target = Path(args.to) if args.to else settings.anchors_file
    store = CentralStore.open(settings)
    try:
        added = audit.publish(store.writer, target)
    except OSError as exc:
        raise FleetError(f"cannot publish to {target}: {exc.strerror}") from None
    finally:
        store.close()
    print(f"{added} line(s) appended to {target}" if added else f"{target} is up to date")
    return 0
