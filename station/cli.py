"""``fleet station …``: run a station node and read its local state."""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from fleet.config import StationSettings, load_settings
from fleet.errors import BatteryGateRefused, FleetError
from fleet.logs import configure_logging

if TYPE_CHECKING:  # the commands import these where they use them
    from station.desk import Desk
    from station.store import StationStore


def register(groups: argparse._SubParsersAction) -> None:
    station = groups.add_parser(
        "station",
        help="run a borough docking station or inspect its queue",
        description="A borough docking station: dock ingest, local queue, sync to central.",
    )
    commands = station.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="run the station (dock ingest + sync + jobs) until stopped",
        description="Watch dock_dir, ingest docked cameras, upload clips to central. "
        "Stops cleanly on Ctrl-C or SIGTERM.",
    )
    run.add_argument(
        "--config",
        required=True,
        metavar="FILE",
        action="append",
        help="the station's TOML config file; repeat it to run several stations in this one process",
    )
    run.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="log lines as text or one JSON object each, instead of the config's log_format (docs/deploy.md)",
    )
    run.set_defaults(handler=cmd_run)

    status = commands.add_parser(
        "status",
        help="show the local queue (works whether or not the station runs)",
        description="Read the station's database and show its queue and problems.",
    )
    status.add_argument("--config", required=True, metavar="FILE", help="the station's TOML config file")
    status.add_argument("--json", action="store_true", help="print JSON (docs/contracts.md §4) instead of a table")
    status.set_defaults(handler=cmd_status)

    doctor = commands.add_parser(
        "doctor",
        help="check what can go wrong at this station and say what to do about each",
        description="The disk and how fast it fills, the database, the dock folder, central's reach, "
        "certificate and token, and the clock against central's. Exit 1 when something stops the "
        "station now; works whether or not the station runs.",
    )
    doctor.add_argument("--config", required=True, metavar="FILE", help="the station's TOML config file")
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON")
    doctor.set_defaults(handler=cmd_doctor)

    retry = commands.add_parser(
        "retry",
        help="requeue clips central refused, after fixing the cause",
        description="Put every clip in state 'failed' back in the upload queue.",
    )
    retry.add_argument("--config", required=True, metavar="FILE", help="the station's TOML config file")
    retry.set_defaults(handler=cmd_retry)

    checkout = commands.add_parser(
        "checkout",
        help="check a pool camera out to an officer for a shift (works with central down)",
        description="Hand a docked pool camera to an officer. Refused, with the reason, when the camera is "
        "not charged enough, is held by someone, is personally issued, or the officer already "
        "holds one. Recorded locally and sent to central when it can be reached.",
    )
    checkout.add_argument("serial", help="the camera's serial, e.g. BWV-000123")
    checkout.add_argument("officer", help="the officer's shoulder or warrant number")
    checkout.add_argument("--config", required=True, metavar="FILE", help="the station's TOML config file")
    checkout.add_argument("--by", metavar="NAME", help="who is handing it out (default: your login name)")
    checkout.add_argument(
        "--override-reason",
        metavar="TEXT",
        help="a supervisor's reason to hand out a camera the battery gate refuses "
        "(won't last a shift, over temperature, due for replacement); audited at central",
    )
    checkout.set_defaults(handler=cmd_checkout)

    checkin = commands.add_parser(
        "checkin",
        help="check a camera back in by hand (docking does it by itself)",
        description="End a camera's checkout at this station without docking it.",
    )
    checkin.add_argument("serial", help="the camera's serial")
    checkin.add_argument("--config", required=True, metavar="FILE", help="the station's TOML config file")
    checkin.add_argument("--by", metavar="NAME", help="who took it back (default: your login name)")
    checkin.set_defaults(handler=cmd_checkin)

    checkouts = commands.add_parser(
        "checkouts",
        help="list the cameras checked out at this station",
        description="Cameras out now, with officer, time and charge at checkout.",
    )
    checkouts.add_argument("--config", required=True, metavar="FILE", help="the station's TOML config file")
    checkouts.add_argument("--json", action="store_true", help="print JSON instead of a table")
    checkouts.set_defaults(handler=cmd_checkouts)

    rotate = commands.add_parser(
        "rotate-key",
        help="re-wrap every clip's data key under the current station key (footage not rewritten)",
        description="After [station_key] names the new key and lists the old one under previous: "
        "re-wrap every stored clip's data key under the new key, in batches, each one transaction. "
        "Safe to interrupt at any moment and to run while the station runs; run it again to finish. "
        "When it reports nothing left under the old key, remove that key from previous.",
    )
    rotate.add_argument("--config", required=True, metavar="FILE", help="the station's TOML config file")
    rotate.set_defaults(handler=cmd_rotate_key)

    save = commands.add_parser(
        "backup",
        help="back up the station's database while it runs (not its footage)",
        description="One moment of the station's database (SQLite's online backup), written to a new "
        "folder under --to with a manifest. It holds the queue, the event outbox, the mirror and the "
        "clips' wrapped data keys; not the footage, nor the station key (docs/backup.md).",
    )
    save.add_argument("--to", required=True, metavar="DIR", help="the folder the backup's own folder is made in")
    save.add_argument("--name", help="the backup folder's name (default: station-<id>-<UTC time>)")
    save.add_argument("--config", required=True, metavar="FILE", help="the station's TOML config file")
    save.set_defaults(handler=cmd_backup)
    back = commands.add_parser(
        "restore",
        help="put a backup in place of the station's database (the station stopped)",
        description="Check the backup's manifest, install it as the station's database and mark it to "
        "rejoin: at its first contact the station numbers its new events after those central holds, "
        "and asks central about clips whose copies are gone (docs/backup.md).",
    )
    back.add_argument("backup", metavar="BACKUP", help="the backup's folder")
    back.add_argument("--replace", action="store_true", help="overwrite the database that is there")
    back.add_argument("--config", required=True, metavar="FILE", help="the station's TOML config file")
    back.set_defaults(handler=cmd_restore)


