"""Retention at central: nothing protected is ever deleted; everything else goes on time."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from central.core.services import build_services
from central.core.store import CentralStore
from central.evidence import audit
from central.evidence.retention import (
    CaseClips,
    CategoriesRequest,
    HoldRequest,
    ReleaseRequest,
    RestoreRequest,
    ReviewRequest,
)
from central.evidence.retention_rules import RetentionRules, assessment, retain_until, rules_from_dict
from central.uploads.blobstore import BlobStore, FilesystemBlobStore
from fleet.config import CentralSettings, settings_from_dict
from fleet.errors import Conflict, Gone
from tests.central.conftest import ADMIN, CAMDEN
from tests.support.databases import BACKEND, database_section

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RULES: dict[str, Any] = {
    "default_days": 31,
    "recovery_days": 7,
    "categories": {
        "evidential": {"years": 6},
        "stop_and_search": {"days": 365},
        "use_of_force": {"days": 45, "review": True},
    },
}


def put_clip(
    store: CentralStore,
    blobs: BlobStore,
    recorded_at: datetime,
    *,
    tags=(),
    evidential=False,
    officer: str | None = None,
    station: str = "camden",
    clip_id: str | None = None,
) -> str:
    clip_id = clip_id or str(uuid.uuid4())
    with store.writer.write() as db:
        db.execute(
            "INSERT INTO clips (clip_id, upload_id, sha256, size, state, station_id, device_serial, recorded_at, "
            "filename, evidential, tags, verified_at, blob_key) VALUES (?, ?, ?, 3, 'verified', ?, 'BWV-1', ?, "
            "'x.mp4', ?, ?, ?, ?)",
            [
                clip_id,
                clip_id,
                "0" * 64,
                station,
                _iso(recorded_at),
                int(evidential),
                json.dumps(list(tags)),
                _iso(T0),
                clip_id,
            ],
        )
        db.execute("INSERT INTO clip_retention (clip_id) VALUES (?)", [clip_id])  # as a verified upload has
        db.execute(
            "INSERT INTO attributions (clip_id, device_serial, recorded_at, station_id, officer_id) "
            "VALUES (?, 'BWV-1', ?, ?, ?)",
            [clip_id, _iso(recorded_at), station, officer],
        )
    source = store.data_dir / f"{clip_id}.tmp"
    source.write_bytes(b"abc")
    blobs.put(source, clip_id)
    return clip_id


def _iso(moment: datetime) -> str:
    from fleet.clock import to_iso

    return to_iso(moment)


def service_for(tmp_path, rules: dict = RULES):
    """Central's services on this test's database, under ``tmp_path / "central"``."""
    (tmp_path / "retention.toml").write_text(_toml(rules))
    url = BACKEND.url_for(tmp_path / "central")
    settings = settings_from_dict(
        {
            "data_dir": str(tmp_path / "central"),
            "admin_token": "t",
            "stations": {"camden": {"borough": "Camden", "token": "c"}},
            "retention": {"rules": str(tmp_path / "retention.toml")},
            **({"database": {"url": url}} if url else {}),
        },
        CentralSettings,
    )
    store = CentralStore.open(settings)
    blobs = FilesystemBlobStore(store.data_dir / "blobs")
    services = build_services(settings, store, blobs)
    services.retention.adopt_configured()
    with store.writer.write() as db:
        for officer in ("PC1", "PC2", "PC3"):
            db.execute(
                "INSERT INTO officers (officer_id, borough, role, updated_at) VALUES (?, 'Camden', 'response', ?)",
                [officer, _iso(T0)],
            )
    return store, blobs, services


def _toml(rules: dict) -> str:
    lines = [f"default_days = {rules['default_days']}", f"recovery_days = {rules['recovery_days']}"]
    for name, spec in rules["categories"].items():
        lines.append(f"[categories.{name}]")
        lines += [f"{k} = {str(v).lower() if isinstance(v, bool) else v}" for k, v in spec.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def env(tmp_path):
    store, blobs, services = service_for(tmp_path)
    yield store, blobs, services.retention, services
    store.close()


def state(store, clip_id):
    with store.writer.read() as db:
        return db.execute(
            "SELECT deleted_at IS NOT NULL, purged_at IS NOT NULL FROM clip_retention WHERE clip_id = ?", [clip_id]
        ).fetchone()


def test_unprotected_footage_goes_after_31_days_then_is_purged_after_7(env):
    store, blobs, retention, _ = env
    clip = put_clip(store, blobs, T0)
    assert retention.run(T0 + timedelta(days=30)).soft_deleted == 0
    report = retention.run(T0 + timedelta(days=31, hours=1))
    assert report.soft_deleted == 1 and state(store, clip) == (1, 0) and blobs.exists(clip)
    assert retention.run(T0 + timedelta(days=37)).purged == 0  # still recoverable
    assert retention.run(T0 + timedelta(days=38, hours=2)).purged == 1
    assert state(store, clip) == (1, 1) and not blobs.exists(clip)
    with store.writer.read() as db:
        actions = [r.action for r in audit.records_for(db, "clip", clip)]
        assert actions == ["purge", "soft-delete"] and audit.verify(db).intact


def test_the_clock_starts_at_recording_and_the_longest_category_wins(env):
    store, blobs, retention, _ = env
    clip = put_clip(store, blobs, T0, tags=["stop_and_search", "use_of_force", "traffic"])
    retention.assess()
    info = retention.clip(clip)
    assert info.categories == ["stop_and_search", "use_of_force"]
    assert info.retain_until == T0 + timedelta(days=365)
    evidential = put_clip(store, blobs, T0, evidential=True)
    retention.assess()
    assert retention.clip(evidential).retain_until == datetime(2032, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("hold", ["clip", "officer", "case"])
def test_every_kind_of_hold_keeps_a_clip_until_released(env, hold):
    store, blobs, retention, _ = env
    clip = put_clip(store, blobs, T0 + timedelta(hours=3), officer="PC1")
    other = put_clip(store, blobs, T0 + timedelta(hours=3), officer="PC2")
    request = {
        "clip": HoldRequest(kind="clip", clip_id=clip, reason="complaint 17"),
        "officer": HoldRequest(
            kind="officer",
            officer_id="PC1",
            window_from=T0,
            window_to=T0 + timedelta(days=1),
            reason="complaint names PC1, 1 Jan",
        ),
        "case": HoldRequest(kind="case", case_ref="CASE/2026/1", reason="trial"),
    }[hold]
    if hold == "case":
        retention.add_to_case("CASE/2026/1", CaseClips(clip_ids=[clip], reason="exhibit"), "supervisor")
    placed = retention.place_hold(request, "supervisor")
    assert placed.clips == 1 and retention.clip(clip).held_by == [placed.id]
    late = T0 + timedelta(days=400)
    report = retention.run(late)
    assert state(store, clip) == (0, 0) and state(store, other) == (1, 0) and report.held_back == 1
    retention.run(late + timedelta(days=30))
    assert state(store, clip) == (0, 0) and blobs.exists(clip)
    retention.release_hold(placed.id, ReleaseRequest(reason="complaint closed"), "supervisor")
    with pytest.raises(Conflict):
        retention.release_hold(placed.id, ReleaseRequest(reason="again"), "supervisor")
    retention.run(late + timedelta(days=31))
    assert state(store, clip) == (1, 0)


def test_a_hold_placed_during_recovery_stops_the_purge(env):
    store, blobs, retention, _ = env
    clip = put_clip(store, blobs, T0)
    retention.run(T0 + timedelta(days=32))
    retention.place_hold(HoldRequest(kind="clip", clip_id=clip, reason="late complaint"), "supervisor")
    assert retention.run(T0 + timedelta(days=60)).purged == 0 and blobs.exists(clip)


def test_restore_and_categorise(env):
    store, blobs, retention, _ = env
    clip = put_clip(store, blobs, T0)
    retention.run(T0 + timedelta(days=32))
    restored = retention.restore(clip, RestoreRequest(reason="deleted by mistake"), "admin")
    assert restored.deleted_at is None and restored.retain_until > T0 + timedelta(days=32)
    with pytest.raises(Conflict):
        retention.restore(clip, RestoreRequest(reason="twice"), "admin")
    kept = retention.categorise(
        clip, CategoriesRequest(categories=["evidential"], reason="charged"), "sergeant", now=T0 + timedelta(days=32)
    )
    assert kept.retain_until == datetime(2032, 1, 1, tzinfo=UTC)
    gone = put_clip(store, blobs, T0)
    retention.run(T0 + timedelta(days=32))
    retention.run(T0 + timedelta(days=40))
    with pytest.raises(Gone):
        retention.restore(gone, RestoreRequest(reason="too late"), "admin")


def test_rules_that_shorten_retention_need_confirmation(env, tmp_path):
    store, blobs, retention, _ = env
    clips = [put_clip(store, blobs, T0, tags=["use_of_force"]) for _ in range(3)]
    retention.assess()
    shorter = rules_from_dict({**RULES, "categories": {**RULES["categories"], "use_of_force": {"days": 10}}})
    change = retention.apply_rules(shorter, "admin", now=T0 + timedelta(days=20))
    assert change.shortened == ["use_of_force"] and change.would_delete == 3 and not change.applied
    assert retention.clip(clips[0]).retain_until == T0 + timedelta(days=45)  # nothing changed
    change = retention.apply_rules(shorter, "admin", confirm=True, now=T0 + timedelta(days=20))
    assert change.applied and retention.clip(clips[0]).retain_until == T0 + timedelta(days=10)
    longer = rules_from_dict({**RULES, "default_days": 60})
    assert retention.apply_rules(longer, "admin").applied  # lengthening needs no confirmation


def test_the_digest_lists_what_the_next_days_will_delete(env):
    store, blobs, retention, _ = env
    due = [put_clip(store, blobs, T0 - timedelta(days=31) + timedelta(days=d)) for d in (1, 2, 3)]
    held = put_clip(store, blobs, T0 - timedelta(days=29))
    retention.place_hold(HoldRequest(kind="clip", clip_id=held, reason="x"), "s")
    retention.assess()
    digest = retention.digest(7, now=T0)
    assert sum(d.soft_deletes for d in digest.days) == 3 and digest.held_back == 1
    assert digest.sample == due


def test_holds_reach_the_station_feed_and_its_snapshot(env):
    store, blobs, retention, services = env
    clip = put_clip(store, blobs, T0, officer="PC3")
    hold = retention.place_hold(
        HoldRequest(
            kind="officer",
            officer_id="PC3",
            window_from=T0 - timedelta(hours=1),
            window_to=T0 + timedelta(hours=1),
            reason="complaint",
        ),
        "s",
    )
    page = services.changes.page("Camden", 0)
    assert [(c.item.clip_id, c.item.held) for c in page.changes if c.item.__struct_config__.tag == "clip_hold"] == [
        (clip, True)
    ]
    assert services.changes.snapshot("Camden").held_clips == [clip]
    retention.release_hold(hold.id, ReleaseRequest(reason="closed"), "s")
    page = services.changes.page("Camden", 0)
    assert [c.item.held for c in page.changes if c.item.__struct_config__.tag == "clip_hold"] == [True, False]
    assert services.changes.snapshot("Camden").held_clips == []


def test_the_api_refuses_bad_holds_clearly(client):
    bad = client.post("/api/v1/holds", json={"kind": "officer", "officer_id": "PC1", "reason": "x"}, headers=ADMIN)
    assert bad.status_code == 400 and "needs window_from, window_to" in bad.json()["message"]
    mixed = client.post(
        "/api/v1/holds", json={"kind": "clip", "clip_id": "a", "case_ref": "C1", "reason": "x"}, headers=ADMIN
    )
    assert mixed.status_code == 400 and "does not take case_ref" in mixed.json()["message"]
    assert (
        client.post("/api/v1/holds", json={"kind": "clip", "clip_id": "nope", "reason": "x"}, headers=ADMIN).status_code
        == 404
    )
    assert (
        client.post("/api/v1/holds", json={"kind": "clip", "clip_id": "a", "reason": "x"}, headers=CAMDEN).status_code
        == 403
    )
    assert client.get("/api/v1/retention/digest", headers=ADMIN).status_code == 200
    assert client.post("/api/v1/retention/run", headers=ADMIN).json()["soft_deleted"] == 0


# -- a simulated year -------------------------------------------------------------------------


class RetentionYear(RuleBasedStateMachine):
    """Clips, categories, holds of every kind, releases and daily runs over a year.

    Invariants: no clip that any rule protects (retention not over, or an active hold) is
    ever soft-deleted or purged; after each daily run every clip no rule protects and whose
    retention ended is soft-deleted, and purged once its recovery week is over."""

    @initialize(tmp=st.just(None))
    def setup(self, tmp):
        import tempfile
        from pathlib import Path

        self.dir = Path(tempfile.mkdtemp(prefix="retention-year-"))
        self.store, self.blobs, services = service_for(self.dir)
        self.retention = services.retention
        self.retention_rules: RetentionRules = self.retention.rules()
        self.now = T0
        self.clips: dict[str, dict] = {}
        self.holds: dict[int, tuple] = {}
        """Hold id → ("clip", clip) | ("case", ref) | ("officer", officer, from, to), as placed."""
        self.cases: dict[str, set[str]] = {}

    def teardown(self):
        import shutil

        if hasattr(self, "store"):
            self.store.close()
            BACKEND.release(self.dir / "central")
            shutil.rmtree(self.dir, ignore_errors=True)

    @rule(
        age_days=st.integers(0, 60),
        tags=st.lists(st.sampled_from(["stop_and_search", "use_of_force", "traffic"]), max_size=2),
        evidential=st.booleans(),
        officer=st.sampled_from(["PC1", "PC2", None]),
    )
    def record_clip(self, age_days, tags, evidential, officer):
        recorded = self.now - timedelta(days=age_days, hours=1)
        clip = put_clip(
            self.store,
            self.blobs,
            recorded,
            tags=tags,
            evidential=evidential and age_days % 3 == 0,
            officer=officer,
            clip_id=f"clip-{len(self.clips):04d}",
        )  # not random: replays draw alike
        self.clips[clip] = {"recorded": recorded, "officer": officer, "deleted_at": None, "purged": False}

    @rule(data=st.data(), decision=st.sampled_from(["retain", "dispose"]))
    def review(self, data, decision):
        due = sorted(
            c
            for c, s in self.clips.items()
            if not s["purged"] and s["deleted_at"] is None and self._review(c) and self._until(c) <= self.now
        )
        if not due:
            return
        clip = data.draw(st.sampled_from(due))
        request = ReviewRequest(decision=decision, reason="MoPI review")
        if decision == "dispose" and self._held(clip):
            with pytest.raises(Conflict):
                self.retention.review(clip, request, "reviewer", now=self.now)
            return
        self.retention.review(clip, request, "reviewer", now=self.now)
        if decision == "dispose":
            self.clips[clip]["deleted_at"] = self.now
        else:
            assert self._until(clip) > self.now

    @rule(
        data=st.data(), names=st.lists(st.sampled_from(["stop_and_search", "use_of_force", "evidential"]), max_size=2)
    )
    def categorise(self, data, names):
        alive = [c for c, s in self.clips.items() if not s["purged"]]
        if alive:
            clip = data.draw(st.sampled_from(sorted(alive)))
            self.retention.categorise(
                clip, CategoriesRequest(categories=names, reason="review", confirm=True), "sergeant", now=self.now
            )
            if self.clips[clip]["deleted_at"] is not None and self._until(clip) > self.now:
                self.clips[clip]["deleted_at"] = None  # restored by its new categories

    @rule(data=st.data(), kind=st.sampled_from(["clip", "officer", "case"]))
    def hold(self, data, kind):
        alive = sorted(c for c, s in self.clips.items() if not s["purged"])
        if not alive:
            return
        clip = data.draw(st.sampled_from(alive))
        model: tuple[Any, ...]  # as self.holds keeps it
        if kind == "clip":
            request, model = HoldRequest(kind="clip", clip_id=clip, reason="complaint"), ("clip", clip)
        elif kind == "case":
            ref = f"CASE-{len(self.cases)}"
            self.retention.add_to_case(ref, CaseClips(clip_ids=[clip], reason="exhibit"), "s")
            self.cases[ref] = {clip}
            request, model = HoldRequest(kind="case", case_ref=ref, reason="trial"), ("case", ref)
        else:
            officer = self.clips[clip]["officer"] or "PC3"
            start = self.clips[clip]["recorded"] - timedelta(hours=data.draw(st.integers(0, 48)))
            end = start + timedelta(hours=data.draw(st.integers(1, 96)))
            request = HoldRequest(
                kind="officer", officer_id=officer, window_from=start, window_to=end, reason="complaint"
            )
            model = ("officer", officer, start, end)
        self.holds[self.retention.place_hold(request, "supervisor", now=self.now).id] = model
        for other, s in self.clips.items():  # a hold brings back the soft-deleted clips it covers
            if s["deleted_at"] is not None and not s["purged"] and self._held(other):
                s["deleted_at"] = None

    @rule(data=st.data())
    def release(self, data):
        if self.holds:
            hold_id = data.draw(st.sampled_from(sorted(self.holds)))
            self.retention.release_hold(hold_id, ReleaseRequest(reason="closed"), "supervisor")
            del self.holds[hold_id]

    @rule(days=st.integers(1, 20))
    def days_pass(self, days):
        for _ in range(days):
            self.now += timedelta(days=1)
            self.retention.run(self.now)
            self._expect_after_run()

    def _until(self, clip) -> datetime:
        return self.retention.clip(clip).retain_until or retain_until(
            self.retention_rules, self.clips[clip]["recorded"], []
        )

    def _review(self, clip) -> bool:
        """Whether the clip's deciding category is reviewed: at its end it waits for a reviewer."""
        return assessment(self.retention_rules, self.clips[clip]["recorded"], self.retention.clip(clip).categories)[1]

    def _held(self, clip) -> bool:
        """From the model alone: an officer hold covers clips recorded in its window, whenever they
        arrive, both the officer's and those attributed to nobody."""
        s = self.clips[clip]
        for hold in self.holds.values():
            if hold[0] == "clip" and hold[1] == clip:
                return True
            if hold[0] == "case" and clip in self.cases[hold[1]]:
                return True
            if hold[0] == "officer" and s["officer"] in (hold[1], None) and hold[2] <= s["recorded"] < hold[3]:
                return True
        return False

    def _expect_after_run(self):
        for clip, s in self.clips.items():
            deleted, purged = state(self.store, clip)
            if self._held(clip) and not s["purged"]:  # a hold placed after the purge cannot bring it back
                assert not purged
            if s["deleted_at"] is None and deleted:
                assert not self._held(clip), f"{clip} soft-deleted while held"
                assert not self._review(clip), f"{clip} was deleted unseen instead of going to review"
                s["deleted_at"] = self.now
            if purged:
                s["purged"] = True
            if not self._held(clip) and not deleted and not self._review(clip):
                assert self._until(clip) > self.now, f"{clip} outlived its retention unprotected"
            if not self._held(clip) and deleted and not purged:
                assert s["deleted_at"] > self.now - timedelta(days=self.retention_rules.recovery_days + 1), (
                    f"{clip} was not purged after its recovery window"
                )

    @invariant()
    def nothing_protected_is_deleted(self):
        if not hasattr(self, "store"):
            return
        for clip, s in self.clips.items():
            deleted, purged = state(self.store, clip)
            if not s["purged"] and (self._held(clip) or self._until(clip) > self.now):
                assert not purged, f"{clip} purged while protected"
            if deleted and self._held(clip) and s["deleted_at"] is None:
                raise AssertionError(f"{clip} soft-deleted while held")
            assert self.blobs.exists(clip) == (not purged)


