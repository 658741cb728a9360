"""The audit trail of fleet actions: who did what, when, where, to which object.

Appended inside the transaction of the change it records, so a change is never without
its record. Tamper-evident: each record carries the SHA-256 of its own content and of the
record before it (a hash chain, from ``GENESIS``), the head of the chain (last id and hash)
is kept beside it, and every ``ANCHOR_EVERY`` records an anchor is written. ``verify``
recomputes the chain and names the first record that does not match: an edited, deleted,
inserted or reordered row breaks it from there on.

Someone able to rewrite the whole database could recompute every hash, so the anchors and
the head are also *published* (``publish``): appended to a file kept elsewhere (another
host's mount, write-once storage). ``verify`` given that file checks the chain against it,
so a rewritten or truncated chain no longer matches what was published before.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import msgspec
from msgspec import Struct

from central.core.database import redacted
from fleet.clock import from_iso, to_iso, utc_now
from fleet.errors import ConfigError
from fleet.hashing import fsync_dir

CENTRAL = "central"
"""The place of actions taken at central (its API and commands); stations' carry the station id."""
GENESIS = "0" * 64
ANCHOR_EVERY = 1000
COLUMNS = "id, at, actor, place, action, object_type, object_id, detail"

_encode = msgspec.json.Encoder().encode


class AuditRecord(Struct, kw_only=True):
    at: datetime
    actor: str
    place: str | None
    action: str
    object_type: str
    object_id: str
    detail: str = ""


class ChainReport(Struct, kw_only=True):
    records: int
    intact: bool
    last_hash: str
    first_broken: int | None = None
    """The id of the first record that does not match (or where one is missing)."""
    reason: str | None = None
    lost_at_restores: list[str] = []
    """Each restore the published anchors record, with the records it rolled back (in words)."""


class PublishedAnchor(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One line of the published anchors file: the chain's hash at a record, as it was then."""

    audit_id: int
    hash: str
    published_at: datetime
    head: bool = False
    """The chain's last record when published (anchors proper fall every ``ANCHOR_EVERY``)."""
    restored: str | None = None
    """Set on the line ``fleet central restore`` appends: the chain was rolled back to this record
    (the backup's head; the text names the backup). Anchors published before it for later
    records belong to what the restore lost: listed by ``verify``, no longer matched."""


def record_hash(row: tuple, prev_hash: str) -> str:
    """The hash of one record: its id, content and the previous record's hash."""
    return hashlib.sha256(_encode([*row, prev_hash])).hexdigest()


def _head(db) -> tuple[int, str]:
    row = db.execute("SELECT last_id, last_hash FROM audit_head WHERE one = 1").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS)


def _append(db, rows: list[tuple]) -> None:
    """Chain and insert rows of (at, actor, place, action, object_type, object_id, detail)."""
    last_id, prev = _head(db)
    chained, anchors = [], []
    for content in rows:
        last_id += 1
        row = (last_id, *content)
        prev_hash, prev = prev, record_hash(row, prev)
        chained.append((*row, prev_hash, prev))
        if last_id % ANCHOR_EVERY == 0:
            anchors.append((last_id, prev, content[0]))
    db.executemany(f"INSERT INTO audit ({COLUMNS}, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", chained)
    db.executemany("INSERT INTO audit_anchors (audit_id, hash, at) VALUES (?, ?, ?)", anchors)
    db.execute(
        "INSERT INTO audit_head (one, last_id, last_hash) VALUES (1, ?, ?) "
        "ON CONFLICT (one) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash",
        [last_id, prev],
    )


def record(
    db,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    place: str | None = None,
    detail: str = "",
    at: datetime | None = None,
) -> None:
    """Append one record; call inside the (BEGIN IMMEDIATE) transaction that makes the change."""
    _append(db, [(to_iso(at or utc_now()), actor, place or CENTRAL, action, object_type, object_id, detail)])


