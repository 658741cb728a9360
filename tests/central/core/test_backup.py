"""``fleet central restore`` of a backup someone changed: refused before the database it would
replace is touched (a backup folder is files anyone with access to its disk can change)."""

import json

import pytest

from central.core import backup
from central.core.leadership import Leadership
from fleet.errors import FleetError
from fleet.hashing import file_sha256
from tests.central.conftest import central_store, make_settings


@pytest.mark.sqlite_only  # the SQLite file itself; a dump is checked by pg_restore
def test_a_swapped_database_is_refused_and_the_one_in_place_kept(tmp_path):
    settings = make_settings(tmp_path / "central")
    central_store(tmp_path / "central").close()
    folder, _ = backup.backup(settings, tmp_path / "backups", "b1")
    swapped = folder / backup.DATABASE_FILE
    swapped.write_bytes(b"SQLite format 3\x00" + b"\x00" * 4080)  # what a careless or hostile hand put there
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][backup.DATABASE_FILE] = {"sha256": file_sha256(swapped), "size": swapped.stat().st_size}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    live = tmp_path / "central" / backup.DATABASE_FILE
    before = file_sha256(live)
    with pytest.raises(FleetError, match="nothing was restored"):
        backup.restore(settings, folder, replace=True)
    assert file_sha256(live) == before


def test_a_restore_while_central_serves_the_database_is_refused(tmp_path):
    settings = make_settings(tmp_path / "central")
    store = central_store(tmp_path / "central")
    try:
        folder, _ = backup.backup(settings, tmp_path / "backups", "b1")
        serving = Leadership(store.writer, settings.data_dir).start()  # as a running central holds it
        try:
            assert serving.wait(30)
            with pytest.raises(FleetError, match="central is running on"):
                backup.restore(settings, folder, replace=True)
        finally:
            serving.stop()
    finally:
        store.close()


def edited(folder, **fields):
    """The backup's manifest with ``fields`` changed (the manifest itself carries no hash)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(fields)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.sqlite_only  # the checks before any engine's own step
@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"schema_version": 10_000}, "newer than this program's"),
        ({"engine": "postgresql"}, "a move between the two is not a restore"),
    ],
)
def test_a_backup_of_a_newer_schema_or_the_other_engine_is_refused_in_one_line(tmp_path, fields, why):
    settings = make_settings(tmp_path / "central")
    central_store(tmp_path / "central").close()
    folder, _ = backup.backup(settings, tmp_path / "backups", "b1")
    target = make_settings(tmp_path / "fresh")
    with pytest.raises(FleetError, match=why) as refused:
        backup.restore(target, edited(folder, **fields))
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "fresh" / backup.DATABASE_FILE).exists()


@pytest.mark.sqlite_only
def test_a_restore_over_a_database_in_place_needs_replace(tmp_path):
    settings = make_settings(tmp_path / "central")
    central_store(tmp_path / "central").close()
    folder, _ = backup.backup(settings, tmp_path / "backups", "b1")
    live = tmp_path / "central" / backup.DATABASE_FILE
    before = file_sha256(live)
    with pytest.raises(FleetError, match="give --replace"):
        backup.restore(settings, folder)
    assert file_sha256(live) == before
