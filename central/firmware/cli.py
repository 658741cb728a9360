"""``fleet central firmware …``, ``fleet central profile …`` and ``fleet central deploy …``: releases,
camera profiles, and their deployments.

Straight on central's database and blob store, like ``fleet central officers``, whether or not
central is serving. The actor in the audit trail is ``cli:<login>``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import get_args

import msgspec

from central.core.cli import central_services
from central.firmware.deployments import DecisionRequest, Deployment, DeploymentRequest
from central.firmware.phases import DEFAULT_SOAK_HOURS, PhaseSpec
from fleet.errors import BadRequest, FleetError
from fleet.profiles import SETTINGS, CameraSettings, FrameRate, Mount, Resolution


def _config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")


def _release_id(text: str) -> int:
    """A release's number as the API's path takes it (1 to 2**62)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or not 1 <= int(text) <= 2**62:
        raise BadRequest(f"{text[:40]!r} is not a release's number (see: fleet central firmware list)")
    return int(text)


def _deployment_id(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or not 1 <= int(text) <= 2**62:
        raise BadRequest(f"{text[:40]!r} is not a deployment's number (see: fleet central deploy list)")
    return int(text)


def register(commands: argparse._SubParsersAction) -> None:
    _register_firmware(commands)
    _register_deploy(commands)


def _register_firmware(commands: argparse._SubParsersAction) -> None:
    firmware = commands.add_parser(
        "firmware",
        help="firmware releases: add (signature checked), list, withdraw",
        description="Vendor-signed firmware artifacts, one per camera model and version (docs/firmware.md).",
    )
    actions = firmware.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add",
        help="add a release: the artifact, checked against [firmware] release_keys",
        description="The signature is the vendor's Ed25519 signature (base64) over the release statement "
        "(docs/firmware.md). A release that fails the check is refused and audited; nothing is stored.",
    )
    add.add_argument("artifact", metavar="FILE", help="the firmware artifact")
    add.add_argument("--model", required=True, help="the camera model it is for (as the registry names it)")
    add.add_argument("--version", required=True, help="its version (as the camera reports it)")
    signature = add.add_mutually_exclusive_group(required=True)
    signature.add_argument("--signature", metavar="BASE64", help="the signature, base64")
    signature.add_argument("--signature-file", metavar="FILE", help="a file holding the signature, base64")
    add.add_argument("--notes", default="", help="release notes (at most 2,000 characters)")
    add.add_argument("--json", action="store_true", help="write the release as JSON")
    _config(add)
    add.set_defaults(handler=cmd_firmware_add)
    listing = actions.add_parser("list", help="list releases, newest first", description="Releases, newest first.")
    listing.add_argument("--model", help="only this model's")
    state = listing.add_mutually_exclusive_group()
    state.add_argument("--withdrawn", action="store_true", help="only withdrawn releases")
    state.add_argument("--current", action="store_true", help="only releases not withdrawn")
    listing.add_argument("--json", action="store_true", help="write JSON")
    _config(listing)
    listing.set_defaults(handler=cmd_firmware_list)
    withdraw = actions.add_parser(
        "withdraw",
        help="withdraw a release (audited; the artifact is kept)",
        description="A withdrawn release is never offered to a camera again; it stays listed, and its "
        "artifact is kept.",
    )
    withdraw.add_argument("release_id", metavar="ID", help="the release's number (see list)")
    withdraw.add_argument("--reason", required=True, help="why (goes into the audit trail)")
    _config(withdraw)
    withdraw.set_defaults(handler=cmd_firmware_withdraw)
    sweep = actions.add_parser(
        "sweep",
        help="delete artifacts no release names (left by a crash during an addition)",
        description="Deletes firmware-<sha256> blobs that no release names and that were stored more than "
        "--grace-hours ago (an addition still under way is never swept), each deletion audited. Central "
        "runs this daily by itself.",
    )
    sweep.add_argument(
        "--grace-hours", type=float, default=24.0, metavar="H", help="keep orphans younger than this (default 24)"
    )
    sweep.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    sweep.add_argument("--json", action="store_true", help="write the result as JSON")
    _config(sweep)
    sweep.set_defaults(handler=cmd_firmware_sweep)

    profile = commands.add_parser(
        "profile",
        help="camera profiles: set, show, explain a camera's",
        description="The settings cameras must carry, by scope: default < model:<model> < borough:<borough> "
        "< role:<role> (the more specific wins, each setting on its own; docs/firmware.md).",
    )
    steps = profile.add_subparsers(dest="action", metavar="ACTION", required=True)
    set_ = steps.add_parser(
        "set",
        help="set some of a scope's settings (the others stay as they are)",
        description="Change what SCOPE sets: each option given replaces that setting, --unset removes one "
        "(it then comes from a less specific scope). Audited with the values before and after.",
    )
    set_.add_argument("scope", metavar="SCOPE", help="default, model:<model>, borough:<borough> or role:<role>")
    set_.add_argument("--pre-record-s", type=int, metavar="N", help="seconds of pre-record (0-120)")
    set_.add_argument("--resolution", choices=get_args(Resolution), help="video resolution")
    set_.add_argument("--frame-rate", type=int, choices=get_args(FrameRate), help="frames a second")
    set_.add_argument("--audio", choices=("on", "off"), help="record sound")
    set_.add_argument("--recording-indicator", choices=("on", "off"), help="the red recording light")
    set_.add_argument("--mount", choices=get_args(Mount), help="where the camera is worn")
    set_.add_argument(
        "--unset", action="append", default=[], choices=SETTINGS, metavar="SETTING", help="stop setting this here"
    )
    set_.add_argument("--json", action="store_true", help="write the profile as JSON")
    _config(set_)
    set_.set_defaults(handler=cmd_profile_set)
    show = steps.add_parser("show", help="every scope's profile, or one", description="What each scope sets.")
    show.add_argument("scope", metavar="SCOPE", nargs="?", help="only this scope (default: every profile)")
    show.add_argument("--json", action="store_true", help="write JSON")
    _config(show)
    show.set_defaults(handler=cmd_profile_show)
    why = steps.add_parser(
        "explain",
        help="a camera's effective settings, each with the scope it came from",
        description="Each setting's value for the camera and where it came from, e.g. 'mount = head from: role armed'.",
    )
    why.add_argument("serial", metavar="SERIAL", help="the camera's serial")
    why.add_argument("--json", action="store_true", help="write JSON")
    _config(why)
    why.set_defaults(handler=cmd_profile_explain)
    past = steps.add_parser(
        "history",
        help="a camera's settings over time, confirmed by the camera or pending",
        description="Each version of the camera's settings, newest first: when and why it changed, where each "
        "setting came from, and whether the camera confirmed carrying it (a profile deployment it reported "
        "applied) or it is pending (superseded: never carried, a later one came after).",
    )
    past.add_argument("serial", metavar="SERIAL", help="the camera's serial")
    past.add_argument(
        "--limit", type=int, default=20, metavar="N", help="at most this many versions, newest first (1-200)"
    )
    past.add_argument("--cursor", metavar="CURSOR", help="the next_cursor of the previous page (--json)")
    past.add_argument("--json", action="store_true", help="write JSON (a page, with next_cursor)")
    _config(past)
    past.set_defaults(handler=cmd_profile_history)