@pytest.mark.slow  # a simulated year: not in test-fast
def test_a_simulated_year():
    """``RetentionYear`` run by a test function, which is parametrised over the databases (a ``TestCase`` is not)."""
    run_state_machine_as_test(
        RetentionYear,
        settings=settings(
            max_examples=int(__import__("os").environ.get("YEAR_EXAMPLES", 150)),
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


@pytest.mark.slow  # a CLI in a subprocess: the whole suite, not test-fast
def test_the_retention_commands(tmp_path):
    from tests.test_cli import run_cli

    store, blobs, _services = service_for(tmp_path)
    put_clip(store, blobs, T0 - timedelta(days=400), tags=["stop_and_search"])
    reviewed = put_clip(store, blobs, T0 - timedelta(days=400), tags=["use_of_force"])
    store.close()
    config = tmp_path / "central.toml"
    config.write_text(
        'data_dir = "central"\nadmin_token = "t"\n[retention]\nrules = "retention.toml"\n'
        + database_section(tmp_path / "central")
    )
    digest = run_cli("central", "retention", "digest", "--config", str(config))
    assert (
        digest.returncode == 0 and "1 to soft-delete" in digest.stdout and "1 clip(s) due for review" in digest.stdout
    )
    due = run_cli("central", "retention", "reviews", "--config", str(config))
    assert due.returncode == 0 and f"{reviewed}: use_of_force, due since" in due.stdout
    bad = run_cli(
        "central",
        "retention",
        "review",
        reviewed,
        "--dispose",
        "--until",
        "2030-01-01",
        "--reason",
        "x",
        "--config",
        str(config),
    )
    assert bad.returncode != 0 and "--until goes with --retain" in bad.stderr
    kept = run_cli(
        "central",
        "retention",
        "review",
        reviewed,
        "--retain",
        "--until",
        "2030-01-01",
        "--reason",
        "linked to an open investigation",
        "--config",
        str(config),
    )
    assert kept.returncode == 0 and "retained until 2030-01-01" in kept.stdout
    again = run_cli("central", "retention", "review", reviewed, "--dispose", "--reason", "x", "--config", str(config))
    assert again.returncode != 0 and "not due for review until 2030-01-01" in again.stderr
    (tmp_path / "retention.toml").write_text(_toml({**RULES, "default_days": 10}))
    refused = run_cli("central", "retention", "apply", "--config", str(config))
    assert refused.returncode == 1 and "shorten default" in refused.stdout and "--confirm" in refused.stdout
    applied = run_cli("central", "retention", "apply", "--confirm", "--config", str(config))
    assert applied.returncode == 0 and "applied" in applied.stdout
    ran = run_cli("central", "retention", "run", "--config", str(config))
    assert ran.returncode == 0 and "1 soft-deleted" in ran.stdout
    verify = run_cli("audit", "verify", "--config", str(config))
    assert verify.returncode == 0 and "intact" in verify.stdout


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)),
        min_size=1,
        max_size=20,
    )
)
@pytest.mark.slow  # 1-2 s: the whole suite runs it, the quick lane stays under 2 minutes
def test_the_sql_fast_path_gives_the_same_end_as_the_rules(tmp_path_factory, moments):
    store, blobs, services = service_for(tmp_path_factory.mktemp("fast"))
    try:
        clips = {put_clip(store, blobs, m): m for m in moments}
        services.retention.assess()
        rules = services.retention.rules()
        for clip, recorded in clips.items():
            assert services.retention.clip(clip).retain_until == retain_until(rules, recorded, [])
    finally:
        store.close()


