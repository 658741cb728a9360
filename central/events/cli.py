"""``fleet central claims show|refuse``: a person's word on a report of a clip that waits for its upload.

Straight on central's database, whether or not central is serving (its writes take their turn).
What the answers mean: ``central.events.decisions``.
"""

from __future__ import annotations

import argparse
import getpass

import msgspec

from central.core.cli import central_services
from central.events import decisions


def register(commands: argparse._SubParsersAction) -> None:
    claims = commands.add_parser(
        "claims",
        help="reports of clips that wait for their upload: show one, refuse one",
        description="A station's report of copying a clip off its camera names the clip's bytes; until its upload "
        "is verified, central takes no other bytes under that id (another station's upload meets 409, "
        '"a person must look"). See who reported a clip and what was refused, then refuse the waiting report.',
    )
    actions = claims.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show",
        help="the report of a clip that waits, its upload, and the refused reports of it",
        description="The clip's waiting report (station, event, size, SHA-256), the station its attribution "
        "names, its upload at central, and every station's refused report of it with the reason.",
    )
    show.add_argument("clip_id", metavar="CLIP")
    show.add_argument("--json", action="store_true", help="write JSON")
    show.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    show.set_defaults(handler=cmd_show)
    refuse = actions.add_parser(
        "refuse",
        help="refuse the report of a clip that waits for its upload (audited)",
        description="Refuse the clip's waiting report: recorded against its station as a refusal, its "
        "attribution undone, audited with the reason. With --instead STATION, that station's refused "
        "report of the clip is applied in its place, as if it had come first; then run "
        "'fleet station retry' at that station so that its upload goes again. When no report waits (one "
        "refused without --instead) and no station's stands, --instead STATION puts that station's back. "
        "All or nothing.",
    )
    refuse.add_argument("clip_id", metavar="CLIP")
    refuse.add_argument(
        "--reason",
        required=True,
        help="why, in one printable line of at most 500 characters (goes into the audit trail)",
    )
    refuse.add_argument("--instead", metavar="STATION", help="the station whose refused report should stand")
    refuse.add_argument(
        "--event",
        type=int,
        metavar="SEQ",
        help="with --instead: which of its refused reports (the event show lists; default: its latest)",
    )
    refuse.add_argument("--json", action="store_true", help="write the decision as JSON")
    refuse.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    refuse.set_defaults(handler=cmd_refuse)


def cmd_show(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        found = decisions.show(services.events, args.clip_id)
    if args.json:
        print(msgspec.json.encode(found).decode())
        return 0
    print(f"clip {found.clip_id}")
    if found.waiting is not None:
        print(
            f"  waiting: station {found.waiting.station_id}'s report (event {found.waiting.seq}), "
            f"{found.waiting.size} bytes, sha256 {found.waiting.sha256}"
        )
    else:
        print("  waiting: no report waits for its upload")
    print(f"  attributed from: {'station ' + found.reported_by if found.reported_by else 'no report'}")
    if found.upload is not None:
        who = f"station {found.upload.station_id}" if found.upload.station_id else "a user at central"
        print(f"  upload: by {who}, {found.upload.size} bytes, sha256 {found.upload.sha256}, {found.upload.state}")
    else:
        print("  upload: none")
    for r in found.refused:
        named = f", {r.size} bytes, sha256 {r.sha256}" if r.sha256 is not None else ""
        print(f"  refused: station {r.station_id}'s report (event {r.seq}{named}): {r.refused}")
    return 0


def cmd_refuse(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        decision = decisions.refuse(
            services.events,
            args.clip_id,
            "cli:" + getpass.getuser(),
            args.reason,
            instead=args.instead,
            event=args.event,
        )
    if args.json:
        print(msgspec.json.encode(decision).decode())
        return 0
    if decision.refused is not None:
        print(f"station {decision.refused.station_id}'s report of clip {decision.clip_id} refused")
    if decision.reinstated is not None:
        print(
            f"station {decision.reinstated.station_id}'s report (event {decision.reinstated.seq}) of clip "
            f"{decision.clip_id} applied: run 'fleet station retry' at {decision.reinstated.station_id} "
            "so that its upload goes again"
        )
    return 0