def cmd_backup(args: argparse.Namespace) -> int:
    from station import backup

    settings = load_settings(args.config, StationSettings)
    folder, manifest = backup.backup(settings, Path(args.to), args.name)
    print(f"backup written to {folder}: schema v{manifest.schema_version}, {manifest.details['clips']} clips")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from station import backup

    settings = load_settings(args.config, StationSettings)
    manifest = backup.restore(settings, Path(args.backup), replace=args.replace)
    print(
        f"restored the backup taken {manifest.created_at:%Y-%m-%dT%H:%M:%SZ}; start the station: it rejoins "
        "central and asks it about clips whose copies are gone"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from station.node import StationNode, run_nodes

    settings = [load_settings(config, StationSettings) for config in args.config]
    ids = [s.station_id for s in settings]
    if len(set(ids)) != len(ids):
        raise FleetError(f"--config names the same station twice: {sorted(i for i in set(ids) if ids.count(i) > 1)}")
    configure_logging(settings[0].log_level, args.log_format or settings[0].log_format)
    run_nodes([StationNode(s) for s in settings])
    return 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    from station.keys import load_keyring, rotate

    settings = load_settings(args.config, StationSettings)
    keys = load_keyring(settings.station_key)
    _, store = _open_store(args.config, writes=True)
    try:
        with _writing(store):
            done = rotate(store, keys)
    finally:
        store.close()
    print(f"{done.rewrapped} data key(s) re-wrapped under station key {keys.current_id}")
    if done.remaining:
        left = ", ".join(f"{n} under {key}" for key, n in sorted(done.remaining.items()))
        print(f"still wrapped by another key: {left}; keep those keys and run this again")
        return 1
    old = sorted(keys.ids - {keys.current_id})
    if old:
        print(f"no clip needs key(s) {', '.join(old)} any more: remove them from [station_key] previous")
    return 0


def _open_store(config: str, *, writes: bool) -> tuple[StationSettings, StationStore]:
    """The station's store for a command that writes to it, or only reads (opened read-only when
    it cannot be written); a database that cannot be opened for that is one clear line."""
    import sqlite3

    from station.store import StationStore

    settings = load_settings(config, StationSettings)
    path = Path(settings.data_dir) / "station.db"
    if not path.exists():
        raise FleetError(f"no station database in {settings.data_dir} yet: has `fleet station run` started?")
    if writes:
        return settings, StationStore.for_writing(settings.data_dir)
    try:
        return settings, StationStore.for_reading(settings.data_dir)
    except sqlite3.Error as exc:
        raise FleetError(f"station database {path} cannot be read: {exc}") from None


@contextmanager
def _writing(store):
    """A write refused by the database (a full disk, failing I/O) is one clear line."""
    import sqlite3

    from fleet import sqlite

    try:
        yield
    except sqlite3.Error as exc:
        raise FleetError(f"station database cannot be written: {sqlite.unwritable_reason(store.path, exc)}") from None


def cmd_status(args: argparse.Namespace) -> int:
    from station.status import render_status, station_status

    settings, store = _open_store(args.config, writes=False)
    try:
        status = station_status(settings, store)
    finally:
        store.close()
    if args.json:
        sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(status)) + b"\n")
    else:
        render_status(status)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    import sqlite3

    from station.doctor import examine, render
    from station.store import StationStore

    settings = load_settings(args.config, StationSettings)
    store, error = None, None
    if not (Path(settings.data_dir) / "station.db").exists():
        error = f"no station database in {settings.data_dir} yet: has `fleet station run` started?"
    else:
        try:
            store = StationStore.for_reading(settings.data_dir)
        except (FleetError, sqlite3.Error, OSError) as exc:
            error = str(exc)
    try:
        findings = examine(settings, store, error)
    finally:
        if store is not None:
            store.close()
    if args.json:
        sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(findings)) + b"\n")
    else:
        render(findings)
    return 1 if any(f.verdict == "fail" for f in findings) else 0


