"""``fleet central alerts list|test``: what is active, how the messages went, and a test message.

Straight on central's database, like ``fleet central officers``, whether or not central is serving.
"""

from __future__ import annotations

import argparse
import sys

import msgspec

from central.core.cli import central_services
from fleet.errors import TransferError


def register(commands: argparse._SubParsersAction) -> None:
    alerts = commands.add_parser(
        "alerts",
        help="alerts pushed to webhooks and mailboxes: list, test",
        description="Alerts that need a person, sent by central as digests (docs/alerts.md).",
    )
    actions = alerts.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list",
        help="alerts active now, messages waiting or given up, the latest sent",
        description="Alerts active now (counted now; a broken audit chain as the leader last found it), the "
        "messages not sent by destination, and the latest messages with their state and last error.",
    )
    listing.add_argument("--limit", type=int, default=20, choices=range(1, 1001), metavar="N", help="latest N messages")
    listing.add_argument("--json", action="store_true", help="write JSON")
    listing.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    listing.set_defaults(handler=cmd_list)
    test = actions.add_parser(
        "test",
        help="send a test message to a destination now; exit 1 if it cannot be delivered",
        description="A test digest (marked test, no alert in it) to one [alerts.destinations.NAME], signed as "
        "every message is; not through the outbox, so nothing is retried later.",
    )
    test.add_argument("destination", metavar="NAME", help="the destination's name in [alerts.destinations]")
    test.add_argument("--json", action="store_true", help="write the outcome as JSON")
    test.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    test.set_defaults(handler=cmd_test)


def cmd_list(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        listing = services.alerts.listing(args.limit)
    if args.json:
        print(msgspec.json.encode(listing).decode())
        return 0
    for a in listing.active:
        since = f", since {a.active_since:%Y-%m-%d %H:%M}" if a.active_since else ""
        print(f"{a.borough or 'force-wide':20} {a.label}: {a.count}{since}")
    print(f"{len(listing.active)} alert(s) active")
    for destination, state, n in listing.outbox:
        print(f"{destination}: {n} message(s) {state}")
    for m in listing.recent:
        when = m.done_at or m.created_at
        error = f": {m.last_error}" if m.last_error else ""
        print(f"{when:%Y-%m-%d %H:%M} {m.destination:20} {m.state:8} {m.items} item(s), {m.attempts} attempt(s){error}")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        try:
            digest = services.alerts.send_test(args.destination)
        except TransferError as exc:
            if args.json:
                print(
                    msgspec.json.encode(
                        {"destination": args.destination, "delivered": False, "error": str(exc)}
                    ).decode()
                )
            else:
                print(f"{args.destination}: NOT delivered: {exc}", file=sys.stderr)
            return 1
    if args.json:
        print(
            msgspec.json.encode(
                {"destination": args.destination, "delivered": True, "message_id": digest.message_id}
            ).decode()
        )
    else:
        print(f"{args.destination}: test message {digest.message_id} delivered")
    return 0
