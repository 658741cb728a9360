"""``fleet station backup`` and ``fleet station restore``: the station's database, not its footage.

The backup is one moment of ``station.db`` (SQLite's online backup: the station keeps running),
in a folder written whole with a manifest (``fleet.backup``). It holds the queue, the outbox,
the mirror of central's changes and the wrapped data keys of the clips; never the footage nor
the station key that unwraps them (docs/backup.md). A restored database is marked to rejoin
(``Outbox.mark_rejoining``): its first word with central learns how far central holds the
station's events and numbers its own after them; clips whose copies went with the old disk are
asked of central, and the ones it does not hold are listed as lost (station/sync/clips.py).
"""

from __future__ import annotations

from pathlib import Path

from fleet import __version__
from fleet.backup import (
    Manifest,
    check_sqlite,
    copy_sqlite,
    install_sqlite,
    read_backup,
    schema_version,
    stamp,
    write_backup,
)
from fleet.clock import utc_now
from fleet.config import StationSettings
from fleet.errors import FleetError
from station.node import claim_data_dir
from station.store import StationStore
from station.store.schema import MIGRATIONS

DATABASE_FILE = "station.db"


def backup(settings: StationSettings, parent: Path, name: str | None = None) -> tuple[Path, Manifest]:
    source = Path(settings.data_dir) / DATABASE_FILE
    if not source.is_file():
        raise FleetError(f"no station database at {source}: nothing to back up")

    def fill(folder: Path) -> Manifest:
        copy_sqlite(source, folder / DATABASE_FILE)
        store = StationStore(folder, read_only=True)
        try:
            details: dict[str, object] = {
                "station_id": settings.station_id,
                "outbox_last_seq": store.outbox.last_seq(),
                "outbox_acked_seq": store.outbox.acked_seq(),
                "clips": sum(store.queue.summary()["clips_by_state"].values()),
            }
        finally:
            store.close()
        return Manifest(
            format=1,
            kind="station",
            engine="sqlite",
            schema_version=schema_version(folder / DATABASE_FILE),
            created_at=utc_now(),
            program_version=__version__,
            files={},
            source=settings.station_id,
            details=details,
        )

    return write_backup(parent, name or f"station-{settings.station_id}-{stamp()}", fill)


def restore(settings: StationSettings, folder: Path, *, replace: bool = False) -> Manifest:
    """Install the backup as this station's database (the station stopped), marked to rejoin."""
    manifest = read_backup(folder, "station", [DATABASE_FILE])
    check_sqlite(folder / DATABASE_FILE, manifest)
    if manifest.schema_version > len(MIGRATIONS):
        raise FleetError(
            f"the backup's schema is v{manifest.schema_version}, newer than this program's v{len(MIGRATIONS)}"
        )
    if manifest.details.get("station_id") != settings.station_id:
        raise FleetError(f"the backup is station {manifest.details.get('station_id')}'s, not {settings.station_id}'s")
    claim, unclaimed = claim_data_dir(settings)  # refuses while the station runs on this folder
    if unclaimed:
        raise FleetError(unclaimed)
    try:
        target = Path(settings.data_dir) / DATABASE_FILE
        if target.exists() and not replace:
            raise FleetError(f"{target} exists: give --replace to put the backup in its place")
        install_sqlite(folder / DATABASE_FILE, target)
        store = StationStore(settings.data_dir)  # migrates an older schema
        try:
            store.outbox.mark_rejoining()
        finally:
            store.close()
    finally:
        claim.let_go()
    return manifest
