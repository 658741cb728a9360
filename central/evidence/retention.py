"""Evidence governance at central: retention, holds, soft deletion, restore and purge.

Wrongful deletion is made impossible by construction:
- a clip's retention ends at ``central.evidence.retention_rules.retain_until`` of its categories, counted
  from ``recorded_at``; until it has been assessed (``retain_until`` NULL) it is never
  deleted;
- a hold (on a clip, on an officer for a time window, or on a case grouping clips) stops
  soft deletion and purging while it applies; every deletion query carries the same
  ``HELD`` predicate, evaluated in the transaction that deletes;
- a clip whose deciding category is reviewed (MoPI) is put before a reviewer when its
  period ends, never deleted unseen: the reviewer retains it for another period or disposes
  of it (a soft delete);
- deletion is two steps: soft delete (recoverable for ``recovery_days``), then purge of the
  bytes; the blob goes first and the purge commit after it, so a crash between them only
  repeats the (idempotent) blob delete;
- rules that shorten a retention period are applied only when confirmed, after showing how
  many clips they would delete;
- every step is in the audit chain (``central.evidence.audit``) with actor, time, place and clip.

What a hold covers, and how the stations hear of it (``ClipHold`` down the changes feed, so
their local copies are not purged either), is ``central.evidence.holds``'s.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime, timedelta
from typing import Annotated, Literal

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import FromQuery, JSONBody, PathParameter, QueryParameter

from central.access.auth import Caller, user_with
from central.access.scope import FORCE_WIDE, LISTS, Scoped, in_json, in_path, touches
from central.access.users import CLIP_FINDERS
from central.core.database import Database
from central.core.metrics import CentralMetrics
from central.core.openapi import errors
from central.core.pagination import CURSOR_HELP, decode_time_cursor, page_response
from central.core.providers import Injected
from central.evidence import audit, holds
from central.evidence.holds import HELD, Hold
from central.evidence.retention_rules import (
    RetentionRules,
    assessment,
    categories_of,
    load_retention,
    retain_until,
    shortened,
)
from central.registry import officers
from central.uploads.blobstore import BlobStore
from fleet.clock import from_iso, to_iso, utc_now
from fleet.config import CentralSettings
from fleet.errors import BadRequest, Conflict, Gone, NotFound
from fleet.events import OfficerId
from fleet.protocol import AwareDatetime

BATCH = 50_000
"""Clips soft-deleted or purged per transaction: bounded memory, short write locks."""
CLIPS_KEY = "sqlite_autoindex_clips_1"
"""SQLite's name for the index of ``clips``' primary key (its first unique constraint)."""
RETENTION_COLUMNS = "c.clip_id, c.recorded_at, c.categories, r.retain_until, r.deleted_at, r.purged_at, r.review"
"""A verified clip (``c``) and its retention (``r``), as ``_retention`` reads them."""


def _in_batch(column: str, alias: str = "") -> str:
    """A batch of the retention job: the rows after the last batch's key, up to its own last,
    along the index it was listed by (parameters: the two keys). Not a list of its ids:
    PostgreSQL met ``= ANY`` of 50,000 ids with a scan of the whole table, once a batch."""
    key = f"({alias}{column}, {alias}clip_id)"
    return f"{key} > (?, ?) AND {key} <= (?, ?)"


RULES_IN_FORCE = "(SELECT rules FROM retention_rules WHERE one = 1)"
"""The rules applied last (JSON, NULL before any), as a subquery a caller's statement reads them
by: the clip's verification reads them in its own UPDATE, so they are the ones in force when it commits."""


@functools.lru_cache(maxsize=4)
def _decoded(rules: str) -> RetentionRules:
    return msgspec.json.decode(rules, type=RetentionRules)


def assess_verified(
    db, clip_id: str, recorded_at: datetime, tags: list[str], evidential: bool, rules: str | None
) -> None:
    """A clip just verified gets its retention row, assessed already: its categories (from the
    camera's tags and evidential flag) and end of retention under ``rules`` (``RULES_IN_FORCE``
    read in the caller's transaction, so a rules change committed meanwhile is never overwritten:
    it waits for this transaction's lock and then reassesses every clip). Without rules yet (a
    central that never started its service) the row stays unassessed: the daily job assesses it.
    Inside the upload's transaction: one INSERT, and an UPDATE of the clip's categories only for
    a clip that has any."""
    if rules is None:
        db.execute("INSERT INTO clip_retention (clip_id) VALUES (?) ON CONFLICT DO NOTHING", [clip_id])
        return
    in_force = _decoded(rules)
    names = categories_of(in_force, tags, evidential)
    until, review = assessment(in_force, recorded_at, names)
    if names:
        db.execute("UPDATE clips SET categories = ? WHERE clip_id = ?", [json.dumps(names), clip_id])
    db.execute(
        "INSERT INTO clip_retention (clip_id, retain_until, review) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        [clip_id, to_iso(until), int(review)],
    )


Text = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
CaseRef = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$(?!\n)")]
ClipIdPath = Annotated[str, PathParameter(min_length=1, max_length=64, description="the clip's id")]


class HoldRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    kind: Literal["clip", "officer", "case"]
    reason: Text
    clip_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    officer_id: OfficerId | None = None
    window_from: AwareDatetime | None = None
    window_to: AwareDatetime | None = None
    case_ref: CaseRef | None = None


class ReleaseRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Text


class ReviewRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A reviewer's decision on a clip whose reviewed retention period has ended."""

    decision: Literal["retain", "dispose"]
    reason: Text
    retain_until: AwareDatetime | None = None
    """For "retain": until when (default: its categories' period again, from today)."""