def test_a_crash_between_the_purge_commit_and_the_blob_delete_is_swept_next_run(env, monkeypatch):
    store, blobs, retention, _ = env
    clip = put_clip(store, blobs, T0)
    retention.run(T0 + timedelta(days=32))

    def crash(keys):
        raise RuntimeError("killed while deleting the bytes, after the purge commit")

    monkeypatch.setattr(blobs, "delete_many", crash)
    with pytest.raises(RuntimeError):
        retention.run(T0 + timedelta(days=40))
    monkeypatch.undo()
    assert state(store, clip) == (1, 1) and blobs.exists(clip)  # marked purged, bytes still there
    assert retention.run(T0 + timedelta(days=41)).swept == 1  # the next run finishes it
    assert not blobs.exists(clip)
    with store.writer.read() as db:
        assert db.execute("SELECT count(*) FROM purge_pending").fetchone()[0] == 0


def test_bad_hold_windows_and_case_refs_are_400s_not_500s(client):
    client.post("/api/v1/officers/", json=[{"officer_id": "PC1", "borough": "Camden"}], headers=ADMIN)
    for window in (
        {"window_from": "2026-01-01T00:00:00Z", "window_to": "2026-01-02T00:00:00"},
        {"window_from": "0001-01-01T00:00:00+05:00", "window_to": "2026-01-02T00:00:00Z"},
        {"window_from": "2026-01-02T00:00:00Z", "window_to": "2026-01-01T00:00:00Z"},
    ):
        r = client.post(
            "/api/v1/holds", json={"kind": "officer", "officer_id": "PC1", "reason": "x", **window}, headers=ADMIN
        )
        assert r.status_code == 400, (window, r.text)
    r = client.post("/api/v1/holds", json={"kind": "case", "case_ref": "CR/1/26", "reason": "x"}, headers=ADMIN)
    assert r.status_code == 400