def record_many(db, records: list[dict]) -> None:
    """Append many records at once (bulk commits): each dict has ``record``'s keyword arguments."""
    if not records:
        return
    now = utc_now()
    times: dict = {}  # bulk records mostly share one time: format it once
    _append(
        db,
        [
            (
                times.get(r.get("at") or now) or times.setdefault(r.get("at") or now, to_iso(r.get("at") or now)),
                r["actor"],
                r.get("place") or CENTRAL,
                r["action"],
                r["object_type"],
                r["object_id"],
                r.get("detail", ""),
            )
            for r in records
        ],
    )


def chain_unhashed(db) -> int:
    """Hash records written before the chain existed (schema v6), in id order; once.

    Only while the chain has no head yet: afterwards a record without a hash is tampering,
    for ``verify`` to report, never something to hash over."""
    if db.execute("SELECT 1 FROM audit_head WHERE one = 1").fetchone():
        return 0
    rows = db.execute(f"SELECT {COLUMNS} FROM audit WHERE hash IS NULL ORDER BY id").fetchall()
    if not rows:
        return 0
    prev = GENESIS
    first = rows[0][0]
    before = db.execute("SELECT hash FROM audit WHERE id < ? ORDER BY id DESC LIMIT 1", [first]).fetchone()
    if before:
        prev = before[0]
    updates = []
    for row in rows:
        prev_hash, prev = prev, record_hash(tuple(row), prev)
        updates.append((prev_hash, prev, row[0]))
    db.executemany("UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?", updates)
    db.execute(
        "INSERT INTO audit_head (one, last_id, last_hash) VALUES (1, ?, ?) "
        "ON CONFLICT (one) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash",
        [rows[-1][0], prev],
    )
    return len(rows)


def verify_database(database, published: Sequence[PublishedAnchor] = ()) -> ChainReport:
    """``verify`` in one read snapshot of central's database: one moment throughout, blocking no writer."""
    with database.snapshot() as db:
        return verify(db, published)


def verify(db, published: Sequence[PublishedAnchor] = ()) -> ChainReport:
    """Recompute the whole chain as ``db`` sees it; the first record that does not match is named.

    ``published``: anchors read back from where they were published; each must still match.
    Give it a view of one moment (``verify_database``'s snapshot, or a write transaction)."""
    return _verify(db, published)


def _verify(db, published: Sequence[PublishedAnchor] = ()) -> ChainReport:
    prev, expected_id, count = GENESIS, 1, 0
    anchors = dict(db.execute("SELECT audit_id, hash FROM audit_anchors").fetchall())
    outside, lost = current_anchors(published)
    for row in db.execute(f"SELECT {COLUMNS}, prev_hash, hash FROM audit ORDER BY id"):
        content, prev_hash, stored = tuple(row[:8]), row[8], row[9]
        if content[0] != expected_id:
            return ChainReport(
                records=count,
                intact=False,
                last_hash=prev,
                first_broken=expected_id,
                reason=f"record {expected_id} is missing (the next one is {content[0]})",
            )
        if prev_hash != prev:
            return ChainReport(
                records=count,
                intact=False,
                last_hash=prev,
                first_broken=content[0],
                reason=f"record {content[0]} does not follow record {content[0] - 1} (removed, inserted or reordered)",
            )
        computed = record_hash(content, prev)
        if computed != stored:
            return ChainReport(
                records=count,
                intact=False,
                last_hash=prev,
                first_broken=content[0],
                reason=f"record {content[0]} was changed after it was written",
            )
        if content[0] in anchors and anchors[content[0]] != computed:
            return ChainReport(
                records=count,
                intact=False,
                last_hash=prev,
                first_broken=content[0],
                reason=f"record {content[0]} does not match its anchor",
            )
        if content[0] in outside and outside[content[0]].hash != computed:
            return ChainReport(
                records=count,
                intact=False,
                last_hash=prev,
                first_broken=content[0],
                reason=f"record {content[0]} does not match the anchor published "
                f"{to_iso(outside[content[0]].published_at)} (the chain was rewritten)",
            )
        prev, expected_id, count = computed, expected_id + 1, count + 1
    beyond = [a for a in [*anchors, *outside] if a > count]
    if beyond:
        return ChainReport(
            records=count,
            intact=False,
            last_hash=prev,
            first_broken=count + 1,
            reason=f"an anchor names record {min(beyond)}, which is gone (records at the end were removed)",
        )
    last_id, last_hash = _head(db)
    if (last_id, last_hash) != (count, prev):
        return ChainReport(
            records=count,
            intact=False,
            last_hash=prev,
            first_broken=count + 1,
            reason=f"the chain's head says {last_id} records ending in {last_hash[:12]}…; "
            f"{count} are there (records at the end were removed)",
        )
    return ChainReport(records=count, intact=True, last_hash=prev, lost_at_restores=lost)


