"""A backup folder: files and the manifest that vouches for them, written whole or not at all.

Central's and a station's backups share the shape (docs/backup.md)::

    <parent>/<name>/            renamed into place only once complete
        manifest.json           what, from where, when, and each file's SHA-256
        <the files>

The folder is built as ``<parent>/.<name>.tmp``: every file fsynced, the manifest written
last and fsynced, the folder fsynced, then renamed to ``<name>`` and the parent fsynced. A
crash leaves a ``.tmp`` folder (never a folder that looks complete); the next backup removes
it. Reading one back checks every file against the manifest before anything trusts it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable, Collection
from datetime import datetime
from pathlib import Path
from typing import Literal

import msgspec
from msgspec import Struct

from fleet.clock import utc_now
from fleet.errors import FleetError
from fleet.hashing import file_sha256, fsync_dir, fsync_file

FORMAT = 1
MANIFEST = "manifest.json"
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


class BackupFile(Struct, kw_only=True):
    sha256: str
    size: int


class Manifest(Struct, kw_only=True):
    """``manifest.json``. Unknown keys are allowed: a newer program may add some."""

    format: int
    kind: Literal["central", "station"]
    engine: Literal["sqlite", "postgresql"]
    schema_version: int
    created_at: datetime
    program_version: str
    files: dict[str, BackupFile]
    source: str = ""
    """Where it was taken: central's data folder or database (password left out), a station's id."""
    details: dict[str, object] = {}
    """What the kind adds: central's audit head and stations' acknowledged seqs, a station's outbox."""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Manifest)


def write_backup(
    parent: Path, name: str, fill: Callable[[Path], Manifest], *, on_exists: str = "refuse"
) -> tuple[Path, Manifest]:
    """Make ``parent/name`` atomically: ``fill`` writes the files into the folder it is given and
    returns the manifest (without ``files``: they are hashed here)."""
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / name
    if final.exists() and on_exists == "refuse":
        raise FleetError(f"{final} exists already: choose another folder or name")
    for stale in parent.glob(".*.tmp"):  # a backup a crash interrupted: never complete, never used
        shutil.rmtree(stale, ignore_errors=True)
    work = parent / f".{name}.tmp"
    # Private to the user taking it, whatever their umask: it holds password and token hashes,
    # personal data and perhaps a signing key.
    work.mkdir(mode=PRIVATE_DIR)
    os.chmod(work, PRIVATE_DIR)
    try:
        manifest = fill(work)
        files = {}
        for path in sorted(work.iterdir()):
            os.chmod(path, PRIVATE_FILE)
            fsync_file(path)
            files[path.name] = BackupFile(sha256=file_sha256(path), size=path.stat().st_size)
        manifest = msgspec.structs.replace(manifest, files=files)
        with os.fdopen(os.open(work / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE), "wb") as f:
            f.write(_encoder.encode(manifest) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(work)
        os.rename(work, final)
        fsync_dir(parent)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return final, manifest


def read_backup(folder: Path, kind: str, required: Collection[str] = ()) -> Manifest:
    """The manifest, once every file it lists is there with its size and SHA-256, the ``required``
    ones among them, and no other file beside them; else a clear error."""
    path = folder / MANIFEST
    try:
        manifest = _decoder.decode(path.read_bytes())
    except FileNotFoundError:
        raise FleetError(f"{folder} is not a backup: no {MANIFEST} (an interrupted one is never renamed)") from None
    except (OSError, msgspec.DecodeError) as exc:
        raise FleetError(f"{path}: not a readable manifest ({exc})") from None
    if manifest.format > FORMAT:
        raise FleetError(f"{folder} is a backup of format {manifest.format}; this program reads up to {FORMAT}")
    if manifest.kind != kind:
        raise FleetError(f"{folder} is a {manifest.kind}'s backup, not a {kind}'s")
    unlisted = sorted(set(required) - manifest.files.keys())
    if unlisted:
        raise FleetError(f"{folder}: the manifest does not list {unlisted[0]} (changed, or not this kind of backup)")
    try:
        extra = sorted({p.name for p in folder.iterdir()} - manifest.files.keys() - {MANIFEST})
    except OSError as exc:
        raise FleetError(f"{folder}: cannot list the backup ({exc.strerror})") from None
    if extra:
        raise FleetError(f"{folder}: {extra[0]} is not in the manifest (added since the backup was taken)")
    for name, expected in manifest.files.items():
        file = folder / name
        if "/" in name or "\\" in name or name.startswith(".") or not file.is_file() or file.is_symlink():
            raise FleetError(f"{folder}: {name!r} is listed in the manifest but missing")
        if file.stat().st_size != expected.size or file_sha256(file) != expected.sha256:
            raise FleetError(f"{folder}: {name} does not match its SHA-256 in the manifest (damaged or changed)")
    return manifest


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database through SQLite's online backup API.

    The whole copy is one read transaction on the source (WAL: writers carry on meanwhile), so
    it is one moment of the database, whatever commits during it."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise FleetError(f"cannot copy {source}: {exc}") from None
    finally:
        src.close()


def schema_version(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def check_sqlite(path: Path, manifest: Manifest) -> None:
    """A backed-up SQLite file is whole and of the schema its manifest names, checked before it
    replaces anything (a file swapped with its manifest's hashes rewritten, a manifest that lies)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        try:
            checked = db.execute("PRAGMA quick_check").fetchone()[0]
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise FleetError(f"{path} is not a whole SQLite database ({exc}): nothing was restored") from None
    if checked != "ok":
        raise FleetError(f"{path} is damaged ({checked}): nothing was restored")
    if version != manifest.schema_version:
        raise FleetError(
            f"{path} has schema v{version}, its manifest says v{manifest.schema_version}: nothing was restored"
        )


def install_file(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically (a temporary beside it, fsynced, renamed)."""
    temporary = target.with_name(f".{target.name}.restoring")
    shutil.copyfile(source, temporary)
    fsync_file(temporary)
    os.replace(temporary, target)
    fsync_dir(target.parent)


def install_sqlite(source: Path, target: Path) -> None:
    """Put a backed-up database in place of ``target``; the replaced one's ``-wal`` and ``-shm`` go
    first (SQLite would otherwise apply the old log to the restored file)."""
    for extra in ("-wal", "-shm", "-journal"):
        target.with_name(target.name + extra).unlink(missing_ok=True)
    install_file(source, target)


def stamp() -> str:
    """A backup's default name part: its UTC time, sortable."""
    return utc_now().strftime("%Y%m%dT%H%M%SZ")