class CaseClips(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    clip_ids: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=64)]], msgspec.Meta(min_length=1, max_length=10_000)
    ]
    reason: Text


class CategoriesRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    categories: Annotated[list[Annotated[str, msgspec.Meta(min_length=1, max_length=64)]], msgspec.Meta(max_length=32)]
    reason: Text
    confirm: bool = False
    """Needed when the new categories keep the clip for less time than now."""


class RestoreRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Text


class ClipRetention(msgspec.Struct, kw_only=True):
    clip_id: str
    recorded_at: datetime
    categories: list[str]
    retain_until: datetime | None
    """None: not assessed yet (never deleted until it is)."""
    held_by: list[int]
    """Ids of the holds that protect it."""
    requested_by: list[str] = []
    """References of the public requests to keep footage that protect it."""
    deleted_at: datetime | None
    purged_at: datetime | None
    review: bool = False
    """At ``retain_until`` it goes before a reviewer (MoPI) instead of being deleted."""


class JobReport(msgspec.Struct, kw_only=True):
    assessed: int = 0
    soft_deleted: int = 0
    purged: int = 0
    held_back: int = 0
    """Clips past retention that a hold kept."""
    for_review: int = 0
    """Clips past a reviewed retention period, waiting for a reviewer's decision."""
    swept: int = 0
    """Bytes of clips purged before a crash, deleted now."""


class DigestDay(msgspec.Struct, kw_only=True):
    day: str
    soft_deletes: int
    purges: int


class Digest(msgspec.Struct, kw_only=True):
    """What the next days' runs will delete (no hold protects it today)."""

    days: list[DigestDay]
    held_back: int
    """Clips whose retention ends in the window but a hold keeps."""
    reviews_due: int = 0
    """Clips whose reviewed period ends by the window's end: a reviewer decides, nothing is deleted."""
    sample: list[str]
    """Up to 100 clip ids due for soft deletion, soonest first."""


class RulesChange(msgspec.Struct, kw_only=True):
    shortened: list[str]
    would_delete: int
    """Clips whose retention ends by now under the new rules, not held: the next run deletes them."""
    applied: bool
    more_than_now: int = 0
    """Of those, how many the rules in force would keep."""


