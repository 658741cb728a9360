"""``fleet central …``: run the force-wide server."""

from __future__ import annotations

import argparse
import getpass
import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

from central.access.users import ROLES
from fleet.config import CentralSettings, load_settings
from fleet.errors import ConfigError, FleetError
from fleet.logs import configure_logging

if TYPE_CHECKING:
    from central.core.services import Services


def register(groups: argparse._SubParsersAction) -> None:
    central = groups.add_parser(
        "central",
        help="run the force-wide central server",
        description="Central: receives clips from every station and serves the API.",
    )
    commands = central.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve the API under uvicorn until stopped",
        description="Serve central's API (tus uploads, clips) on host:port from the "
        "config. Stops cleanly on Ctrl-C or SIGTERM.",
    )
    serve.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    serve.add_argument(
        "--port",
        type=int,
        metavar="N",
        help="listen on this port instead of the config's (several replicas on one machine: docs/deployment.md)",
    )
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="log lines as text or one JSON object each, instead of the config's log_format (docs/deploy.md)",
    )
    serve.set_defaults(handler=cmd_serve)

    officers = commands.add_parser(
        "officers",
        help="import or export officers as CSV",
        description="Officers CSV (columns officer_id, borough, team, role, name, "
        "active), read and written straight to central's database; "
        "works whether or not central is serving.",
    )
    actions = officers.add_subparsers(dest="action", metavar="ACTION", required=True)
    load = actions.add_parser(
        "import",
        help="create or update officers from a CSV file",
        description="Nothing is imported unless every row is valid; errors name the line.",
    )
    load.add_argument("csv", metavar="FILE", help="the CSV file ('-' for standard input)")
    load.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    load.set_defaults(handler=cmd_officers_import)
    dump = actions.add_parser("export", help="write officers as CSV", description="Write every officer as CSV.")
    dump.add_argument("csv", metavar="FILE", nargs="?", default="-", help="where to write (default: standard output)")
    dump.add_argument("--borough", help="only this borough's officers")
    dump.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    dump.set_defaults(handler=cmd_officers_export)

    users = commands.add_parser(
        "add-user",
        help="add a user with a role (password asked, or --password-stdin)",
        description="Add a person who uses central's dashboard or API. Roles: admin, "
        "fleet_manager (devices, stations, firmware, camera profiles), planner (roll-out), supervisor "
        "(assignments, unattributed clips, holds, footage; --borough limits "
        "them to one), auditor (audit trail, read only), information_manager (the public's "
        "requests to keep footage; finding, holding and the custody report of clips, never their "
        "content; --borough limits them to one), viewer (read only).",
    )
    users.add_argument("name", metavar="NAME", help="the user name (lower case, e.g. j.smith)")
    users.add_argument("--role", required=True, choices=ROLES, help="what the user may do (see above)")
    users.add_argument("--borough", help="a supervisor's or information manager's borough (default: force-wide)")
    users.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    users.add_argument("--no-password", action="store_true", help="no password: API tokens only")
    users.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    users.set_defaults(handler=cmd_add_user)
    password = commands.add_parser(
        "set-password",
        help="set a user's password (ends their sessions)",
        description="Set a user's password; every session they have ends.",
    )
    password.add_argument("name", metavar="NAME")
    password.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    password.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    password.set_defaults(handler=cmd_set_password)
    disable = commands.add_parser(
        "disable-user",
        help="disable a user: tokens revoked, sessions ended",
        description="A disabled user can no longer log in or use a token.",
    )
    disable.add_argument("name", metavar="NAME")
    disable.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    disable.set_defaults(handler=cmd_disable_user)
    listing = commands.add_parser("users", help="list users", description="Every user with role and borough.")
    listing.add_argument("--json", action="store_true", help="write JSON")
    listing.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    listing.set_defaults(handler=cmd_users)
    token = commands.add_parser(
        "token",
        help="API tokens for scripts: create, list, revoke",
        description="A token is shown once when created; central keeps only its hash.",
    )
    token_actions = token.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = token_actions.add_parser(
        "create",
        help="create a token for a user (printed once)",
        description="Create an API token acting as the user, with their role.",
    )
    create.add_argument("name", metavar="USER")
    create.add_argument("--label", required=True, help="what it is for (e.g. 'nightly export')")
    create.add_argument("--days", type=int, choices=range(1, 3651), metavar="N", help="expires after N days")
    create.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    create.set_defaults(handler=cmd_token_create)
    tokens = token_actions.add_parser(
        "list", help="list tokens (never the tokens themselves)", description="Tokens with their user, label and state."
    )
    tokens.add_argument("--user", help="only this user's")
    tokens.add_argument("--json", action="store_true", help="write JSON")
    tokens.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    tokens.set_defaults(handler=cmd_token_list)
    revoke = token_actions.add_parser(
        "revoke", help="revoke a token by its id", description="A revoked token is refused from then on."
    )
    revoke.add_argument("token_id", type=int, metavar="ID")
    revoke.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    revoke.set_defaults(handler=cmd_token_revoke)

    retention = commands.add_parser(
        "retention",
        help="retention rules, the deletion job and its digest",
        description="Footage retention at central, straight on its database.",
    )
    steps = retention.add_subparsers(dest="action", metavar="ACTION", required=True)
    apply = steps.add_parser(
        "apply",
        help="apply the [retention] rules file (shortening needs --confirm)",
        description="Adopt the rules in the config's [retention] rules file. If they shorten "
        "any period, nothing changes unless --confirm is given: first you see how "
        "many clips the next run would delete.",
    )
    apply.add_argument("--confirm", action="store_true", help="apply rules that shorten a retention period")
    apply.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    apply.set_defaults(handler=cmd_retention_apply)
    run = steps.add_parser(
        "run",
        help="run the retention job now (soft deletes, then purges)",
        description="What the daily job does: clips whose retention ended and that no hold "
        "protects are soft-deleted; soft-deleted ones past recovery are purged.",
    )
    run.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    run.set_defaults(handler=cmd_retention_run)
    digest = steps.add_parser(
        "digest",
        help="what the next days' runs will delete",
        description="Deletions due in the next days, and clips a hold keeps.",
    )
    digest.add_argument("--days", type=int, default=7, choices=range(1, 91), metavar="N", help="days ahead (1-90)")
    digest.add_argument("--json", action="store_true", help="write JSON")
    digest.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    digest.set_defaults(handler=cmd_retention_digest)
    reviews = steps.add_parser(
        "reviews",
        help="clips past a reviewed (MoPI) period, waiting for a decision",
        description="Clips whose deciding category is reviewed are never deleted unseen: "
        "when the period ends they wait here for a reviewer.",
    )
    reviews.add_argument(
        "--limit",
        type=int,
        default=100,
        choices=range(1, 100_001),
        metavar="N",
        help="at most N clips, longest waiting first (default 100)",
    )
    reviews.add_argument("--json", action="store_true", help="write JSON")
    reviews.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    reviews.set_defaults(handler=cmd_retention_reviews)
    review = steps.add_parser(
        "review",
        help="record a review decision on a clip: retain or dispose",
        description="Retain keeps the clip for its categories' period again (or until "
        "--until); dispose soft-deletes it (recoverable for the recovery days). "
        "Audited with your user name and the reason.",
    )
    review.add_argument("clip_id", metavar="CLIP")
    decision = review.add_mutually_exclusive_group(required=True)
    decision.add_argument("--retain", action="store_true", help="keep it for another period")
    decision.add_argument("--dispose", action="store_true", help="dispose of it (soft delete)")
    review.add_argument("--until", metavar="DATE", help="with --retain: keep until this date (YYYY-MM-DD)")
    review.add_argument("--reason", required=True, help="why (goes into the audit trail)")
    review.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    review.set_defaults(handler=cmd_retention_review)

    save = commands.add_parser(
        "backup",
        help="back up central's database while it runs (a folder with a manifest)",
        description="One moment of central's database, taken while it serves (SQLite's online backup, or "
        "pg_dump on one snapshot), written to a new folder under --to with a manifest (schema version, "
        "engine, time, each file's SHA-256). It holds password and token hashes, never tokens, and the "
        "disclosure signing key central made itself, if any: keep it as you keep that key. Not the "
        "footage: the blob store protects itself (docs/backup.md).",
    )
    save.add_argument("--to", required=True, metavar="DIR", help="the folder the backup's own folder is made in")
    save.add_argument("--name", help="the backup folder's name (default: central-<UTC time>)")
    save.add_argument("--json", action="store_true", help="write the manifest as JSON")
    save.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    save.set_defaults(handler=cmd_backup)
    back = commands.add_parser(
        "restore",
        help="restore a backup into central's (empty) database; central stopped",
        description="Check the backup's manifest and every file's SHA-256, refuse a schema newer than this "
        "program (an older one is migrated), refuse a database that is not empty unless --replace, restore, "
        "and record the restore in the audit trail and the published anchors file. Stop central first. "
        "Stations then resend what they hold that the backup lacks (docs/backup.md).",
    )
    back.add_argument("backup", metavar="BACKUP", help="the backup's folder")
    back.add_argument("--replace", action="store_true", help="overwrite a database that is there already")
    back.add_argument("--config", required=True, metavar="FILE", help="central's TOML config file")
    back.set_defaults(handler=cmd_restore)

    from central.firmware import cli as firmware_cli  # here: it borrows central_services from this module

    firmware_cli.register(commands)
    from central.rollout import model_cli  # the same

    model_cli.register(commands)
    from central.alerts import cli as alerts_cli  # the same

    alerts_cli.register(commands)
    from central.events import cli as claims_cli  # the same

    claims_cli.register(commands)


