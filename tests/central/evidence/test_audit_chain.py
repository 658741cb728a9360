"""The audit trail is tamper-evident: any edit, deletion, insertion or reordering is named."""

from __future__ import annotations

import msgspec
import pytest

from central.core.providers import services
from central.core.store import CentralStore
from central.evidence import audit
from tests.central.conftest import central_store
from tests.support.databases import BACKEND, database_section
from tests.test_cli import run_cli


@pytest.fixture
def store(tmp_path):
    store = central_store(tmp_path / "central")
    with store.writer.write() as db:
        for i in range(1, 11):
            audit.record(
                db, actor=f"user{i}", action="assign", object_type="device", object_id=f"BWV-{i}", detail=f"to PC{i}"
            )
        audit.record_many(
            db, [dict(actor="planner", action="allocate", object_type="device", object_id=f"X-{i}") for i in range(5)]
        )
    yield store
    store.close()


def verify(store):
    with store.writer.read() as db:
        return audit.verify(db)


def tamper(store, sql, *params):
    with store.writer.write() as db:
        db.execute(sql, list(params))


def test_an_untouched_chain_verifies(store):
    report = verify(store)
    assert report.intact and report.records == 15


@pytest.mark.parametrize(
    "sql, params, broken",
    [
        ("UPDATE audit SET detail = 'to PC99' WHERE id = ?", [4], 4),  # an edit
        ("UPDATE audit SET at = '2020-01-01T00:00:00.000000Z' WHERE id = ?", [12], 12),
        ("DELETE FROM audit WHERE id = ?", [7], 7),  # a deletion
        ("UPDATE audit SET id = 100 WHERE id = ?", [3], 3),  # a move
        ("DELETE FROM audit WHERE id = ?", [15], 15),  # the last one
    ],
)
def test_tampering_is_named(store, sql, params, broken):
    tamper(store, sql, *params)
    report = verify(store)
    assert not report.intact and report.first_broken == broken, report


def test_swapping_two_records_is_detected(store):
    with store.writer.write() as db:
        a = db.execute("SELECT actor, detail FROM audit WHERE id = 5").fetchone()
        b = db.execute("SELECT actor, detail FROM audit WHERE id = 6").fetchone()
        db.execute("UPDATE audit SET actor = ?, detail = ? WHERE id = 5", list(b))
        db.execute("UPDATE audit SET actor = ?, detail = ? WHERE id = 6", list(a))
    assert verify(store).first_broken == 5


def test_rehashing_one_record_still_breaks_the_next(store):
    """An editor who recomputes the edited record's own hash is caught by the record after it."""
    with store.writer.write() as db:
        row = db.execute(f"SELECT {audit.COLUMNS}, prev_hash FROM audit WHERE id = 8").fetchone()
        forged = (*row[:7], "forged")
        db.execute("UPDATE audit SET detail = 'forged', hash = ? WHERE id = 8", [audit.record_hash(forged, row[8])])
    assert verify(store).first_broken == 9


def test_records_written_before_the_chain_are_hashed_once(tmp_path):
    store = central_store(tmp_path / "c")
    with store.writer.write() as db:  # as a v5 database would have them
        db.execute(
            "INSERT INTO audit (id, at, actor, place, action, object_type, object_id) "
            "VALUES (1, '2026-01-01T00:00:00.000000Z', 'old', 'central', 'register', 'device', 'A')"
        )
        db.execute("DELETE FROM audit_head")
    store.close()
    store = central_store(tmp_path / "c")
    with store.writer.write() as db:
        audit.record(db, actor="new", action="assign", object_type="device", object_id="A")
    assert verify(store).intact and verify(store).records == 2
    store.close()


def test_fleet_audit_verify_command(tmp_path, store):
    config = tmp_path / "central.toml"
    config.write_text(f'data_dir = "{store.data_dir}"\nadmin_token = "t"\n{database_section(store.data_dir)}')
    ok = run_cli("audit", "verify", "--config", str(config))
    assert ok.returncode == 0 and "intact: 15 records" in ok.stdout
    tamper(store, "UPDATE audit SET actor = 'someone else' WHERE id = 2")
    broken = run_cli("audit", "verify", "--config", str(config))
    assert broken.returncode == 1 and "BROKEN at record 2" in broken.stderr and "changed" in broken.stderr