def current_anchors(published: Sequence[PublishedAnchor]) -> tuple[dict[int, PublishedAnchor], list[str]]:
    """The published anchors the chain must match now, by record, and what each restore rolled back.

    Lines are read in the order they were appended: the first anchor for a record counts, until a
    restore line rolls the chain back below it (that anchor then names a record the restore lost);
    the restore line itself is an anchor (the backup's head must be what the chain holds there)."""
    outside: dict[int, PublishedAnchor] = {}
    lost: list[str] = []
    for anchor in published:
        if anchor.restored is not None:
            gone = sorted(i for i in outside if i > anchor.audit_id)
            for i in gone:
                del outside[i]
            rolled = (
                "no published record"
                if not gone
                else f"record {gone[0]}"
                if gone[-1] == anchor.audit_id + 1
                else f"records {anchor.audit_id + 1}..{gone[-1]}"
            )
            lost.append(f"restored {to_iso(anchor.published_at)} from {anchor.restored}: {rolled} lost")
            if anchor.audit_id:
                outside[anchor.audit_id] = outside.get(anchor.audit_id, anchor)
            continue
        outside.setdefault(anchor.audit_id, anchor)
    return outside, lost


def head(db) -> tuple[int, str]:
    """The chain's last record: (id, hash); (0, GENESIS) when empty."""
    return _head(db)


def records_for(db, object_type: str, object_id: str, limit: int = 200) -> list[AuditRecord]:
    rows = db.execute(
        "SELECT at, actor, place, action, object_type, object_id, detail FROM audit "
        "WHERE object_type = ? AND object_id = ? ORDER BY id DESC LIMIT ?",
        [object_type, object_id, limit],
    ).fetchall()
    return [
        AuditRecord(
            at=from_iso(r[0]), actor=r[1], place=r[2], action=r[3], object_type=r[4], object_id=r[5], detail=r[6]
        )
        for r in rows
    ]


# -- publishing anchors outside the database ---------------------------------------------------

_anchor_line = msgspec.json.Encoder()
_anchor_reader = msgspec.json.Decoder(PublishedAnchor)


