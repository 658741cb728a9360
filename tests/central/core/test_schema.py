"""The schema assembled from the packages' steps is the one central always had.

The packages' ``schema.py`` steps are assembled into one script per version
(``central.core.migrations``). A database at any version must go on migrating exactly as
before, and a fresh one must come out as it always did: the expected values below were taken
from the single ordered list of migrations central had before its tables were shared out
(commit 79f534e), and are history: a new migration adds a version, it never changes these.
"""

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from central.core import migrations
from central.core.store import MIGRATIONS
from fleet import sqlite

pytestmark = pytest.mark.sqlite_only  # SQLite's history; PostgreSQL's translation: test_database.py

FROZEN = {
    1: "a0b68dc52c178f0eee0e2a680abe9c3fa5aa32955af69f9dbfd27315a9c5cd03",
    2: "3a514509e7aef5279fc3920a17dc28b7ad365edcb99a7de3e0e9f8a8e6d6037e",
    3: "fa16b0dc96307fd53d5eba98111cd8e556287d05676b52d5f9a27717611bd29d",
    4: "2643f2514104575ce6a857c1d7d0565524494c08a28ac90eceded152b8c6f1d0",
    5: "d6a7c74e95f4eae1aea46f416090b39ab112f4d179a747dd2102c192f0c414be",
    6: "6c40098da165726f8b3123cfef4e7bf504af52f8aa2a292fb65aac9eb4b7cc51",
    7: "0d4b3d6d3cfaade2fcc218771310c611ffcfaa935b467dedf742b89516a2db6d",
    8: "1b1e10cb43b1cfcea2012bd33f92865aab8818479414ca858e2481bd08b37eec",
    9: "89c296a16d68b3a3697e0fe78630fe122880d0f61f3992beb788278dfb43b293",
    10: "88fb40cb4bf482a0f959e7fa26a16e1f27ab857bf7efaa2a5689100dad1d29fa",
    11: "d2bd08e02622d74a92647b5046776403084d18c4eefcfe2715005326534b5f2b",
    12: "b4b59852aebf240b552b6d9ab957a994158e2d5acf8d2fedbf560c18f8acbbb4",
    13: "f7260ecccfb576cc80fba7bdc2c93a41292dfb543efdeff93cdbf3387c4ff500",
    14: "9a0e591c634bf998cea6332c81bbce22826fe7bbb04eaf563a358f5ebcf7f0c9",
    15: "5c2dc62c1641361ecffc0bf8eba4fc15336d4cebaffe1b38e1bc9c10a0edcd33",
    16: "753e02839826cf0a3fc928d3b603bbd2e9ddb77abdca829448ece2df8bdaa31e",
    17: "39ec4d4de6ac77d8f828d79c7a81ec59005ba35d8cfec31dc5a190741f007ede",
}
"""SHA-256 of each version's statements (split as ``fleet.sqlite.migrate`` runs them, joined by
newlines) in the single list of migrations at commit 79f534e."""
SCHEMA_V17 = Path(__file__).with_name("schema_v17.json")
"""``sqlite_master`` (type, name, table, root page, SQL, in rowid order) of a fresh database
migrated to v17 by the code at commit 79f534e."""


@pytest.mark.parametrize("version", sorted(FROZEN))
def test_each_version_runs_the_statements_it_always_ran(version):
    statements = sqlite.split_statements(MIGRATIONS[version - 1])
    assert hashlib.sha256("\n".join(statements).encode()).hexdigest() == FROZEN[version], (
        f"schema v{version} changed: a released migration is history; add a new version instead"
    )


def test_a_fresh_database_at_v17_is_byte_for_byte_the_one_built_before(tmp_path):
    db = sqlite.open_database(tmp_path / "central.db")
    try:
        sqlite.migrate(db, MIGRATIONS[:17])
        rows = [
            list(r) for r in db.execute("SELECT type, name, tbl_name, rootpage, sql FROM sqlite_master ORDER BY rowid")
        ]
    finally:
        db.close()
    assert rows == json.loads(SCHEMA_V17.read_text())


def _schema(name, *steps):
    return SimpleNamespace(__name__=f"central.{name}.schema", STEPS=list(steps), TABLES=frozenset())


def test_a_version_shared_by_packages_runs_its_parts_in_order():
    first = _schema("a", migrations.Step(1, "CREATE TABLE a (x);"), migrations.Step(2, "ALTER TABLE a ADD y;", part=2))
    second = _schema("b", migrations.Step(2, "CREATE TABLE b (x);", part=1))
    assert [sqlite.split_statements(s) for s in migrations.assemble([first, second])] == [
        ["CREATE TABLE a (x);"],
        ["CREATE TABLE b (x);", "ALTER TABLE a ADD y;"],
    ]