def _actor() -> str:
    return "cli:" + getpass.getuser()


def _print_json(value) -> int:
    print(msgspec.json.encode(value).decode())
    return 0


def cmd_firmware_add(args: argparse.Namespace) -> int:
    signature = args.signature
    if args.signature_file is not None:
        try:
            signature = Path(args.signature_file).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise FleetError(f"cannot read the signature from {args.signature_file}: {exc}") from None
    artifact = Path(args.artifact)
    if not artifact.is_file():
        raise FleetError(f"no artifact file {artifact}")
    with central_services(args.config) as services:
        try:
            staged = services.releases.stage_file(artifact)
        except OSError as exc:
            raise FleetError(f"cannot read {artifact}: {exc}") from None
        release, created = services.releases.add(
            staged, model=args.model, version=args.version, signature=signature, actor=_actor(), notes=args.notes
        )
    if args.json:
        return _print_json(release)
    print(
        f"release {release.id}: {release.model} {release.version}, {release.size} bytes, sha256 {release.sha256}, "
        f"signed by {release.signed_by}" + ("" if created else " (released already, the same bytes)")
    )
    return 0


def cmd_firmware_list(args: argparse.Namespace) -> int:
    withdrawn = True if args.withdrawn else False if args.current else None
    with central_services(args.config) as services:
        releases = services.releases.releases(args.model, withdrawn)
    if args.json:
        return _print_json(releases)
    for r in releases:
        state = f"withdrawn {r.withdrawn_at:%Y-%m-%d}: {r.withdrawn_reason}" if r.withdrawn_at else "current"
        print(f"{r.id:5} {r.model:20} {r.version:12} {r.size:>12,} {r.added_at:%Y-%m-%d} {state}")
    print(f"{len(releases)} release(s)")
    return 0