def read_published(path: Path) -> list[PublishedAnchor]:
    """The anchors file, every complete line (a line cut short by a crash while appending is not one)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigError(f"cannot read the anchors file {path}: {exc.strerror}") from None
    return _parse_published(data, path)


def _parse_published(data: bytes, path: Path) -> list[PublishedAnchor]:
    anchors = []
    for number, line in enumerate(data.split(b"\n")[:-1], start=1):
        try:
            anchors.append(_anchor_reader.decode(line))
        except msgspec.DecodeError as exc:
            raise ConfigError(f"{path}, line {number}: not a published anchor ({exc})") from None
    return anchors


def publish(database, path: Path, now: datetime | None = None) -> int:
    """Append the anchors written since the last publication, and the head, to ``path``; fsynced.

    Returns how many lines were appended (0 when nothing new). Crash-safe: a line cut short
    is cut off before appending, and a repeat publishes nothing twice. Publishers (the
    scheduled job, ``fleet audit publish``) take turns under an exclusive lock on the file."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read()
        complete = data.rfind(b"\n") + 1
        last = max(current_anchors(_parse_published(data[:complete], path))[0], default=0)
        with database.snapshot() as db:
            rows = db.execute(
                "SELECT audit_id, hash FROM audit_anchors WHERE audit_id > ? ORDER BY audit_id", [last]
            ).fetchall()
            head = _head(db)
        moment = now or utc_now()
        lines = [PublishedAnchor(audit_id=i, hash=h, published_at=moment) for i, h in rows]
        if head[0] > max([last, *(i for i, _ in rows)]):
            lines.append(PublishedAnchor(audit_id=head[0], hash=head[1], published_at=moment, head=True))
        if lines:
            os.ftruncate(fd, complete)  # drops the tail of an append a crash interrupted, if any
            os.lseek(fd, complete, os.SEEK_SET)
            view = memoryview(b"".join(_anchor_line.encode(line) + b"\n" for line in lines))
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
    finally:
        os.close(fd)  # releases the lock
    if created:
        fsync_dir(path.parent)
    return len(lines)


def publish_restore(path: Path, audit_id: int, hash_: str, backup: str, now: datetime | None = None) -> None:
    """Append the line that says the chain was rolled back to record ``audit_id`` by a restore."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    line = PublishedAnchor(audit_id=audit_id, hash=hash_, published_at=now or utc_now(), restored=backup)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = os.pread(fd, os.fstat(fd).st_size, 0)
        complete = data.rfind(b"\n") + 1
        os.ftruncate(fd, complete)  # a line a crash cut short is dropped, as publish does
        os.lseek(fd, complete, os.SEEK_SET)
        view = memoryview(_anchor_line.encode(line) + b"\n")
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)


# -- configuration changes -------------------------------------------------------------------


def _flatten(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        flat = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def _without_secrets(config: dict) -> dict[str, object]:
    """Each setting by dotted name; a secret (``…token``, ``blobs.secret_access_key``) only as its
    SHA-256, so a change is seen but never stored; the database's URL without its password
    (where central's state lives is worth seeing; a password change is not seen)."""
    flat = _flatten(config)
    return {key: _seen(key, v) for key, v in flat.items()}


def _seen(key: str, value: object) -> object:
    if value is None:
        return value
    digest = "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()
    if key.rsplit(".", 1)[-1].endswith(("token", "secret_access_key")):
        return digest
    if key == "database.url":
        return redacted(str(value))  # no hash: with the rest in view, one would give the password away
    return value


def record_config(db, config: dict, actor: str = "central:start-up") -> list[str]:
    """At start-up: audit what changed in central's configuration since it last started.

    Returns the dotted names of the settings that changed (all of them on a first start)."""
    now = _without_secrets(config)
    row = db.execute("SELECT config FROM config_seen WHERE one = 1").fetchone()
    before = msgspec.json.decode(row[0]) if row else {}
    changed = sorted(k for k in now.keys() | before.keys() if now.get(k, "<unset>") != before.get(k, "<unset>"))
    if not changed:
        return []
    detail = (
        "first start with this configuration"
        if not row
        else "; ".join(f"{k}: {_shown(k, before.get(k))} → {_shown(k, now.get(k))}" for k in changed[:50])
        + (f"; and {len(changed) - 50} more" if len(changed) > 50 else "")
    )
    record(db, actor=actor, action="config-change", object_type="config", object_id="central", detail=detail)
    db.execute(
        "INSERT INTO config_seen (one, config, seen_at) VALUES (1, ?, ?) ON CONFLICT (one) DO UPDATE SET "
        "config = excluded.config, seen_at = excluded.seen_at",
        [msgspec.json.encode(now).decode(), to_iso(utc_now())],
    )
    return changed


def _shown(key: str, value) -> str:
    if value is None:
        return "unset"
    if isinstance(value, str) and value.startswith("sha256:"):
        return "(secret)"
    return _encode(value).decode()
