"""``fleet central backup`` and ``fleet central restore``: central's database, online, proven by restore.

A backup is one moment of the database taken while central serves: SQLite through its online
backup API (one read transaction; writers carry on), PostgreSQL through ``pg_dump`` on a
snapshot exported from a repeatable-read transaction, in which the manifest's figures (schema
version, the audit chain's head, each station's acknowledged seq) are read too, so they
describe the very dump. The folder is written whole or not at all (``fleet.backup``).

What it holds and what it does not (docs/backup.md): every table (clip records, holds, users,
token and password hashes (never a token), stations' event logs, the audit chain), and the
disclosure signing key central made for itself on SQLite, if there is one (a secret: the
folder is to be kept like the key itself). Not the footage (the blob store protects itself),
not uploads in progress (stations resend them), not the config file or its secrets.

Restore checks the manifest and every file's SHA-256, refuses a schema newer than this
program (an older one is migrated as central's start-up would), refuses a target that holds a
database unless told ``--replace``, then records the restore where it will be seen: an audit
record (the chain carries on from the backup's head) and a line in the published anchors file
saying the chain was rolled back to that head, so ``fleet audit verify`` still matches every
anchor and lists the records the restore lost. Central must not be running against the target.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from central.core.database import redacted
from central.core.leadership import LEAD_FILE, LEAD_LOCK
from central.core.store import MIGRATIONS, CentralStore
from central.evidence import audit, clip_records
from central.evidence.signing import GENERATED_KEY
from central.registry import stations
from fleet import __version__
from fleet.backup import (
    Manifest,
    check_sqlite,
    copy_sqlite,
    install_file,
    install_sqlite,
    read_backup,
    schema_version,
    stamp,
    write_backup,
)
from fleet.clock import to_iso, utc_now
from fleet.config import CentralSettings
from fleet.errors import FleetError
from fleet.lockfile import FileClaim

DATABASE_FILE = "central.db"
DUMP_FILE = "central.pgdump"


@dataclass(frozen=True)
class Restored:
    manifest: Manifest
    migrated_to: int
    audit_head: tuple[int, str]


def backup(settings: CentralSettings, parent: Path, name: str | None = None) -> tuple[Path, Manifest]:
    """Write ``parent/central-<time>`` (or ``name``); central may be serving meanwhile."""
    data_dir = Path(settings.data_dir)

    def fill(folder: Path) -> Manifest:
        if settings.database.url is None:
            details, version = _sqlite_backup(data_dir / DATABASE_FILE, folder / DATABASE_FILE)
            engine, source = "sqlite", str(data_dir / DATABASE_FILE)
        else:
            details, version = _postgres_backup(settings.database.url, folder / DUMP_FILE)
            engine, source = "postgresql", redacted(settings.database.url)
        key = data_dir / GENERATED_KEY
        if key.is_file():
            shutil.copyfile(key, folder / GENERATED_KEY)
            os.chmod(folder / GENERATED_KEY, 0o600)
        return Manifest(
            format=1,
            kind="central",
            engine=engine,  # type: ignore[arg-type]
            schema_version=version,
            created_at=utc_now(),
            program_version=__version__,
            files={},
            source=source,
            details=details,
        )

    return write_backup(parent, name or f"central-{stamp()}", fill)


def _figures(db: Any) -> dict[str, object]:
    """What the manifest tells a person about the moment the backup holds."""
    head = audit.head(db)
    return {
        "audit_head": {"id": head[0], "hash": head[1]},
        "acked_seq": stations.acknowledged(db),
        "clips": clip_records.count(db),
    }


def _sqlite_backup(source: Path, target: Path) -> tuple[dict[str, object], int]:
    if not source.is_file():
        raise FleetError(f"no database at {source}: nothing to back up")
    copy_sqlite(source, target)
    import sqlite3

    db = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
    try:
        return _figures(db), schema_version(target)
    finally:
        db.close()


def _postgres_backup(url: str, target: Path) -> tuple[dict[str, object], int]:
    try:
        conn = psycopg.connect(url, autocommit=True)
    except psycopg.Error as exc:
        raise FleetError(f"cannot reach the database {redacted(url)}: {exc}") from None
    try:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
        row = conn.execute("SELECT version FROM schema_version WHERE one = 1").fetchone()
        if row is None:
            raise FleetError(f"{redacted(url)} holds no central database: nothing to back up")
        details = _figures(conn)
        # The dump reads the same snapshot, so the figures above describe exactly what it holds.
        _run([_tool("pg_dump"), "--format=custom", "--no-owner", f"--snapshot={snapshot}", f"--file={target}", url])
        conn.execute("COMMIT")
        return details, int(row[0])
    finally:
        conn.close()


def restore(settings: CentralSettings, folder: Path, *, replace: bool = False) -> Restored:
    """Put the backup in ``folder`` into the database ``settings`` name (see the module's docstring)."""
    manifest = read_backup(folder, "central", [DATABASE_FILE if settings.database.url is None else DUMP_FILE])
    if manifest.schema_version > len(MIGRATIONS):
        raise FleetError(
            f"the backup's schema is v{manifest.schema_version}, newer than this program's v{len(MIGRATIONS)}: "
            "restore it with the version of central that made it (or a newer one)"
        )
    engine = "sqlite" if settings.database.url is None else "postgresql"
    if manifest.engine != engine:
        raise FleetError(
            f"the backup is of a {manifest.engine} database and this config names {engine}: restore it into "
            f"{manifest.engine} (a move between the two is not a restore)"
        )
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if engine == "sqlite":
        check_sqlite(folder / DATABASE_FILE, manifest)
        # The lead of a central serving this folder (central.core.leadership): held meanwhile, so
        # none starts while its database is replaced.
        lead = FileClaim(data_dir / LEAD_FILE)
        if not lead.try_take("fleet central restore"):
            raise FleetError(f"central is running on {data_dir} ({lead.holder()}): stop it before a restore")
        try:
            _restore_sqlite(folder / DATABASE_FILE, data_dir / DATABASE_FILE, replace)
        finally:
            lead.let_go()
    else:
        assert settings.database.url is not None
        _restore_postgres(folder / DUMP_FILE, settings.database.url, replace)
    key = folder / GENERATED_KEY
    if GENERATED_KEY in manifest.files and not (data_dir / GENERATED_KEY).exists():
        install_file(key, data_dir / GENERATED_KEY)
        os.chmod(data_dir / GENERATED_KEY, 0o600)
    store = CentralStore.open(settings)  # migrates an older schema, as a starting central would
    try:
        with store.writer.write() as db:
            head = audit.head(db)
            audit.record(
                db,
                actor="fleet central restore",
                action="central-restored",
                object_type="central",
                object_id=folder.name,
                detail=f"restored from the backup taken {to_iso(manifest.created_at)} (schema "
                f"v{manifest.schema_version}, audit record {head[0]}); what happened after it is not here",
            )
    finally:
        store.close()
    audit.publish_restore(settings.anchors_file, head[0], head[1], f"{folder.name} ({to_iso(manifest.created_at)})")
    return Restored(manifest=manifest, migrated_to=len(MIGRATIONS), audit_head=head)


def _restore_sqlite(source: Path, target: Path, replace: bool) -> None:
    if target.exists() and not replace:
        raise FleetError(f"{target} exists: restore into an empty data folder, or give --replace to overwrite it")
    install_sqlite(source, target)


def _restore_postgres(dump: Path, url: str, replace: bool) -> None:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            leads = conn.execute("SELECT pg_try_advisory_lock(%s)", [LEAD_LOCK]).fetchone()[0]  # type: ignore[index]
            if not leads:  # a replica leads: central is serving this database
                raise FleetError(f"central is running on {redacted(url)}: stop every replica before a restore")
            conn.execute("SELECT pg_advisory_unlock(%s)", [LEAD_LOCK])
            tables = conn.execute("SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()").fetchone()[0]  # type: ignore[index]
            if tables and not replace:
                raise FleetError(
                    f"{redacted(url)} holds {tables} tables: restore into an empty database, or give --replace"
                )
            if tables:
                schema = conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
                conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.Error as exc:
        raise FleetError(f"cannot prepare the database {redacted(url)}: {exc}") from None
    # One transaction: a restore that fails half-way leaves the database empty, never half-filled.
    _run([_tool("pg_restore"), "--no-owner", "--exit-on-error", "--single-transaction", f"--dbname={url}", str(dump)])


def _tool(name: str) -> str:
    """PostgreSQL's own client program: on PATH, else the newest Debian installed."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    if not candidates:
        raise FleetError(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return str(candidates[-1])


def _run(command: list[str]) -> None:
    shown = [redacted(part) if "://" in part else part for part in command]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise FleetError(f"cannot run {shown[0]}: {exc.strerror}") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise FleetError(f"{Path(shown[0]).name} failed (exit {result.returncode}): {last}")