def test_shortening_a_clips_retention_by_hand_needs_confirm_and_hand_categories_stick(env):
    store, blobs, retention, _ = env
    clip = put_clip(store, blobs, T0, evidential=True)
    retention.assess()
    with pytest.raises(Conflict, match="send confirm"):
        retention.categorise(clip, CategoriesRequest(categories=[], reason="not evidence"), "s", now=T0)
    done = retention.categorise(
        clip, CategoriesRequest(categories=[], reason="not evidence", confirm=True), "s", now=T0
    )
    assert done.categories == [] and done.retain_until == T0 + timedelta(days=31)
    longer = rules_from_dict({**RULES, "default_days": 40})
    retention.apply_rules(longer, "admin")  # re-assessment keeps what the person set, not the camera's flag
    assert retention.clip(clip).categories == [] and retention.clip(clip).retain_until == T0 + timedelta(days=40)


def test_a_restore_survives_a_rules_change_and_a_hold_brings_a_deleted_clip_back(env):
    store, blobs, retention, _ = env
    clip = put_clip(store, blobs, T0)
    retention.run(T0 + timedelta(days=32))
    kept = retention.restore(clip, RestoreRequest(reason="mistake"), "admin").retain_until
    retention.apply_rules(rules_from_dict({**RULES, "default_days": 35}), "admin")
    assert retention.clip(clip).retain_until == kept
    other = put_clip(store, blobs, T0)
    retention.run(T0 + timedelta(days=32))
    retention.place_hold(HoldRequest(kind="clip", clip_id=other, reason="complaint"), "s")
    assert retention.clip(other).deleted_at is None


