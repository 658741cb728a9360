"""Whose clip is whose: a clip belongs to whoever held its camera when it was recorded.

``attributions`` has a row for each clip a station reported ingesting, naming the officer
whose assignment (personal issue or pool checkout) covered the clip's ``recorded_at`` (the
camera's clock), or nobody; and, until the clip's upload is verified, the station's report
(its claim: ``central.events.claims``), whose custody record waits for it. An assignment that
starts, ends or moves re-attributes the clips its interval covers; a clip a supervisor
attributed by hand keeps its officer.

SQL only, run inside the caller's transaction (the projection's, a supervisor's). Whoever
changes an attribution tells ``central.evidence.holds`` (an officer hold may now cover the
clip, or no longer).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

ACTIVE_AT = """FROM (SELECT officer_id, id, ended_at FROM assignments WHERE device_serial = :serial
                     AND started_at <= :at ORDER BY started_at DESC, id DESC LIMIT 1) AS latest
               WHERE ended_at IS NULL OR ended_at > :at"""
"""The holder at a moment: the camera's latest assignment begun by then, if it had not ended.
(One index probe, however long the camera's history.)"""


def unattributed_count(db, borough: str | None = None) -> int:
    """Clips attributed to nobody (the supervisors' queue), of one borough's cameras or all (inside a read)."""
    return db.execute(
        f"SELECT count(*) FROM attributions {db.dialect.indexed_by('attributions_unattributed')} "
        "WHERE officer_id IS NULL"
        + (" AND device_serial IN (SELECT serial FROM devices WHERE borough = ?)" if borough is not None else ""),
        [borough] if borough is not None else [],
    ).fetchone()[0]


def record_ingested(db, clips: Sequence[dict]) -> None:
    """Clips a station ingested ({clip, serial, at, station}): attributed to the holder at ``at``
    (a clip reported before keeps its row), and each camera's latest clip moves on. A run of
    clips is two statements, however long: its rows as one table (``rows_of``)."""
    attribute_ingested(db, clips)
    move_latest_clips(db, latest_clips(clips))


_ROWS = "clip TEXT, serial TEXT, at TEXT, station TEXT, seq BIGINT, station_at TEXT, size BIGINT, sha256 TEXT"
_CLAIM = {"seq": None, "station_at": None, "size": None, "sha256": None}
"""A clip's row without a waiting claim (its upload was verified first, or it is not a station's report)."""


def attribute_ingested(db, clips: Sequence[dict]) -> set[str]:
    """``record_ingested``'s attributions alone (its caller moves the cameras' latest clips); the clips
    whose rows it made (a clip with a row already keeps it). A clip whose ingest report waits for
    its upload (``central.events.claims``) carries the claim: ``seq``, ``station_at``, ``size``,
    ``sha256``; kept in its row until ``take_claim``. The clips' keys are distinct among themselves.

    ``ON CONFLICT`` checks each new row against the key's index. An anti-join (``NOT EXISTS``) let
    PostgreSQL's planner hash every attribution for each run while the table was under a few
    hundred thousand rows (14 µs a clip at 200,000, growing with the table)."""
    if not clips:
        return set()
    holder = ACTIVE_AT.replace(":serial", "v.serial").replace(":at", "v.at")
    claim = "v.seq, v.station_at, v.size, v.sha256"
    if db.dialect.postgres:  # the holder looked up once a clip (a lateral join), not once a column
        select = f"""SELECT v.clip, v.serial, v.at, v.station, h.officer_id, h.id, {claim}
            FROM {db.dialect.rows_of(_ROWS)}
            LEFT JOIN LATERAL (SELECT officer_id, id {holder}) AS h ON true"""
    else:
        select = f"""SELECT v.clip, v.serial, v.at, v.station, (SELECT officer_id {holder}), (SELECT id {holder}),
            {claim} FROM {db.dialect.rows_of(_ROWS)}"""
    statement = (
        "INSERT INTO attributions (clip_id, device_serial, recorded_at, station_id, officer_id, assignment_id, "
        "claim_seq, claim_station_at, claim_size, claim_sha256) "
        f"{select} WHERE true "  # WHERE: SQLite's parser
        # A row no station's report names (a person attributed the clip by hand, then a report was
        # refused: ``withdraw``) takes this report; the person's officer stays.
        "ON CONFLICT (clip_id) DO UPDATE SET device_serial = excluded.device_serial, "
        "recorded_at = excluded.recorded_at, station_id = excluded.station_id, claim_seq = excluded.claim_seq, "
        "claim_station_at = excluded.claim_station_at, claim_size = excluded.claim_size, "
        "claim_sha256 = excluded.claim_sha256 WHERE attributions.station_id IS NULL RETURNING clip_id"
    )
    return {r[0] for r in db.execute(statement, [db.dialect.rows({**_CLAIM, **c} for c in clips)])}


def claim_of(db, clip_id: str) -> tuple[str, int, str, str, int, str] | None:
    """The ingest report of ``clip_id`` waiting for its upload, whoever made it: (station, seq,
    station time, camera, size, SHA-256), or None."""
    row = db.execute(
        "SELECT station_id, claim_seq, claim_station_at, device_serial, claim_size, claim_sha256 FROM attributions "
        "WHERE clip_id = ? AND claim_seq IS NOT NULL",
        [clip_id],
    ).fetchone()
    return tuple(row) if row else None


def claimant(db, clip_id: str) -> tuple[str, int, str] | None:
    """(station, size, SHA-256) of the ingest report of ``clip_id`` waiting for its upload, whoever made it."""
    claim = claim_of(db, clip_id)
    return (claim[0], claim[4], claim[5]) if claim else None


def take_claim(db, clip_id: str) -> tuple[str, int, str, str, int, str] | None:
    """The ingest report of ``clip_id`` that waited for its upload (``claim_of``), taken off its row."""
    claim = claim_of(db, clip_id)
    if claim is None:
        return None
    db.execute(
        "UPDATE attributions SET claim_seq = NULL, claim_station_at = NULL, claim_size = NULL, claim_sha256 = NULL "
        "WHERE clip_id = ?",
        [clip_id],
    )
    return claim


def latest_clips(clips: Sequence[dict], latest: dict[str, str] | None = None) -> dict[str, str]:
    """{serial: its latest clip's ``at``} of these clips, merged into ``latest`` (times of one width
    compare as text)."""
    latest = {} if latest is None else latest
    for c in clips:
        if c["at"] > latest.get(c["serial"], ""):
            latest[c["serial"]] = c["at"]
    return latest


def move_latest_clips(db, latest: dict[str, str]) -> None:
    """Each camera's latest clip moves on to ``latest``'s time ({serial: at}), never back: one
    statement for any number of cameras (the projection's once a transaction, not once a run:
    a row rewritten once, not at every run of its clips)."""
    if not latest:
        return
    db.execute(
        f"""UPDATE devices SET last_clip_at = {db.dialect.greatest("COALESCE(last_clip_at, '')", "v.at")}
            FROM {db.dialect.rows_of("serial TEXT, at TEXT")} WHERE devices.serial = v.serial""",
        [db.dialect.rows({"serial": serial, "at": at} for serial, at in latest.items())],
    )


def reattribute(db, serial: str, start: str, end: str | None = None) -> list[str]:
    """Recompute the owner of this camera's clips recorded in [start, end), except hand-resolved
    ones; the clips looked at."""
    return [
        r[0]
        for r in db.execute(
            f"""UPDATE attributions SET
                officer_id = (SELECT officer_id {ACTIVE_AT.replace(":at", "attributions.recorded_at")}),
                assignment_id = (SELECT id {ACTIVE_AT.replace(":at", "attributions.recorded_at")})
            WHERE device_serial = :serial AND recorded_at >= :start
              AND (CAST(:end AS TEXT) IS NULL OR recorded_at < :end)
              AND resolved_by IS NULL RETURNING clip_id""",
            {"serial": serial, "start": start, "end": end},
        )
    ]


def reporters(db, clip_ids: Iterable[str]) -> dict[str, str | None]:
    """{clip: the station that reported it} of these clips, where one has."""
    return dict(
        db.execute(
            f"SELECT clip_id, station_id FROM attributions WHERE {db.dialect.any_of('clip_id')}",
            [db.dialect.many(dict.fromkeys(clip_ids))],
        ).fetchall()
    )


def withdraw(db, clip_id: str, station_id: str) -> None:
    """A station's report of a clip was refused after all: its attribution goes. A person's (by hand)
    stays, naming no station: the refused one's say about the clip (that its copy is damaged, say)
    would go into the clip's custody, and another station's report could never take its place."""
    db.execute(
        "DELETE FROM attributions WHERE clip_id = ? AND station_id = ? AND resolved_by IS NULL", [clip_id, station_id]
    )
    db.execute(
        "UPDATE attributions SET station_id = NULL WHERE clip_id = ? AND station_id = ? AND resolved_by IS NOT NULL",
        [clip_id, station_id],
    )


def by_hand(db, clip_id: str, officer_id: str, actor: str, at: str) -> None:
    """A supervisor attributes a clip: it stays this officer's whatever assignments change later."""
    db.execute(
        "UPDATE attributions SET officer_id = ?, assignment_id = NULL, resolved_by = ?, "
        "resolved_at = ? WHERE clip_id = ?",
        [officer_id, actor, at, clip_id],
    )


def by_hand_first(db, clip_id: str, serial: str, recorded_at: str, officer_id: str, actor: str, at: str) -> None:
    """A supervisor attributes a verified clip no station's report attributed (uploaded by a person,
    its reports refused): its row is made here, naming no station, so that a station's report
    applied later takes it (``attribute_ingested``) and the supervisor's officer stays."""
    db.execute(
        "INSERT INTO attributions (clip_id, device_serial, recorded_at, station_id, officer_id, resolved_by, "
        "resolved_at) VALUES (?, ?, ?, NULL, ?, ?, ?) ON CONFLICT (clip_id) DO NOTHING",
        [clip_id, serial, recorded_at, officer_id, actor, at],
    )