def _read_password(from_stdin: bool) -> str:
    import sys

    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise FleetError("no terminal to ask for the password: pass it on standard input with --password-stdin")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise FleetError("the two passwords differ")
    return first


def cmd_add_user(args: argparse.Namespace) -> int:
    password = None if args.no_password else _read_password(args.password_stdin)
    with central_services(args.config) as services:
        user = services.users.add(
            args.name, args.role, "cli:" + getpass.getuser(), password=password, borough=args.borough
        )
    print(
        f"user {user.name} added: {user.role}"
        + (f" for {user.borough}" if user.borough else "")
        + ("" if user.has_password else " (no password: API tokens only)")
    )
    return 0


def cmd_set_password(args: argparse.Namespace) -> int:
    password = _read_password(args.password_stdin)
    with central_services(args.config) as services:
        services.users.set_password(args.name, password, "cli:" + getpass.getuser())
    print(f"password of {args.name} set; their sessions ended")
    return 0


def cmd_disable_user(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        services.users.disable(args.name, "cli:" + getpass.getuser())
    print(f"user {args.name} disabled: tokens revoked, sessions ended")
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        everyone = services.users.all()
    if args.json:
        return _print_json(everyone)
    for user in everyone:
        print(
            f"{user.name:24} {user.role:14} {user.borough or '-':20} " + ("disabled" if user.disabled_at else "active")
        )
    print(f"{len(everyone)} user(s)")
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    import sys

    with central_services(args.config) as services:
        new = services.users.create_token(args.name, args.label, "cli:" + getpass.getuser(), days=args.days)
    print(new.token)
    print(f"token {new.info.id} for {new.info.user} ({new.info.label}): shown once, keep it safe", file=sys.stderr)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        tokens = services.users.tokens(args.user)
    if args.json:
        return _print_json(tokens)
    for t in tokens:
        state = "revoked" if t.revoked_at else (f"expires {t.expires_at:%Y-%m-%d}" if t.expires_at else "live")
        print(f"{t.id:5} {t.user:24} {t.label:32} {state}")
    print(f"{len(tokens)} token(s)")
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        token = services.users.revoke_token(args.token_id, "cli:" + getpass.getuser())
    print(f"token {token.id} of {token.user} revoked")
    return 0


def cmd_retention_apply(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        retention = services.retention
        change = retention.apply_rules(retention.configured_rules(), "cli:" + getpass.getuser(), confirm=args.confirm)
    if change.shortened and not change.applied:
        print(
            f"these rules shorten {', '.join(change.shortened)}: the next run would delete {change.would_delete} "
            f"clip(s), {change.more_than_now} more than the rules in force. Nothing was changed; run again with "
            "--confirm to apply them."
        )
        return 1
    print(
        "retention rules applied"
        + (
            f" (shortened {', '.join(change.shortened)}; {change.would_delete} clip(s) now due)"
            if change.shortened
            else ""
        )
        if change.applied
        else "retention rules unchanged"
    )
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from central.core import backup

    settings = load_settings(args.config, CentralSettings)
    folder, manifest = backup.backup(settings, Path(args.to), args.name)
    if args.json:
        return _print_json(manifest)
    head = manifest.details.get("audit_head")
    print(
        f"backup written to {folder}: {manifest.engine}, schema v{manifest.schema_version}, "
        f"{manifest.details.get('clips')} clip records, audit record {head['id'] if isinstance(head, dict) else 0}"
    )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from central.core import backup

    settings = load_settings(args.config, CentralSettings)
    restored = backup.restore(settings, Path(args.backup), replace=args.replace)
    taken = restored.manifest.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(
        f"restored the backup taken {taken} (schema v{restored.manifest.schema_version}, now "
        f"v{restored.migrated_to}); the audit chain carries on from record {restored.audit_head[0]}, "
        f"recorded in {settings.anchors_file}"
    )
    print("start central: stations resend the events and clips it lacks (docs/backup.md, 'After a restore')")
    return 0


def cmd_retention_run(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        report = services.retention.run()
    print(
        f"{report.assessed} clips assessed, {report.soft_deleted} soft-deleted, {report.purged} purged, "
        f"{report.held_back} kept by holds, {report.for_review} waiting for review"
    )
    return 0


def cmd_retention_digest(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        digest = services.retention.digest(args.days)
    if args.json:
        return _print_json(digest)
    for day in digest.days:
        print(f"{day.day}: {day.soft_deletes} to soft-delete, {day.purges} to purge")
    print(f"{digest.held_back} clips past or near their retention are kept by holds")
    print(f"{digest.reviews_due} clip(s) due for review by then (a reviewer decides; nothing is deleted unseen)")
    return 0


def cmd_retention_reviews(args: argparse.Namespace) -> int:
    with central_services(args.config) as services:
        due = services.retention.reviews(args.limit)
    if args.json:
        return _print_json(due)
    for clip in due:
        held = f", held by {', '.join(map(str, clip.held_by))}" if clip.held_by else ""
        print(f"{clip.clip_id}: {', '.join(clip.categories)}, due since {clip.retain_until:%Y-%m-%d}{held}")
    print(f"{len(due)} clip(s) waiting for review" + (" (more: raise --limit)" if len(due) == args.limit else ""))
    return 0


def cmd_retention_review(args: argparse.Namespace) -> int:
    from datetime import date, datetime

    from central.evidence.retention import ReviewRequest

    until = None
    if args.until:
        if not args.retain:
            raise FleetError("--until goes with --retain")
        try:
            until = datetime.combine(date.fromisoformat(args.until), datetime.min.time(), UTC)
        except ValueError:
            raise FleetError(f"--until {args.until!r} is not a date (YYYY-MM-DD)") from None
    if not args.reason.strip():
        raise FleetError("--reason must say why")
    request = ReviewRequest(decision="retain" if args.retain else "dispose", reason=args.reason, retain_until=until)
    with central_services(args.config) as services:
        clip = services.retention.review(args.clip_id, request, "cli:" + getpass.getuser())
    print(
        f"{clip.clip_id}: "
        + (
            f"retained until {clip.retain_until:%Y-%m-%d}"
            if args.retain
            else "disposed of; recoverable until it is purged"
        )
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from central.core.app import create_app
    from central.core.httpserver import ServerTls, uvicorn_config
    from central.core.providers import started
    from central.uploads.blobstore import open_blob_store
    from fleet import heap

    settings = load_settings(args.config, CentralSettings)
    if args.port is not None and not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port}: not a TCP port")
    # The app checks its blob store at start-up too, but a failure there reaches uvicorn as a traceback:
    # checked here first, a missing bucket is one line and exit 2.
    open_blob_store(settings).check()
    configure_logging(settings.log_level, args.log_format or settings.log_format)
    server_tls = ServerTls(settings.tls) if settings.tls is not None else None
    logging.getLogger(__name__).info(
        "central on %s://%s:%d, data in %s",
        "https" if server_tls else "http",
        settings.host,
        args.port or settings.port,
        settings.data_dir,
    )
    app = create_app(settings)
    if server_tls is not None:  # a renewed certificate, without a restart (uvicorn leaves SIGHUP alone)
        signal.signal(signal.SIGHUP, lambda _sig, _frame: server_tls.reload())

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            heap.settle()  # the app has started: what it made lives as long as the process

        def handle_exit(self, sig, frame) -> None:
            # Long polls answer at once (an empty page) instead of holding the shutdown up.
            serving = started(app)
            if serving is not None:
                serving.changes.close()
            super().handle_exit(sig, frame)

    # A replica's own port stays out of its settings: they are audited, and the same for every replica.
    Server(uvicorn_config(app, settings, port=args.port, server_tls=server_tls)).run()
    return 0


@contextmanager
def central_services(config: str) -> Iterator[Services]:
    """Central's services straight on its database: these commands work whether or not
    central is serving (SQLite WAL; writes take their turn)."""
    from central.core.services import open_services

    with open_services(load_settings(config, CentralSettings)) as services:
        yield services


def _print_json(value) -> int:
    import msgspec

    print(msgspec.json.encode(value).decode())
    return 0


def cmd_officers_import(args: argparse.Namespace) -> int:
    import sys

    from central.registry.officers import officers_from_csv

    try:
        text = sys.stdin.read() if args.csv == "-" else Path(args.csv).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetError(f"cannot read {args.csv}: {exc}") from None
    officers = officers_from_csv(text)
    with central_services(args.config) as services:
        result = services.officers.upsert(officers, "cli:" + getpass.getuser())
    print(
        f"{len(officers)} officers read: {result.created} created, {result.updated} updated, "
        f"{result.unchanged} unchanged"
    )
    return 0


def cmd_officers_export(args: argparse.Namespace) -> int:
    import sys

    import msgspec

    from central.registry.officers import OfficerRow
    from fleet import csvio

    with central_services(args.config) as services:
        rows = services.officers.all(args.borough)
    text = csvio.write_csv((OfficerRow(**msgspec.structs.asdict(o)) for o in rows), OfficerRow)
    if args.csv == "-":
        sys.stdout.write(text)
    else:
        with open(args.csv, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        print(f"{len(rows)} officers written to {args.csv}", file=sys.stderr)
    return 0
