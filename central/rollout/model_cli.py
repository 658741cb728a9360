"""``fleet central model …``: withdraw a camera model and follow the swap of its cameras.

Straight on central's database, like ``fleet central firmware``, whether or not central is
serving. The actor in the audit trail is ``cli:<login>``. The replacements proposed are
roll-out proposals: ``fleet rollout proposals`` / ``commit`` (or the Roll-out page) decide them.
"""

from __future__ import annotations

import argparse
import getpass

import msgspec

from central.core.cli import central_services
from central.rollout.swap import STAGES


def register(commands: argparse._SubParsersAction) -> None:
    model = commands.add_parser(
        "model",
        help="camera models: list, withdraw one (replacements proposed), follow its swap",
        description="Withdraw a camera model judged not fit for purpose: none of its cameras is handed out "
        "again, replacements are proposed through the roll-out, and the swap is followed until the last is "
        "returned (retired). docs/firmware.md, 'Replacing a model'.",
    )
    actions = model.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every model, its cameras and any withdrawal", description="Models.")
    listing.add_argument("--json", action="store_true", help="write JSON")
    _config(listing)
    listing.set_defaults(handler=cmd_model_list)
    withdraw = actions.add_parser(
        "withdraw",
        help="withdraw a model (audited) and propose replacements from the stock",
        description="Withdraws MODEL and proposes a replacement for each of its cameras in service (a "
        "personal issue for the same officer, a pool camera for the same station), as far as the stock goes.",
    )
    withdraw.add_argument("model", metavar="MODEL", help="the model, as the registry names it")
    withdraw.add_argument("--reason", required=True, help="why (goes into the audit trail)")
    withdraw.add_argument("--no-propose", action="store_true", help="withdraw only; propose replacements later")
    withdraw.add_argument("--json", action="store_true", help="write the result as JSON")
    _config(withdraw)
    withdraw.set_defaults(handler=cmd_model_withdraw)
    replace = actions.add_parser(
        "replace",
        help="propose replacements for a withdrawn model's cameras that have none yet",
        description="Another proposal, e.g. once more cameras are in stock.",
    )
    replace.add_argument("model", metavar="MODEL", help="the withdrawn model")
    replace.add_argument("--borough", action="append", default=[], help="only this borough's cameras (repeatable)")
    replace.add_argument("--json", action="store_true", help="write the proposal as JSON")
    _config(replace)
    replace.set_defaults(handler=cmd_model_replace)
    status = actions.add_parser(
        "status",
        help="a withdrawn model's swap: its cameras by borough and stage",
        description="Stages: " + ", ".join(STAGES) + ". Complete when every camera is returned (or lost).",
    )
    status.add_argument("model", metavar="MODEL", help="the withdrawn model")
    status.add_argument("--cameras", action="store_true", help="also list each camera, its holder and replacement")
    status.add_argument("--json", action="store_true", help="write JSON")
    _config(status)
    status.set_defaults(handler=cmd_model_status)


def _config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")


def _actor() -> str:
    return "cli:" + getpass.getuser()


def _print_json(value) -> int:
    print(msgspec.json.encode(value).decode())
    return 0


def _print_proposal(proposal) -> None:
    print(f"proposal {proposal.id}: {len(proposal.items)} replacement(s) to review and commit")
    for b in proposal.boroughs:
        short = f", {b.officers_left_without} left without (no camera in stock)" if b.officers_left_without else ""
        print(f"  {b.borough}: {b.cameras} ({b.mode}){short}")


def cmd_model_list(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        models = services.models.models()
    if args.json:
        return _print_json(models)
    for m in models:
        state = f"withdrawn {m.withdrawal.withdrawn_at:%Y-%m-%d}: {m.withdrawal.reason}" if m.withdrawal else "in use"
        print(f"{m.model or '(no model)':24} {m.cameras:>8,} cameras  {state}")
    return 0


def cmd_model_withdraw(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        result = services.replacements.withdraw(args.model, args.reason, _actor(), propose=not args.no_propose)
    if args.json:
        return _print_json(result)
    print(f"model {result.withdrawal.model} withdrawn")
    if result.proposal is not None:
        _print_proposal(result.proposal)
    else:
        print(result.note)
    return 0


def cmd_model_replace(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        proposal = services.replacements.propose(args.model, args.borough, _actor())
    if args.json:
        return _print_json(proposal)
    _print_proposal(proposal)
    return 0


def cmd_model_status(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        status = services.replacements.status(args.model)
        cameras = services.replacements.cameras(args.model) if args.cameras else []
    if args.json:
        return _print_json({"status": status, "cameras": cameras} if args.cameras else status)
    state = "complete" if status.complete else f"{status.outstanding:,} to return"
    print(f"{status.model}: withdrawn {status.withdrawal.withdrawn_at:%Y-%m-%d} ({status.withdrawal.reason}); {state}")
    header = ["borough", "cameras", *STAGES]
    print("  ".join(f"{h:>12}" if i else f"{h:16}" for i, h in enumerate(header)))
    for row in [*status.boroughs, status.total]:
        values = [getattr(row, h) for h in header[1:]]
        print(f"{row.borough:16}" + "".join(f"  {v:>12,}" for v in values))
    for c in cameras:
        holder = f"{c.holder} ({c.holder_mode})" if c.holder else "-"
        print(f"  {c.serial:16} {c.borough or '(stores)':16} {holder:24} {c.stage:22} {c.replacement or ''}")
    return 0