class RetentionService:
    def __init__(
        self,
        writer: Database,
        changes,
        blobs: BlobStore,
        settings: CentralSettings,
        metrics: CentralMetrics | None = None,
    ) -> None:
        self.metrics = metrics or CentralMetrics()
        """Clips deleted and held back by this process's runs (``central.core.metrics``)."""
        self.writer = writer
        self.changes = changes
        self.blobs = blobs
        self.settings = settings

    # -- rules -------------------------------------------------------------------------------

    def rules(self) -> RetentionRules:
        """The rules last applied (stored with the data), else the configured ones."""
        with self.writer.read() as db:
            row = db.execute("SELECT rules FROM retention_rules WHERE one = 1").fetchone()
        if row:
            return msgspec.json.decode(row[0], type=RetentionRules)
        return self.configured_rules()

    def configured_rules(self) -> RetentionRules:
        path = self.settings.retention.rules
        return load_retention(path) if path else RetentionRules()

    def apply_rules(
        self, new: RetentionRules, actor: str, *, confirm: bool = False, now: datetime | None = None
    ) -> RulesChange:
        """Adopt new rules. If they shorten any period, only with ``confirm`` (after seeing the count)."""
        now = now or utc_now()
        with self.writer.write() as db:
            row = db.execute("SELECT rules FROM retention_rules WHERE one = 1").fetchone()
            old = msgspec.json.decode(row[0], type=RetentionRules) if row else None
            cut = shortened(old, new) if old is not None else []
            would = more = 0
            if old is not None and cut:
                would = self._count_due_under(db, new, now)
                more = would - self._count_due_under(db, old, now)
            if cut and not confirm:
                return RulesChange(shortened=cut, would_delete=would, applied=False, more_than_now=more)
            if old is not None and msgspec.json.encode(old) == msgspec.json.encode(new):
                return RulesChange(shortened=[], would_delete=0, applied=False)
            db.execute(
                "INSERT INTO retention_rules (one, rules, applied_at, applied_by) VALUES (1, ?, ?, ?) "
                "ON CONFLICT (one) DO UPDATE SET rules = excluded.rules, applied_at = excluded.applied_at, "
                "applied_by = excluded.applied_by",
                [msgspec.json.encode(new).decode(), to_iso(now), actor],
            )
            db.execute("UPDATE clip_retention SET retain_until = NULL WHERE deleted_at IS NULL")  # reassessed below
            audit.record(
                db,
                actor=actor,
                action="config-change",
                object_type="retention_rules",
                object_id="rules",
                detail=(f"shortened {', '.join(cut)}; {would} clips now due" if cut else "rules applied"),
            )
        self.assess()
        return RulesChange(shortened=cut, would_delete=would, applied=True, more_than_now=more)

    def adopt_configured(self) -> RulesChange:
        """At start-up: adopt the config file's rules unless they shorten a period (then they wait
        for ``fleet central retention apply --confirm``; the rules applied before stay in force)."""
        return self.apply_rules(self.configured_rules(), "central:start-up")

    def _count_due_under(self, db, rules: RetentionRules, now: datetime) -> int:
        count = 0
        for recorded_at, categories in db.execute(
            "SELECT c.recorded_at, c.categories FROM clip_retention r JOIN clips c ON c.clip_id = r.clip_id "
            f"WHERE c.state = 'verified' AND r.deleted_at IS NULL AND NOT {HELD}"
        ):
            until, review = assessment(rules, from_iso(recorded_at), json.loads(categories))
            if until <= now and not review:
                count += 1
        return count

    # -- assessment --------------------------------------------------------------------------

    def _rules_in(self, db) -> RetentionRules:
        row = db.execute("SELECT rules FROM retention_rules WHERE one = 1").fetchone()
        return msgspec.json.decode(row[0], type=RetentionRules) if row else self.configured_rules()

    def assess(self, rules: RetentionRules | None = None) -> int:
        """Give every verified clip without one its categories and end of retention.

        The rules are read inside each batch's transaction, so a rules change committed
        meanwhile is never overwritten by an assessment made under the old ones. A clip a
        person categorised keeps exactly those categories; a restore's ``kept_until`` is a floor."""
        done = 0
        with self.writer.write() as db:
            rules = self._rules_in(db)
            # Most footage has no category: its end is recording + default_days, computed in SQL
            # on the fixed-width text ("YYYY-MM-DDTHH:MM:SS" + ".ffffffZ"), equal to retain_until's.
            until = db.dialect.shifted_time("c.recorded_at", "?") + " || substr(c.recorded_at, 20)"
            retain_until = db.dialect.greatest(until, "COALESCE(clip_retention.kept_until, '')")
            done += db.execute(
                f"UPDATE clip_retention SET retain_until = {retain_until}, review = 0 FROM clips c "
                "WHERE c.clip_id = clip_retention.clip_id AND clip_retention.retain_until IS NULL "
                "AND clip_retention.deleted_at IS NULL AND c.state = 'verified' AND c.categorised_at IS NULL "
                "AND c.categories = '[]' AND c.tags = '[]' AND c.evidential = 0 AND length(c.recorded_at) = 27 "
                "AND substr(c.recorded_at, 27) = 'Z' AND c.recorded_at < '9000'",
                [f"+{rules.default_days} days"],
            ).rowcount
        while True:
            with self.writer.write() as db:
                rules = self._rules_in(db)
                rows = db.execute(
                    "SELECT c.clip_id, c.recorded_at, c.tags, c.evidential, c.categories, c.categorised_at, "
                    f"r.kept_until FROM clip_retention r {db.dialect.indexed_by('clip_retention_unassessed')} "
                    "JOIN clips c ON c.clip_id = r.clip_id WHERE r.retain_until IS NULL AND r.deleted_at IS NULL "
                    "AND c.state = 'verified' LIMIT ?",
                    [BATCH],
                ).fetchall()
                if not rows:
                    return done
                updates, recategorised = [], []
                for clip_id, recorded_at, tags, evidential, categories, by_hand, kept in rows:
                    names = (
                        json.loads(categories)
                        if by_hand
                        else sorted(
                            set(json.loads(categories)) | set(categories_of(rules, json.loads(tags), bool(evidential)))
                        )
                    )
                    until, review = assessment(rules, from_iso(recorded_at), names)
                    updates.append({"clip": clip_id, "until": max(to_iso(until), kept or ""), "review": int(review)})
                    if json.dumps(names) != categories:
                        recategorised.append({"clip": clip_id, "categories": json.dumps(names)})
                # Two statements a batch, in key order; a clip's own row only where its categories changed.
                db.execute(
                    "UPDATE clip_retention SET retain_until = v.until, review = v.review "
                    f"FROM {db.dialect.rows_of('clip TEXT, until TEXT, review BIGINT')} "
                    "WHERE clip_retention.clip_id = v.clip",
                    [db.dialect.rows(sorted(updates, key=lambda u: u["clip"]))],
                )
                if recategorised:
                    db.execute(
                        "UPDATE clips SET categories = v.categories "
                        f"FROM {db.dialect.rows_of('clip TEXT, categories TEXT')} WHERE clips.clip_id = v.clip",
                        [db.dialect.rows(sorted(recategorised, key=lambda u: u["clip"]))],
                    )
                done += len(rows)

    # -- the daily job -----------------------------------------------------------------------

    def run(self, now: datetime | None = None) -> JobReport:
        """Assess, soft-delete what retention ended and no hold protects, purge after recovery.

        Each batch is one write transaction that first lists the clips protected right now
        (``holds.list_held_now``), so a hold placed a moment ago is always seen. A purge is committed
        (``purged_at``) before the bytes are deleted; a crash in between leaves bytes that the
        next run's sweep deletes (a leak for a moment, never a loss of something held)."""
        now = now or utc_now()
        rules = self.rules()
        report = JobReport(assessed=self.assess())
        cutoff = to_iso(now)
        report.swept = self._sweep()
        # Each batch: the next clips due, by index in (end of retention, clip) order after the last
        # batch's, then deleted by key in key order (the key index is written in order).
        after = ("", "")
        while True:
            with self.writer.write() as db:
                batch = db.execute(
                    f"SELECT retain_until, clip_id FROM clip_retention {db.dialect.indexed_by('clip_retention_due')} "
                    "WHERE deleted_at IS NULL AND retain_until <= ? AND review = 0 "
                    "AND (retain_until, clip_id) > (?, ?) ORDER BY retain_until, clip_id LIMIT ?",
                    [cutoff, *after, BATCH],
                ).fetchall()
                if not batch:
                    break
                first, after = after, tuple(batch[-1])
                holds.list_held_now(db)
                ids = sorted(
                    r[0]
                    for r in db.execute(  # sorted: audit index inserts in key order
                        f"UPDATE clip_retention {db.dialect.indexed_by('clip_retention_due')} SET deleted_at = ? "
                        "WHERE deleted_at IS NULL AND retain_until <= ? AND review = 0 "
                        f"AND {_in_batch('retain_until')} "
                        "AND clip_id NOT IN (SELECT clip_id FROM held_now) RETURNING clip_id",
                        [cutoff, cutoff, *first, *after],
                    )
                )
                audit.record_many(
                    db,
                    [
                        dict(
                            actor="retention-job",
                            action="soft-delete",
                            object_type="clip",
                            object_id=i,
                            at=now,
                            detail="retention ended, no hold",
                        )
                        for i in ids
                    ],
                )
                report.soft_deleted += len(ids)
        purge_before = to_iso(now - timedelta(days=rules.recovery_days))
        after = ("", "")
        while True:
            with self.writer.write() as db:
                batch = db.execute(
                    f"SELECT deleted_at, clip_id FROM clip_retention {db.dialect.indexed_by('clip_retention_deleted')} "
                    "WHERE deleted_at IS NOT NULL AND purged_at IS NULL AND deleted_at <= ? "
                    "AND (deleted_at, clip_id) > (?, ?) ORDER BY deleted_at, clip_id LIMIT ?",
                    [purge_before, *after, BATCH],
                ).fetchall()
                if not batch:
                    break
                first, after = after, tuple(batch[-1])
                holds.list_held_now(db)
                # What to delete goes in purge_pending in the same transaction as the purge itself.
                # The clip's own row keeps its blob_key (where the bytes were): purged_at says they are gone.
                db.execute(
                    "INSERT INTO purge_pending (clip_id, blob_key) SELECT c.clip_id, COALESCE(c.blob_key, c.clip_id) "
                    f"FROM clip_retention r {db.dialect.indexed_by('clip_retention_deleted')} "
                    # by key, clip by clip: PostgreSQL otherwise hashed the batch and scanned every clip
                    f"{db.dialect.join_each('clips', 'c', CLIPS_KEY, 'c.clip_id = r.clip_id')} "
                    "WHERE r.deleted_at IS NOT NULL AND r.purged_at IS NULL "
                    f"AND r.deleted_at <= ? AND {_in_batch('deleted_at', 'r.')} "
                    "AND r.clip_id NOT IN (SELECT clip_id FROM held_now) ON CONFLICT DO NOTHING",
                    [purge_before, *first, *after],
                )
                ids = sorted(
                    r[0]
                    for r in db.execute(
                        f"UPDATE clip_retention {db.dialect.indexed_by('clip_retention_deleted')} SET purged_at = ? "
                        "WHERE deleted_at IS NOT NULL AND purged_at IS NULL AND deleted_at <= ? "
                        f"AND {_in_batch('deleted_at')} AND clip_id NOT IN (SELECT clip_id FROM held_now) "
                        "RETURNING clip_id",
                        [cutoff, purge_before, *first, *after],
                    )
                )
                audit.record_many(
                    db,
                    [
                        dict(
                            actor="retention-job",
                            action="purge",
                            object_type="clip",
                            object_id=i,
                            at=now,
                            detail=f"{rules.recovery_days} days after soft deletion",
                        )
                        for i in ids
                    ],
                )
                report.purged += len(ids)
            self._sweep()
        with self.writer.write() as db:
            holds.list_held_now(db)
            report.held_back = db.execute(
                "SELECT count(*) FROM clip_retention WHERE deleted_at IS NULL AND retain_until <= ? "
                "AND clip_id IN (SELECT clip_id FROM held_now)",
                [cutoff],
            ).fetchone()[0]
            report.for_review = db.execute(
                f"SELECT count(*) FROM clip_retention {db.dialect.indexed_by('clip_retention_review_due')} "
                f"WHERE {db.dialect.flag_set('review')} AND deleted_at IS NULL AND retain_until <= ? "
                "AND clip_id NOT IN (SELECT clip_id FROM held_now)",
                [cutoff],
            ).fetchone()[0]
        self.metrics.retention_report(report)
        return report

    def _sweep(self) -> int:
        """Delete the bytes listed in ``purge_pending`` (purges already committed), then the list.

        Called after each purge batch, and first thing in a run for what a crash left."""
        swept = 0
        while True:
            with self.writer.read() as db:
                rows = db.execute("SELECT clip_id, blob_key FROM purge_pending LIMIT ?", [BATCH]).fetchall()
            if not rows:
                return swept
            self.blobs.delete_many([key for _, key in rows])
            with self.writer.write() as db:
                db.execute(
                    f"DELETE FROM purge_pending WHERE {db.dialect.any_of('clip_id')}",
                    [db.dialect.many(r[0] for r in rows)],
                )
            swept += len(rows)

    def digest(self, days: int, now: datetime | None = None) -> Digest:
        now = now or utc_now()
        rules = self.rules()
        self.assess()  # clips verified since the last assessment count too
        end = now + timedelta(days=days)
        with self.writer.read() as db:
            soft = dict(
                db.execute(
                    "SELECT substr(c.retain_until, 1, 10), count(*) FROM clip_retention c "
                    f"WHERE c.deleted_at IS NULL AND c.retain_until < ? AND c.review = 0 AND NOT {HELD} GROUP BY 1",
                    [to_iso(end)],
                ).fetchall()
            )
            purge = dict(
                db.execute(
                    "SELECT substr(c.deleted_at, 1, 10), count(*) FROM clip_retention c "
                    f"WHERE c.deleted_at IS NOT NULL AND c.purged_at IS NULL AND c.deleted_at < ? AND NOT {HELD} "
                    "GROUP BY 1",
                    [to_iso(end - timedelta(days=rules.recovery_days))],
                ).fetchall()
            )
            held = db.execute(
                f"SELECT count(*) FROM clip_retention c WHERE c.deleted_at IS NULL AND c.retain_until < ? AND {HELD}",
                [to_iso(end)],
            ).fetchone()[0]
            sample = [
                r[0]
                for r in db.execute(
                    "SELECT c.clip_id FROM clip_retention c WHERE c.deleted_at IS NULL "
                    f"AND c.retain_until < ? AND c.review = 0 AND NOT {HELD} ORDER BY c.retain_until LIMIT 100",
                    [to_iso(end)],
                )
            ]
            reviews = db.execute(
                f"SELECT count(*) FROM clip_retention c {db.dialect.indexed_by('clip_retention_review_due')} "
                f"WHERE {db.dialect.flag_set('c.review')} AND c.deleted_at IS NULL AND c.retain_until < ? "
                f"AND NOT {HELD}",
                [to_iso(end)],
            ).fetchone()[0]
        rows = []
        for offset in range(days + 1):
            day = (now + timedelta(days=offset)).date().isoformat()
            # What is overdue today is deleted by today's run.
            soft_n = sum(n for d, n in soft.items() if (d <= day if offset == 0 else d == day))
            purge_day = (now + timedelta(days=offset - rules.recovery_days)).date().isoformat()
            purge_n = sum(n for d, n in purge.items() if (d <= purge_day if offset == 0 else d == purge_day))
            rows.append(DigestDay(day=day, soft_deletes=soft_n, purges=purge_n))
        return Digest(days=rows, held_back=held, sample=sample, reviews_due=reviews)

    # -- one clip ----------------------------------------------------------------------------

    def clip(self, clip_id: str) -> ClipRetention:
        with self.writer.read() as db:
            return self._clip(db, clip_id)

    def _clip(self, db, clip_id: str) -> ClipRetention:
        row = db.execute(
            f"SELECT {RETENTION_COLUMNS} FROM clips c JOIN clip_retention r ON r.clip_id = c.clip_id "
            "WHERE c.clip_id = ? AND c.state = 'verified'",
            [clip_id],
        ).fetchone()
        if row is None:
            raise NotFound(f"no verified clip {clip_id}")
        return _retention(row, holds.on_clip(db, clip_id), holds.requests_on_clip(db, clip_id))

    def categorise(
        self, clip_id: str, request: CategoriesRequest, actor: str, now: datetime | None = None
    ) -> ClipRetention:
        rules = self.rules()
        unknown = [c for c in request.categories if c not in rules.categories]
        if unknown:
            raise BadRequest(
                f"unknown retention category {unknown[0]!r}; the rules have {', '.join(sorted(rules.categories))}"
            )
        now = now or utc_now()
        with self.writer.write() as db:
            before = self._clip(db, clip_id)
            if before.purged_at is not None:
                raise Gone(f"clip {clip_id} was purged on {to_iso(before.purged_at)}")
            names = sorted(set(request.categories))
            until, review = assessment(rules, before.recorded_at, names)
            if before.retain_until is not None and until < before.retain_until and not request.confirm:
                raise Conflict(
                    f"these categories keep clip {clip_id} until {to_iso(until)}, not "
                    f"{to_iso(before.retain_until)}"
                    + (": it would be deleted at the next run" if until <= now else "")
                    + "; send confirm: true to shorten its retention"
                )
            restore = before.deleted_at is not None and until > now
            db.execute(
                "UPDATE clips SET categories = ?, categorised_at = ? WHERE clip_id = ?",
                [json.dumps(names), to_iso(now), clip_id],
            )
            db.execute(
                "UPDATE clip_retention SET retain_until = ?, review = ?, kept_until = NULL"
                + (", deleted_at = NULL" if restore else "")
                + " WHERE clip_id = ?",
                [to_iso(until), review, clip_id],
            )
            audit.record(
                db,
                actor=actor,
                action="categorise",
                object_type="clip",
                object_id=clip_id,
                detail=f"{', '.join(before.categories) or 'none'} → {', '.join(names) or 'none'} "
                f"(kept until {to_iso(until)}): {request.reason}",
            )
            if restore:
                audit.record(
                    db,
                    actor=actor,
                    action="restore",
                    object_type="clip",
                    object_id=clip_id,
                    detail="its new categories keep it",
                )
            return self._clip(db, clip_id)

    def restore(self, clip_id: str, request: RestoreRequest, actor: str, now: datetime | None = None) -> ClipRetention:
        """Undo a soft delete; the clip gets a fresh default period (categorise or hold it to keep it longer)."""
        rules = self.rules()
        now = now or utc_now()
        with self.writer.write() as db:
            clip = self._clip(db, clip_id)
            if clip.purged_at is not None:
                raise Gone(f"clip {clip_id} was purged on {to_iso(clip.purged_at)}: it cannot be restored")
            if clip.deleted_at is None:
                raise Conflict(f"clip {clip_id} is not deleted")
            until = max(clip.retain_until or now, now + timedelta(days=rules.default_days))
            db.execute(
                "UPDATE clip_retention SET deleted_at = NULL, retain_until = ?, kept_until = ? WHERE clip_id = ?",
                [to_iso(until), to_iso(until), clip_id],
            )
            audit.record(
                db,
                actor=actor,
                action="restore",
                object_type="clip",
                object_id=clip_id,
                detail=f"kept until {to_iso(until)}: {request.reason}",
            )
            return self._clip(db, clip_id)

    # -- MoPI review -------------------------------------------------------------------------

    def reviews(
        self, limit: int, after: tuple[str, str] | None = None, now: datetime | None = None
    ) -> list[ClipRetention]:
        """Clips whose reviewed period has ended, waiting for a decision; longest waiting first.
        Held ones are listed too (a reviewer may retain them; disposal waits for the release)."""
        self.assess()
        with self.writer.read() as db:
            rows = db.execute(
                f"SELECT {RETENTION_COLUMNS} FROM clip_retention r "
                f"{db.dialect.indexed_by('clip_retention_review_due')} JOIN clips c ON c.clip_id = r.clip_id "
                f"WHERE {db.dialect.flag_set('r.review')} "
                "AND r.deleted_at IS NULL AND r.retain_until <= ?"
                + (" AND (r.retain_until, r.clip_id) > (?, ?)" if after else "")
                + " ORDER BY r.retain_until, r.clip_id LIMIT ?",
                [to_iso(now or utc_now()), *(after or ()), limit],
            ).fetchall()
            return [_retention(r, holds.on_clip(db, r[0]), holds.requests_on_clip(db, r[0])) for r in rows]

    def review(self, clip_id: str, request: ReviewRequest, actor: str, now: datetime | None = None) -> ClipRetention:
        """Record a reviewer's decision: retain for another period, or dispose (a soft delete,
        recoverable for ``recovery_days`` like any other). Only for a clip that is due."""
        now = now or utc_now()
        with self.writer.write() as db:
            clip = self._clip(db, clip_id)
            if clip.deleted_at is not None or clip.purged_at is not None:
                raise Gone(f"clip {clip_id} is deleted")
            if not clip.review or clip.retain_until is None or clip.retain_until > now:
                raise Conflict(
                    f"clip {clip_id} is not due for review"
                    + (f" until {to_iso(clip.retain_until)}" if clip.review and clip.retain_until else "")
                )
            if request.decision == "retain":
                # Default: its categories' period again, counted from the review.
                until = request.retain_until or retain_until(self._rules_in(db), now, clip.categories)
                if until <= now:
                    raise BadRequest("retain_until must be in the future")
                db.execute(
                    "UPDATE clip_retention SET retain_until = ?, kept_until = ? WHERE clip_id = ?",
                    [to_iso(until), to_iso(until), clip_id],
                )
                audit.record(
                    db,
                    actor=actor,
                    action="review",
                    object_type="clip",
                    object_id=clip_id,
                    detail=f"retained until {to_iso(until)}: {request.reason}",
                )
            else:
                if request.retain_until is not None:
                    raise BadRequest("retain_until goes with decision 'retain' only")
                requests = holds.requests_on_clip(db, clip_id)
                if clip.held_by or requests:
                    by = [f"hold {', '.join(map(str, clip.held_by))}"] * bool(clip.held_by)
                    by += [f"public request {', '.join(requests)}"] * bool(requests)
                    raise Conflict(
                        f"clip {clip_id} is held by {' and '.join(by)}: it cannot be disposed of until released"
                    )
                db.execute("UPDATE clip_retention SET deleted_at = ? WHERE clip_id = ?", [to_iso(now), clip_id])
                audit.record(
                    db,
                    actor=actor,
                    action="review",
                    object_type="clip",
                    object_id=clip_id,
                    detail=f"disposed of: {request.reason}",
                )
                audit.record(
                    db,
                    actor=actor,
                    action="soft-delete",
                    object_type="clip",
                    object_id=clip_id,
                    detail="disposed of at review",
                )
            return self._clip(db, clip_id)

    # -- holds -------------------------------------------------------------------------------

    def place_hold(self, request: HoldRequest, actor: str, now: datetime | None = None) -> Hold:
        fields = {"clip": ["clip_id"], "officer": ["officer_id", "window_from", "window_to"], "case": ["case_ref"]}
        needed = fields[request.kind]
        missing = [f for f in needed if getattr(request, f) is None]
        extra = [
            f for k, names in fields.items() if k != request.kind for f in names if getattr(request, f) is not None
        ]
        if missing:
            raise BadRequest(f"a {request.kind} hold needs {', '.join(missing)}")
        if extra:
            raise BadRequest(f"a {request.kind} hold does not take {', '.join(extra)}")
        if request.kind == "officer":
            _, window_from, window_to = _officer_window(request)
            if not all(1970 <= t.year < 9000 for t in (window_from, window_to)):
                raise BadRequest("the hold's window must lie between 1970 and 9000")
            if window_to <= window_from:
                raise BadRequest("window_to must be after window_from")
        moment = now or utc_now()
        at = to_iso(moment)
        with self.writer.write() as db:
            if (
                request.kind == "clip"
                and db.execute("SELECT 1 FROM clips WHERE clip_id = ?", [request.clip_id]).fetchone() is None
            ):
                raise NotFound(f"no clip {request.clip_id}")
            if request.kind == "officer" and not officers.exists(db, _officer_window(request)[0]):
                raise NotFound(f"no officer {request.officer_id}")
            hold_id = holds.place(
                db,
                request.kind,
                request.reason,
                request.clip_id,
                request.officer_id,
                to_iso(request.window_from) if request.window_from else None,
                to_iso(request.window_to) if request.window_to else None,
                request.case_ref,
                actor,
                at,
            )
            audit.record(
                db,
                actor=actor,
                action="hold",
                object_type="hold",
                object_id=str(hold_id),
                detail=f"{_describe(request)}: {request.reason}",
            )
            clips = holds.clips_of(db, hold_id)
            audit.record_many(
                db,
                [
                    dict(
                        actor=actor,
                        action="hold",
                        object_type="clip",
                        object_id=c,
                        detail=f"hold {hold_id}: {request.reason}",
                    )
                    for c in clips
                ],
            )
            self.restore_held(db, clips, f"hold {hold_id}", actor, moment)
            holds.announce_holds(db, self.changes, clips)
            return holds.read(db, hold_id)

    def restore_held(self, db, clips: list[str], by: str, actor: str, now: datetime) -> None:
        """Soft-deleted (not purged) clips a new hold (or public request: ``by``) covers come back,
        with a fresh default period after it, so a release never purges them without their
        recovery window. Inside the caller's transaction."""
        rules = self._rules_in(db)
        until = to_iso(now + timedelta(days=rules.default_days))
        kept_longer = db.dialect.greatest("COALESCE(kept_until, '')", "?")
        retained_longer = db.dialect.greatest("COALESCE(retain_until, '')", "?")
        for start in range(0, len(clips), 500):
            chunk = clips[start : start + 500]
            back = [
                r[0]
                for r in db.execute(
                    f"UPDATE clip_retention SET deleted_at = NULL, kept_until = {kept_longer}, "
                    f"retain_until = {retained_longer} "
                    f"WHERE clip_id IN ({','.join('?' * len(chunk))}) "
                    f"AND deleted_at IS NOT NULL AND purged_at IS NULL RETURNING clip_id",
                    [until, until, *chunk],
                )
            ]
            audit.record_many(
                db,
                [
                    dict(
                        actor=actor,
                        action="restore",
                        object_type="clip",
                        object_id=c,
                        detail=f"{by} placed while it was soft-deleted",
                    )
                    for c in back
                ],
            )

    def release_hold(self, hold_id: int, request: ReleaseRequest, actor: str) -> Hold:
        with self.writer.write() as db:
            if holds.released_at(db, hold_id) is not None:
                raise Conflict(f"hold {hold_id} was already released")
            clips = holds.clips_of(db, hold_id)
            holds.release(db, hold_id, actor, request.reason, to_iso(utc_now()))
            audit.record(
                db, actor=actor, action="release", object_type="hold", object_id=str(hold_id), detail=request.reason
            )
            audit.record_many(
                db,
                [
                    dict(
                        actor=actor,
                        action="release",
                        object_type="clip",
                        object_id=c,
                        detail=f"hold {hold_id}: {request.reason}",
                    )
                    for c in clips
                ],
            )
            holds.announce_holds(db, self.changes, clips)
            return holds.read(db, hold_id)

    def add_to_case(self, case_ref: str, request: CaseClips, actor: str) -> list[str]:
        with self.writer.write() as db:
            known = {
                r[0]
                for r in db.execute(
                    f"SELECT clip_id FROM clips WHERE clip_id IN ({','.join('?' * len(request.clip_ids))})",
                    request.clip_ids,
                )
            }
            missing = [c for c in request.clip_ids if c not in known]
            if missing:
                raise NotFound(
                    f"no clip {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                )
            in_case = holds.add_to_case(db, case_ref, request.clip_ids, actor)
            audit.record_many(
                db,
                [
                    dict(
                        actor=actor,
                        action="case-add",
                        object_type="clip",
                        object_id=c,
                        detail=f"case {case_ref}: {request.reason}",
                    )
                    for c in request.clip_ids
                ],
            )
            holds.announce_holds(db, self.changes, request.clip_ids)
            return in_case

    def holds_by_id(self, hold_ids: list[int]) -> list[Hold]:
        """These holds, newest first (a clip's ``held_by``: a few reads, not a listing of every hold)."""
        with self.writer.read() as db:
            return [holds.read(db, hold_id) for hold_id in sorted(set(hold_ids), reverse=True)]

    def holds(self, active: bool | None, limit: int, borough: str | None = None) -> list[Hold]:
        """Newest first; ``borough``: only that borough's holds (``central.evidence.holds.listing``)."""
        with self.writer.read() as db:
            return holds.listing(db, active, limit, borough)


def _retention(row, held_by: list[int], requested_by: list[str]) -> ClipRetention:
    """(clip_id, recorded_at, categories, retain_until, deleted_at, purged_at, review) → ClipRetention."""
    return ClipRetention(
        clip_id=row[0],
        recorded_at=from_iso(row[1]),
        categories=json.loads(row[2]),
        retain_until=from_iso(row[3]) if row[3] else None,
        held_by=held_by,
        requested_by=requested_by,
        deleted_at=from_iso(row[4]) if row[4] else None,
        purged_at=from_iso(row[5]) if row[5] else None,
        review=bool(row[6]),
    )


def _describe(request: HoldRequest) -> str:
    if request.kind == "clip":
        return f"clip {request.clip_id}"
    if request.kind == "case":
        return f"case {request.case_ref}"
    officer_id, window_from, window_to = _officer_window(request)
    return f"officer {officer_id} from {to_iso(window_from)} to {to_iso(window_to)}"


def _officer_window(request: HoldRequest) -> tuple[str, datetime, datetime]:
    """An officer hold's officer and window (``place_hold`` refuses a request without them)."""
    if request.officer_id is None or request.window_from is None or request.window_to is None:
        raise BadRequest("an officer hold needs officer_id, window_from, window_to")
    return request.officer_id, request.window_from, request.window_to


class RetentionController(Controller):
    path = "/api/v1"
    tags = ["retention"]

    @post(
        "/holds",
        status_code=201,
        summary="Place a hold: on a clip, an officer and time window, or a case",
        guards=[user_with(*CLIP_FINDERS)],
        responses=errors(404),
        description="A supervisor or information manager for one borough holds that borough's clips and "
        "officers; case holds are force-wide (a case may span boroughs).",
        scope=touches(in_json("clip", "clip_id"), in_json("officer", "officer_id"), in_json("case", "case_ref")),
        sync_to_thread=True,
    )
    def place(self, principal: Caller, retention: Injected[RetentionService], data: JSONBody[HoldRequest]) -> Hold:
        return retention.place_hold(data, principal.name)

    @get("/holds", summary="Holds, newest first", guards=[user_with("supervisor")], scope=LISTS, sync_to_thread=True)
    def list_holds(
        self,
        within: Scoped,
        retention: Injected[RetentionService],
        active: FromQuery[bool | None] = True,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[Hold]:
        return retention.holds(active, limit, within.borough)

    @post(
        "/holds/{hold_id:int}/release",
        status_code=200,
        summary="Release a hold (audited)",
        guards=[user_with("supervisor")],
        responses=errors(409),
        scope=touches(in_path("hold", "hold_id")),
        sync_to_thread=True,
    )
    def release(
        self,
        principal: Caller,
        retention: Injected[RetentionService],
        hold_id: Annotated[int, PathParameter(ge=1, le=2**62)],
        data: JSONBody[ReleaseRequest],
    ) -> Hold:
        return retention.release_hold(hold_id, data, principal.name)

    @post(
        "/cases/{case_ref:str}/clips",
        status_code=200,
        summary="Add clips to a case (a case hold covers them)",
        guards=[user_with("supervisor")],
        scope=touches(in_path("case", "case_ref"), in_json("clip", "clip_ids")),
        sync_to_thread=True,
    )
    def add_to_case(
        self,
        principal: Caller,
        retention: Injected[RetentionService],
        case_ref: Annotated[str, PathParameter(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")],
        data: JSONBody[CaseClips],
    ) -> list[str]:
        return retention.add_to_case(case_ref, data, principal.name)

    @get(
        "/clips/{clip_id:str}/retention",
        summary="A clip's categories, end of retention, holds, deletion",
        guards=[user_with("supervisor")],
        scope=touches(in_path("clip", "clip_id")),
        sync_to_thread=True,
    )
    def clip_retention(
        self, principal: Caller, retention: Injected[RetentionService], clip_id: ClipIdPath
    ) -> ClipRetention:
        return retention.clip(clip_id)

    @post(
        "/clips/{clip_id:str}/categories",
        status_code=200,
        summary="Set a clip's retention categories (audited)",
        guards=[user_with("supervisor")],
        responses=errors(409, 410),
        scope=touches(in_path("clip", "clip_id")),
        sync_to_thread=True,
    )
    def categorise(
        self,
        principal: Caller,
        retention: Injected[RetentionService],
        clip_id: ClipIdPath,
        data: JSONBody[CategoriesRequest],
    ) -> ClipRetention:
        return retention.categorise(clip_id, data, principal.name)

    @post(
        "/clips/{clip_id:str}/restore",
        status_code=200,
        summary="Restore a soft-deleted clip (before its purge)",
        guards=[user_with("admin")],
        responses=errors(409, 410),
        scope=touches(in_path("clip", "clip_id")),
        sync_to_thread=True,
    )
    def restore(
        self,
        principal: Caller,
        retention: Injected[RetentionService],
        clip_id: ClipIdPath,
        data: JSONBody[RestoreRequest],
    ) -> ClipRetention:
        return retention.restore(clip_id, data, principal.name)

    @get(
        "/retention/reviews",
        summary="Clips past a reviewed (MoPI) retention period, waiting for a decision",
        guards=[user_with("admin")],
        scope=FORCE_WIDE,
        sync_to_thread=True,
    )
    def reviews(
        self,
        principal: Caller,
        retention: Injected[RetentionService],
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, QueryParameter(max_length=200, description=CURSOR_HELP)] = None,
    ) -> Response[list[ClipRetention]]:
        after = decode_time_cursor(cursor) if cursor else None
        rows = retention.reviews(limit + 1, after)
        return page_response(rows, limit, lambda c: (to_iso(c.retain_until), c.clip_id))

    @post(
        "/clips/{clip_id:str}/review",
        status_code=200,
        guards=[user_with("admin")],
        responses=errors(409, 410),
        scope=touches(in_path("clip", "clip_id")),
        sync_to_thread=True,
        summary="A reviewer's decision on a clip due for review: retain for another period, or dispose",
    )
    def review(
        self,
        principal: Caller,
        retention: Injected[RetentionService],
        clip_id: ClipIdPath,
        data: JSONBody[ReviewRequest],
    ) -> ClipRetention:
        return retention.review(clip_id, data, principal.name)

    @get(
        "/retention/digest",
        summary="Deletions due in the next days, for admins",
        guards=[user_with("admin")],
        scope=FORCE_WIDE,
        sync_to_thread=True,
    )
    def digest(
        self,
        principal: Caller,
        retention: Injected[RetentionService],
        days: Annotated[int, QueryParameter(ge=1, le=90)] = 7,
    ) -> Digest:
        return retention.digest(days)

    @post(
        "/retention/run",
        status_code=200,
        summary="Run the retention job now",
        guards=[user_with("admin")],
        scope=FORCE_WIDE,
        sync_to_thread=True,
    )
    def run_now(self, principal: Caller, retention: Injected[RetentionService]) -> JobReport:
        return retention.run()