def test_a_reviewed_category_goes_before_a_reviewer_instead_of_being_deleted(env):
    store, blobs, retention, _ = env
    clip = put_clip(store, blobs, T0, tags=["use_of_force"], officer="PC1")
    plain = put_clip(store, blobs, T0)
    later = T0 + timedelta(days=46)
    assert retention.digest(7, now=T0 + timedelta(days=40)).reviews_due == 1
    report = retention.run(later)
    assert report.soft_deleted == 1 and report.for_review == 1 and state(store, plain) == (1, 0)
    assert state(store, clip) == (0, 0) and [c.clip_id for c in retention.reviews(10, now=later)] == [clip]
    assert retention.clip(clip).review is True
    hold = retention.place_hold(HoldRequest(kind="clip", clip_id=clip, reason="complaint"), "s", now=later)
    with pytest.raises(Conflict, match="held by hold"):
        retention.review(clip, ReviewRequest(decision="dispose", reason="no further use"), "imo", now=later)
    kept = retention.review(clip, ReviewRequest(decision="retain", reason="complaint open"), "imo", now=later)
    assert kept.retain_until == later + timedelta(days=45) and retention.reviews(10, now=later) == []
    with pytest.raises(Conflict, match="not due for review until"):
        retention.review(clip, ReviewRequest(decision="dispose", reason="x"), "imo", now=later)
    retention.release_hold(hold.id, ReleaseRequest(reason="closed"), "s")
    again = later + timedelta(days=46)
    assert retention.run(again).for_review == 1 and state(store, clip) == (0, 0)  # due again: still not deleted
    gone = retention.review(
        clip, ReviewRequest(decision="dispose", reason="no further policing purpose"), "imo", now=again
    )
    assert gone.deleted_at == again and retention.run(again + timedelta(days=8)).purged == 1
    with store.writer.read() as db:
        trail = [(r.action, r.actor) for r in audit.records_for(db, "clip", clip)]
    assert ("review", "imo") in trail and ("soft-delete", "imo") in trail and trail[0] == ("purge", "retention-job")