def cmd_retry(args: argparse.Namespace) -> int:
    _settings, store = _open_store(args.config, writes=True)
    try:
        with _writing(store):
            count = store.queue.requeue_failed()
    finally:
        store.close()
    print(f"{count} failed clip(s) requeued; the running station uploads them on its next pass")
    return 0


def _desk(config: str, *, writes: bool = True) -> tuple[StationStore, Desk]:
    from station.desk import Desk

    settings, store = _open_store(config, writes=writes)
    return store, Desk(store, settings.station_id, settings.borough)


def _operator(args: argparse.Namespace) -> str:
    import getpass

    return args.by or getpass.getuser()


def cmd_checkout(args: argparse.Namespace) -> int:
    store, desk = _desk(args.config)
    try:
        with _writing(store):
            out = desk.checkout(args.serial, args.officer, by=_operator(args), override=args.override_reason)
    except BatteryGateRefused as refused:
        raise BatteryGateRefused(f"{refused.message} (--override-reason)") from None
    finally:
        store.close()
    charge = f", charged ~{out.battery_pct:.0f}%" if out.battery_pct is not None else ""
    print(f"{out.device_serial} checked out to {out.officer_id}{charge}; central is told on the next sync")
    return 0


def cmd_checkin(args: argparse.Namespace) -> int:
    store, desk = _desk(args.config)
    try:
        with _writing(store):
            back = desk.checkin(args.serial, by=_operator(args))
    finally:
        store.close()
    print(f"{back.device_serial} checked in from {back.officer_id}")
    return 0


def cmd_checkouts(args: argparse.Namespace) -> int:
    from fleet.clock import to_iso

    store, desk = _desk(args.config, writes=False)
    try:
        rows = desk.open_checkouts()
    finally:
        store.close()
    if args.json:
        print(
            msgspec.json.encode(
                [
                    {
                        "device_serial": c.device_serial,
                        "officer_id": c.officer_id,
                        "out_at": to_iso(c.out_at),
                        "battery_pct": c.battery_pct,
                        "out_by": c.out_by,
                    }
                    for c in rows
                ]
            ).decode()
        )
        return 0
    from rich.table import Table
    from rich.text import Text

    from fleet.console import console

    table = Table(title=f"Checked out ({len(rows)})")
    for column in ("camera", "officer", "out since", "charge", "by"):
        table.add_column(column)
    for c in rows:
        table.add_row(
            c.device_serial,
            c.officer_id,
            to_iso(c.out_at)[:16].replace("T", " "),
            f"{c.battery_pct:.0f}%" if c.battery_pct is not None else "?",
            Text(c.out_by),
        )  # free text: never console markup
    console().print(table)
    return 0