def test_clearing_hashes_does_not_get_them_recomputed(store, tmp_path):
    """Records without a hash after the chain began are tampering: reopening must not re-hash them."""
    tamper(store, "UPDATE audit SET detail = 'rewritten', hash = NULL, prev_hash = NULL WHERE id >= 9")
    store.close()
    reopened = central_store(store.data_dir)
    try:
        report = verify(reopened)
        assert not report.intact and report.first_broken == 9
    finally:
        reopened.close()


def test_cutting_the_tail_past_an_anchor_is_detected(tmp_path):
    store = central_store(tmp_path / "c")
    with store.writer.write() as db:
        audit.record_many(
            db,
            [dict(actor="a", action="x", object_type="clip", object_id=str(i)) for i in range(audit.ANCHOR_EVERY + 5)],
        )
        db.execute("DELETE FROM audit WHERE id > 990")
        last = db.execute("SELECT hash FROM audit WHERE id = 990").fetchone()[0]
        db.execute("UPDATE audit_head SET last_id = 990, last_hash = ?", [last])  # and the head forged
    report = verify(store)
    assert not report.intact and "anchor" in report.reason
    store.close()


def _rewrite_whole_chain(store, record_id: int, detail: str) -> None:
    """What someone with the database in hand could do: edit a record and recompute every hash,
    the anchors and the head, so the database alone verifies."""
    with store.writer.write() as db:
        db.execute("UPDATE audit SET detail = ? WHERE id = ?", [detail, record_id])
        prev = audit.GENESIS
        for row in db.execute(f"SELECT {audit.COLUMNS} FROM audit ORDER BY id").fetchall():
            computed = audit.record_hash(tuple(row), prev)
            db.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?", [prev, computed, row[0]])
            db.execute("UPDATE audit_anchors SET hash = ? WHERE audit_id = ?", [computed, row[0]])
            prev = computed
        db.execute("UPDATE audit_head SET last_hash = ?", [prev])


def test_published_anchors_catch_a_rewritten_chain(store, tmp_path):
    anchors = tmp_path / "elsewhere" / "anchors.jsonl"
    with store.writer.read() as db:
        assert audit.publish(store.writer, anchors) == 1  # the head (15 records: no anchor yet)
        assert audit.publish(store.writer, anchors) == 0  # nothing new: nothing twice
    _rewrite_whole_chain(store, 3, "to PC99")
    assert verify(store).intact  # the database alone cannot tell
    with store.writer.read() as db:
        report = audit.verify(db, audit.read_published(anchors))
    assert not report.intact and report.first_broken == 15
    assert report.reason is not None and "published" in report.reason


def test_published_head_catches_a_cut_tail(store, tmp_path):
    anchors = tmp_path / "anchors.jsonl"
    with store.writer.read() as db:
        audit.publish(store.writer, anchors)
    with store.writer.write() as db:
        db.execute("DELETE FROM audit WHERE id > 12")
        last = db.execute("SELECT hash FROM audit WHERE id = 12").fetchone()[0]
        db.execute("UPDATE audit_head SET last_id = 12, last_hash = ?", [last])
    assert verify(store).intact
    with store.writer.read() as db:
        report = audit.verify(db, audit.read_published(anchors))
    assert not report.intact and report.first_broken == 13
    assert report.reason is not None and "gone" in report.reason


def test_publishing_appends_anchors_and_survives_a_torn_line(tmp_path):
    store = central_store(tmp_path / "c")
    anchors = tmp_path / "anchors.jsonl"
    try:
        with store.writer.write() as db:
            audit.record_many(
                db,
                [
                    dict(actor="a", action="x", object_type="clip", object_id=str(i))
                    for i in range(2 * audit.ANCHOR_EVERY + 3)
                ],
            )
        with store.writer.read() as db:
            assert audit.publish(store.writer, anchors) == 3  # two anchors and the head
        with open(anchors, "ab") as f:
            f.write(b'{"audit_id": 99')  # a crash in the middle of the next append
        assert [a.audit_id for a in audit.read_published(anchors)] == [1000, 2000, 2003]
        with store.writer.write() as db:
            audit.record(db, actor="a", action="x", object_type="clip", object_id="late")
        with store.writer.read() as db:
            assert audit.publish(store.writer, anchors) == 1
            published = audit.read_published(anchors)
            assert [(a.audit_id, a.head) for a in published] == [
                (1000, False),
                (2000, False),
                (2003, True),
                (2004, True),
            ]
            assert audit.verify(db, published).intact
        assert anchors.read_bytes().endswith(b"\n") and b'"audit_id": 99' not in anchors.read_bytes()
    finally:
        store.close()