def test_the_review_api(client, tmp_path):
    listed = client.get("/api/v1/retention/reviews", headers=ADMIN)
    assert listed.status_code == 200 and listed.json() == []
    assert client.get("/api/v1/retention/reviews", headers=CAMDEN).status_code == 403
    r = client.post("/api/v1/clips/nope/review", json={"decision": "retain", "reason": "x"}, headers=ADMIN)
    assert r.status_code == 404
    r = client.post("/api/v1/clips/nope/review", json={"decision": "shred", "reason": "x"}, headers=ADMIN)
    assert r.status_code == 400 and "decision" in r.json()["message"]
    assert (
        client.post("/api/v1/clips/nope/review", json={"decision": "retain", "reason": "x"}, headers=CAMDEN).status_code
        == 403
    )


def test_an_officer_hold_keeps_clips_nobody_is_attributed_to_in_its_window(env):
    store, blobs, retention, services = env
    nobody = put_clip(store, blobs, T0 + timedelta(hours=2))
    outside = put_clip(store, blobs, T0 + timedelta(hours=9))
    retention.place_hold(
        HoldRequest(
            kind="officer",
            officer_id="PC1",
            window_from=T0,
            window_to=T0 + timedelta(hours=4),
            reason="complaint names PC1 between midnight and 4 am",
        ),
        "s",
    )
    assert retention.run(T0 + timedelta(days=32)).held_back == 1
    assert state(store, nobody) == (0, 0) and state(store, outside) == (1, 0)
    assert retention.clip(nobody).held_by != []
    # A supervisor finds it was PC2's: the hold no longer covers it, and the station hears so.
    from central.registry.assignments import AttributeRequest

    services.assignments.attribute(nobody, AttributeRequest(officer_id="PC2", reason="incident log"), "sgt")
    assert retention.clip(nobody).held_by == []
    holds = [
        (c.item.clip_id, c.item.held)
        for c in services.changes.page("Camden", 0).changes
        if c.item.__struct_config__.tag == "clip_hold"
    ]
    assert holds == [(nobody, True), (nobody, False)]
    assert retention.run(T0 + timedelta(days=33)).soft_deleted == 1 and state(store, nobody) == (1, 0)
