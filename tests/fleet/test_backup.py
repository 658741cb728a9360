"""A backup folder: private to whoever took it, and refused when it was changed after (a file added,
swapped or left out of its manifest, a manifest that lies about what it holds)."""

import json
import os
import sqlite3
import stat
from datetime import UTC, datetime

import pytest

from fleet.backup import MANIFEST, Manifest, check_sqlite, read_backup, write_backup
from fleet.errors import FleetError
from fleet.hashing import file_sha256


def database(path, version: int) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.execute(f"PRAGMA user_version = {version}")
    db.commit()
    db.close()


def taken(tmp_path, version: int = 7):
    def fill(folder):
        database(folder / "station.db", version)
        (folder / "key").write_bytes(b"k" * 32)
        return Manifest(
            format=1,
            kind="station",
            engine="sqlite",
            schema_version=version,
            created_at=datetime(2026, 12, 1, tzinfo=UTC),
            program_version="test",
            files={},
        )

    return write_backup(tmp_path / "backups", "b1", fill)


def rewrite_manifest(folder, change) -> None:
    """What someone who changed the folder does next: a manifest that vouches for the change."""
    manifest = json.loads((folder / MANIFEST).read_text())
    change(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def test_a_backup_is_private_to_its_owner_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        folder, _ = taken(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_a_file_added_or_left_out_of_the_manifest_is_refused(tmp_path):
    folder, _ = taken(tmp_path)
    assert read_backup(folder, "station", ["station.db"]).schema_version == 7
    (folder / "extra.db").write_bytes(b"planted")
    with pytest.raises(FleetError, match=r"extra\.db is not in the manifest"):
        read_backup(folder, "station", ["station.db"])
    (folder / "extra.db").unlink()
    rewrite_manifest(folder, lambda m: m["files"].pop("station.db"))
    (folder / "station.db").unlink()
    with pytest.raises(FleetError, match=r"does not list station\.db"):
        read_backup(folder, "station", ["station.db"])


@pytest.mark.parametrize("name", ["../station.db", "/etc/passwd", ".hidden", "a\\b"])
def test_a_name_that_leaves_the_folder_is_refused(tmp_path, name):
    folder, _ = taken(tmp_path)
    rewrite_manifest(folder, lambda m: m["files"].update({name: {"sha256": "0" * 64, "size": 0}}))
    with pytest.raises(FleetError, match="listed in the manifest but missing"):
        read_backup(folder, "station")


def test_a_swapped_database_whose_manifest_was_rewritten_to_match_is_refused_before_it_replaces_anything(tmp_path):
    folder, manifest = taken(tmp_path, version=7)
    (folder / "station.db").unlink()
    database(folder / "station.db", 99)  # another schema than the manifest says
    swapped = folder / "station.db"
    vouched = {"sha256": file_sha256(swapped), "size": swapped.stat().st_size}
    rewrite_manifest(folder, lambda m: m["files"].update({"station.db": vouched}))
    manifest = read_backup(folder, "station", ["station.db"])  # the hashes agree: only the file itself can tell
    with pytest.raises(FleetError, match="has schema v99, its manifest says v7"):
        check_sqlite(folder / "station.db", manifest)
    (folder / "station.db").write_bytes(b"PGDMP not a SQLite file at all" * 100)
    with pytest.raises(FleetError, match="not a whole SQLite database"):
        check_sqlite(folder / "station.db", manifest)