@pytest.mark.slow  # a CLI in a subprocess: the whole suite, not test-fast
def test_fleet_audit_publish_and_verify_against_the_published_file(tmp_path, store):
    config = tmp_path / "central.toml"
    config.write_text(
        f'data_dir = "{store.data_dir}"\nadmin_token = "t"\n[audit]\nanchors_file = "pub/a.jsonl"\n'
        + database_section(store.data_dir)
    )
    published = run_cli("audit", "publish", "--config", str(config))
    assert published.returncode == 0 and "1 line(s) appended" in published.stdout
    assert (tmp_path / "pub" / "a.jsonl").is_file()
    ok = run_cli("audit", "verify", "--config", str(config))
    assert ok.returncode == 0 and "matches the 1 anchors published" in ok.stdout
    _rewrite_whole_chain(store, 2, "forged")
    broken = run_cli("audit", "verify", "--config", str(config))
    assert broken.returncode == 1 and "rewritten" in broken.stderr
    missing = run_cli("audit", "verify", "--anchors", str(tmp_path / "nope"), "--config", str(config))
    assert missing.returncode != 0 and "no anchors file" in missing.stderr
    (tmp_path / "bad.jsonl").write_text("not json\n")
    bad = run_cli("audit", "verify", "--anchors", str(tmp_path / "bad.jsonl"), "--config", str(config))
    assert bad.returncode != 0 and "line 1: not a published anchor" in bad.stderr and "Traceback" not in bad.stderr


def test_central_publishes_its_anchors_on_a_schedule(client, settings):
    job = services(client.app).scheduler.get_job("publish-anchors")
    assert job is not None and job.trigger.interval.total_seconds() == settings.audit.publish_minutes * 60
    client.post(
        "/api/v1/officers/",
        json=[{"officer_id": "PC1", "borough": "Camden"}],
        headers={"Authorization": f"Bearer {settings.admin_token}"},
    )
    job.func()
    head = audit.read_published(settings.anchors_file)[-1]  # the start-up run published one already
    with services(client.app).store.writer.read() as db:
        assert head.head and (head.audit_id, head.hash) == audit._head(db)


def test_configuration_changes_are_audited_at_start_up_without_their_secrets(tmp_path):
    from fleet.config import CentralSettings, settings_from_dict

    url = BACKEND.url_for(tmp_path / "c")

    def start(**extra):
        settings = settings_from_dict(
            {
                "data_dir": str(tmp_path / "c"),
                "admin_token": "first-secret",
                "stations": {"camden": {"borough": "Camden", "token": "c"}},
                **({"database": {"url": url}} if url else {}),
                **extra,
            },
            CentralSettings,
        )
        store = CentralStore.open(settings)
        try:
            with store.writer.write() as db:
                changed = audit.record_config(db, msgspec.to_builtins(settings))
            with store.writer.read() as db:
                return changed, audit.records_for(db, "config", "central")
        finally:
            store.close()

    changed, trail = start()
    assert "fleet.shift_hours" in changed and trail[0].detail == "first start with this configuration"
    assert start() == ([], trail)  # the same again: nothing to record
    changed, trail = start(admin_token="second-secret", fleet={"shift_hours": 12})
    assert changed == ["admin_token", "fleet.shift_hours"] and len(trail) == 2
    assert trail[0].detail == "admin_token: (secret) → (secret); fleet.shift_hours: 10.0 → 12.0"
    store = central_store(tmp_path / "c")
    try:
        with store.writer.read() as db:
            seen = db.execute("SELECT config FROM config_seen").fetchone()[0]
            assert "first-secret" not in seen and "second-secret" not in seen
    finally:
        store.close()