@pytest.mark.parametrize(
    "steps, complaint",
    [
        ([migrations.Step(1, "A;"), migrations.Step(3, "C;")], "without a gap"),
        ([migrations.Step(1, "A;"), migrations.Step(1, "B;", part=3)], "parts must run"),
        ([migrations.Step(1, "A;"), migrations.Step(1, "B;")], "declared by both"),
    ],
)
def test_a_gap_or_a_clash_in_the_steps_is_refused(steps, complaint):
    with pytest.raises(ValueError, match=complaint):
        migrations.assemble([_schema("a", steps[0]), _schema("b", *steps[1:])])


def test_v22_moves_each_verified_clips_retention_to_its_own_table(tmp_path):
    db = sqlite.open_database(tmp_path / "central.db")
    try:
        sqlite.migrate(db, MIGRATIONS[:21])
        clip = "INSERT INTO clips (clip_id, upload_id, sha256, size, state, device_serial, recorded_at, filename{}) "
        db.execute(
            clip.format(", retain_until, review, kept_until, deleted_at, purged_at")
            + "VALUES ('kept', 'u1', 'h', 1, 'verified', 'BWV-1', '2026-01-01', 'a.mp4', '2027-01-01', 1, "
            "'2026-06-01', NULL, NULL)"
        )
        db.execute(
            clip.format(", retain_until, deleted_at, purged_at")
            + "VALUES ('gone', 'u2', 'h', 1, 'verified', 'BWV-1', '2026-01-01', 'b.mp4', '2026-02-01', "
            "'2026-02-02', '2026-02-09')"
        )
        db.execute(clip.format("") + "VALUES ('coming', 'u3', 'h', 1, 'receiving', 'BWV-1', '2026-01-01', 'c.mp4')")
        db.commit()
        sqlite.migrate(db, MIGRATIONS[:22])
        moved = db.execute(
            "SELECT clip_id, retain_until, review, kept_until, deleted_at, purged_at FROM clip_retention ORDER BY 1"
        ).fetchall()
        columns = {r[1] for r in db.execute("PRAGMA table_info(clips)")}
    finally:
        db.close()
    assert [tuple(r) for r in moved] == [
        ("gone", "2026-02-01", 0, None, "2026-02-02", "2026-02-09"),
        ("kept", "2027-01-01", 1, "2026-06-01", None, None),
    ]  # a clip still being received gets its row when it is verified
    assert not columns & {"retain_until", "review", "kept_until", "deleted_at", "purged_at"}


def test_v34_moves_each_waiting_ingest_claim_into_its_clips_attribution_row(tmp_path):
    db = sqlite.open_database(tmp_path / "central.db")
    try:
        sqlite.migrate(db, MIGRATIONS[:33])
        for clip, station in (("waits", "camden"), ("settled", "camden"), ("other", "barnet")):
            db.execute(
                "INSERT INTO attributions (clip_id, device_serial, recorded_at, station_id) VALUES (?, 'BWV-1', "
                "'2026-01-01T10:00:00Z', ?)",
                [clip, station],
            )
        db.execute(
            "INSERT INTO ingest_claims (clip_id, station_id, seq, station_at, device_serial, size, sha256) "
            "VALUES ('waits', 'camden', 7, '2026-01-01T11:00:00Z', 'BWV-1', 100, 'ab'), "
            "('other', 'barnet', 9, '2026-01-01T12:00:00Z', 'BWV-1', 200, 'cd')"
        )
        db.commit()
        sqlite.migrate(db, MIGRATIONS[:34])
        rows = db.execute(
            "SELECT clip_id, claim_seq, claim_station_at, claim_size, claim_sha256 FROM attributions ORDER BY 1"
        ).fetchall()
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        db.close()
    assert [tuple(r) for r in rows] == [
        ("other", 9, "2026-01-01T12:00:00Z", 200, "cd"),
        ("settled", None, None, None, None),
        ("waits", 7, "2026-01-01T11:00:00Z", 100, "ab"),
    ]
    assert "ingest_claims" not in tables


def test_a_step_for_postgresql_only_runs_there_after_its_shares_for_both():
    schema = _schema(
        "a",
        migrations.Step(1, "CREATE TABLE a (x);"),
        migrations.Step(2, "", postgres="ALTER TABLE a SET (fillfactor = 50);"),
    )
    assert [sqlite.split_statements(s) for s in migrations.assemble([schema])] == [["CREATE TABLE a (x);"], []]
    assert [sqlite.split_statements(s) for s in migrations.assemble([schema], postgres=True)] == [
        ["CREATE TABLE a (x);"],
        ["ALTER TABLE a SET (fillfactor = 50);"],
    ]