def cmd_firmware_withdraw(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        release = services.releases.withdraw(_release_id(args.release_id), args.reason, _actor())
    print(f"release {release.id} ({release.model} {release.version}) withdrawn")
    return 0


def cmd_firmware_sweep(args: argparse.Namespace) -> int:
    if not 1 <= args.grace_hours <= 24 * 365:
        raise FleetError("--grace-hours: between 1 and 8760 (an addition under way must never be swept)")
    with central_services(args.config) as services:
        result = services.releases.sweep_orphans(args.grace_hours * 3600, dry_run=args.dry_run, actor=_actor())
    if args.json:
        return _print_json(result)
    verb = "would delete" if args.dry_run else "deleted"
    print(
        f"{verb} {len(result.deleted)} artifact(s) no release names ({result.deleted_bytes:,} bytes); "
        f"kept {result.young} younger than {args.grace_hours:g} h and {result.named} that releases name"
    )
    for key in result.deleted:
        print(f"  {key}")
    return 0


def _given(args: argparse.Namespace) -> dict[str, object]:
    onoff = {"on": True, "off": False}
    given: dict[str, object] = {
        "pre_record_s": args.pre_record_s,
        "resolution": args.resolution,
        "frame_rate": args.frame_rate,
        "audio": onoff.get(args.audio) if args.audio else None,
        "recording_indicator": onoff.get(args.recording_indicator) if args.recording_indicator else None,
        "mount": args.mount,
    }
    return {name: value for name, value in given.items() if value is not None}


def cmd_profile_set(args: argparse.Namespace) -> int:
    given = _given(args)
    both = sorted(set(given) & set(args.unset))
    if both:
        raise FleetError(f"{', '.join(both)}: both set and --unset")
    if not given and not args.unset:
        raise FleetError("nothing to change: give a setting (e.g. --mount head) or --unset SETTING")
    with central_services(args.config) as services:
        current = msgspec.structs.asdict(services.profiles.get(args.scope).settings)
        merged = {**current, **given} | dict.fromkeys(args.unset)
        try:
            settings = msgspec.convert(merged, CameraSettings)
        except msgspec.ValidationError as exc:
            raise FleetError(f"profile {args.scope}: {exc}") from None
        profile = services.profiles.set(args.scope, settings, _actor())
    if args.json:
        return _print_json(profile)
    _print_profile(profile)
    return 0


def _print_profile(profile) -> None:
    values = msgspec.structs.asdict(profile.settings)
    shown = ", ".join(f"{k} = {v}" for k, v in values.items() if v is not None) or "nothing (no profile)"
    print(f"{profile.scope}: {shown}")


def cmd_profile_show(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        profiles = [services.profiles.get(args.scope)] if args.scope else services.profiles.all()
    if args.json:
        return _print_json(profiles[0] if args.scope else profiles)
    for profile in profiles:
        _print_profile(profile)
    if not args.scope:
        print(f"{len(profiles)} profile(s); a setting no profile sets has its built-in value")
    return 0


def cmd_profile_explain(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        answer = services.profiles.explain(args.serial)
    if args.json:
        return _print_json(answer)
    held = f", issued to {answer.officer_id} ({answer.role})" if answer.officer_id else ", issued to no one"
    print(f"{answer.serial}: model {answer.model or '-'}, borough {answer.borough or '-'}{held}")
    for line in answer.lines:
        print(f"  {line}")
    sys.stdout.flush()
    return 0


def cmd_profile_history(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        page = services.profiles.history(args.serial, args.cursor, args.limit)
    if args.json:
        return _print_json(page)
    carried = page.carried
    if carried is not None and carried.confirmed_at is not None:
        when = f"{carried.confirmed_at:%Y-%m-%d %H:%M}"
        print(f"{page.serial}: carries version {carried.id} (confirmed {when}, deployment {carried.deployment_id})")
    else:
        print(f"{page.serial}: no settings confirmed by the camera yet")
    for v in page.items:
        confirmed = f" {v.confirmed_at:%Y-%m-%d %H:%M} at {v.station_id or '-'}" if v.confirmed_at else ""
        print(f"  {v.id} {v.at:%Y-%m-%d %H:%M} {v.status}{confirmed}: {v.cause} (by {v.actor}) {v.source}")
        for line in v.lines:
            print(f"      {line}")
    if page.next_cursor:
        print(f"  (older: --cursor {page.next_cursor})")
    sys.stdout.flush()
    return 0


# -- fleet central deploy ------------------------------------------------------------------------


def _register_deploy(commands: argparse._SubParsersAction) -> None:
    deploy = commands.add_parser(
        "deploy",
        help="deployments of a release or the profiles, in phases that pause themselves",
        description="Deliver a firmware release or the camera profiles to a target of cameras, phase by phase; a "
        "phase whose failures pass its threshold pauses the deployment (docs/firmware.md).",
    )
    actions = deploy.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="create a deployment (its first phase opens at once)",
        description="The target is frozen now: every option given narrows it (repeat an option for several "
        "values). Phases: --phase 1 --phase 10 --phase 100 (cumulative shares) or --phase boroughs=A,B (a borough "
        "wave); the last phase takes every camera left. Default: 1, 10, 50, 100.",
    )
    what = create.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--release", metavar="ID", help="the firmware release to deploy (see: fleet central firmware list)"
    )
    what.add_argument("--profiles", action="store_true", help="deploy each camera's effective profile")
    create.add_argument("--model", action="append", help="only cameras of this model (profiles)")
    create.add_argument("--borough", action="append", help="only cameras of this borough")
    create.add_argument("--station", action="append", help="only cameras whose home station is this one")
    create.add_argument("--serial", action="append", help="only this camera")
    create.add_argument("--from-version", action="append", help="only cameras now reporting this firmware version")
    create.add_argument("--phase", action="append", metavar="SHARE|boroughs=A,B", help="a phase, in order")
    create.add_argument("--max-failure-pct", type=float, default=5.0, help="each phase's failure threshold (5)")
    create.add_argument("--min-results", type=int, default=3, help="results before a phase is judged (3)")
    create.add_argument(
        "--soak-hours",
        type=float,
        default=DEFAULT_SOAK_HOURS,
        help=f"a phase open this long with enough results, failures within its threshold, opens the next "
        f"({DEFAULT_SOAK_HOURS:g})",
    )
    create.add_argument("--max-attempts", type=int, default=3, help="failures before a camera is given up (3)")
    create.add_argument("--min-charge-pct", type=float, default=50.0, help="a camera is updated only this charged (50)")
    create.add_argument("--max-temperature-c", type=float, default=40.0, help="and no hotter than this (40)")
    create.add_argument("--reason", required=True, help="why (goes into the audit trail)")
    create.add_argument("--json", action="store_true", help="write the deployment as JSON")
    _config(create)
    create.set_defaults(handler=cmd_deploy_create)
    listing = actions.add_parser("list", help="deployments, newest first", description="Deployments, newest first.")
    listing.add_argument(
        "--state", choices=("running", "paused", "completed", "aborted", "rolled_back"), help="only these"
    )
    listing.add_argument("--json", action="store_true", help="write JSON")
    _config(listing)
    listing.set_defaults(handler=cmd_deploy_list)
    show = actions.add_parser(
        "show", help="one deployment, each phase with its figures", description="A deployment and its phases."
    )
    show.add_argument("deployment_id", metavar="ID", help="the deployment's number (see list)")
    show.add_argument("--json", action="store_true", help="write JSON")
    _config(show)
    show.set_defaults(handler=cmd_deploy_show)
    for name, text in (
        ("pause", "pause a running deployment: every standing offer is withdrawn"),
        ("resume", "resume a paused deployment: offered again; only what comes after is judged"),
        ("abort", "abort: every camera without a final state is cancelled"),
        ("rollback", "roll a paused or aborted release deployment back to the release its cameras came from"),
    ):
        decision = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + " (audited).")
        decision.add_argument("deployment_id", metavar="ID", help="the deployment's number (see list)")
        decision.add_argument("--reason", required=True, help="why (goes into the audit trail)")
        decision.add_argument("--json", action="store_true", help="write the deployment as JSON")
        _config(decision)
        decision.set_defaults(handler=cmd_deploy_decide, decision=name)


def _phases(texts: list[str] | None, max_failure_pct: float, min_results: int, soak_hours: float) -> list[dict]:
    phases: list[dict] = []
    for text in texts or ["1", "10", "50", "100"]:
        rule = {"max_failure_pct": max_failure_pct, "min_results": min_results, "soak_hours": soak_hours}
        if text.startswith("boroughs="):
            phases.append({"boroughs": [b.strip() for b in text.removeprefix("boroughs=").split(",")], **rule})
            continue
        try:
            phases.append({"share_pct": float(text.rstrip("%")), **rule})
        except ValueError:
            raise FleetError(f"--phase {text!r}: a share (e.g. 10) or boroughs=A,B") from None
    return phases


def cmd_deploy_create(args: argparse.Namespace) -> int:
    target = {
        "models": args.model,
        "boroughs": args.borough,
        "stations": args.station,
        "serials": args.serial,
        "from_versions": args.from_version,
    }
    body = {
        "reason": args.reason,
        "release_id": int(args.release) if args.release and args.release.isdigit() else args.release,
        "profiles": args.profiles,
        "target": {k: v for k, v in target.items() if v is not None},
        "phases": _phases(args.phase, args.max_failure_pct, args.min_results, args.soak_hours),
        "policy": {
            "max_attempts": args.max_attempts,
            "min_charge_pct": args.min_charge_pct,
            "max_temperature_c": args.max_temperature_c,
        },
    }
    try:
        request = msgspec.convert(body, DeploymentRequest)
    except msgspec.ValidationError as exc:
        raise FleetError(f"deploy create: {exc}") from None
    with central_services(args.config) as services:
        deployment = services.deployments.create(request, _actor())
    if args.json:
        return _print_json(deployment)
    _print_deployment(deployment)
    return 0


def cmd_deploy_list(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        deployments = services.deployments.deployments(args.state)
    if args.json:
        return _print_json(deployments)
    for d in deployments:
        f = d.figures
        print(
            f"{d.id:5} {_what(d):32} {d.state:11} {f.updated:>6}/{f.cameras:<6} updated, {f.failed} failed, "
            f"{d.created_at:%Y-%m-%d}"
        )
    print(f"{len(deployments)} deployment(s)")
    return 0


def cmd_deploy_show(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        deployment = services.deployments.deployment(_deployment_id(args.deployment_id))
    if args.json:
        return _print_json(deployment)
    _print_deployment(deployment)
    return 0


def cmd_deploy_decide(args: argparse.Namespace) -> int:
    try:
        reason = msgspec.convert({"reason": args.reason}, DecisionRequest).reason
    except msgspec.ValidationError as exc:
        raise FleetError(f"--reason: {exc}") from None
    deployment_id = _deployment_id(args.deployment_id)
    with central_services(args.config) as services:
        act = getattr(services.deployments, args.decision)
        deployment = act(deployment_id, reason, _actor())
    if args.json:
        return _print_json(deployment)
    if args.decision == "rollback":
        print(f"deployment {deployment_id} rolled back by deployment {deployment.id}:")
    _print_deployment(deployment)
    return 0


def _what(d: Deployment) -> str:
    return f"{d.release.model} {d.release.version}" if d.release else "the profiles"


def _soak(hours: float | None) -> str:
    return f", soak {hours:g} h" if hours is not None else ""


def _print_deployment(d: Deployment) -> None:
    print(f"deployment {d.id}: {_what(d)}, {d.state}; {d.decision} ({d.decided_by}, {d.decided_at:%Y-%m-%d %H:%M})")
    for p in d.phases:
        f = p.figures
        what = PhaseSpec(share_pct=p.share_pct, boroughs=p.boroughs).describe()
        print(
            f"  phase {p.number} ({what}, max {p.max_failure_pct:g} % failures{_soak(p.soak_hours)}): {p.state:7} "
            f"{f.cameras} camera(s), "
            f"{f.updated} updated, {f.failed} failed, {f.gave_up} gave up, {f.cancelled} cancelled, "
            f"{f.outstanding} outstanding"
        )
