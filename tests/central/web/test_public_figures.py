"""The public figures: what they count, that a month never changes, small counts, no login, caching.

Clips are written as central keeps them (a verified clip's row and the custody record of its
ingest at the dock), in months long past, so that they are published."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from litestar import get
from litestar.di import Provide

from central.access.auth import Caller, provide_principal, user_with
from central.access.scope import PUBLIC, check_declarations
from central.core.providers import services
from central.evidence import audit
from central.evidence import figures as evidence
from central.web.public_figures import PublicFigures
from fleet.clock import from_iso, to_iso
from tests.central.apps import central_client
from tests.central.conftest import ADMIN, central_store

MARCH = "2025-03"


def _at(month: str, day: int, hour: float = 10) -> datetime:
    return datetime(int(month[:4]), int(month[5:]), day, tzinfo=UTC) + timedelta(hours=hour)


def add_clips(
    settings,
    month: str,
    station: str,
    n: int,
    *,
    evidential: int = 0,
    dock_hours: float = 2.0,
    purged: str | None = None,
    categories: str = "[]",
    prefix: str = "",
    cameras: int = 3,
) -> None:
    """``n`` clips verified in ``month`` at ``station`` (``evidential`` of them marked so), each
    docked ``dock_hours`` before its verification; ``purged``: the month they were deleted for good."""
    store = central_store(settings.data_dir)
    tag = prefix or f"{station}-{month}-{purged}-{categories}"
    rows, ingests = [], []
    for i in range(n):
        verified = _at(month, 1 + i % 27, 10 + i % 5)
        clip_id = f"{tag}-{i}"
        rows.append(
            (
                clip_id,
                clip_id,
                "0" * 64,
                100,
                station,
                f"BWV-{station}-{i % cameras}",
                verified.isoformat().replace("+00:00", ".000000Z"),
                int(i < evidential),
                verified.isoformat().replace("+00:00", ".000000Z"),
                categories,
                _at(purged, 5).isoformat().replace("+00:00", ".000000Z") if purged else None,
            )
        )
        ingests.append(
            dict(
                actor=f"station:{station}",
                place=station,
                action="ingest",
                object_type="clip",
                object_id=clip_id,
                at=verified - timedelta(hours=dock_hours),
                detail="copied from camera at the dock",
            )
        )
    try:
        with store.writer.write() as db:
            db.executemany(
                "INSERT INTO clips (clip_id, upload_id, sha256, size, state, station_id, device_serial, recorded_at, "
                "filename, evidential, verified_at, categories) "
                "VALUES (?, ?, ?, ?, 'verified', ?, ?, ?, 'c.mp4', ?, ?, ?)",
                [r[:10] for r in rows],
            )
            db.executemany(
                "INSERT INTO clip_retention (clip_id, deleted_at, purged_at) VALUES (?, ?, ?)",
                [(r[0], r[10], r[10]) for r in rows],
            )
            audit.record_many(db, ingests)
    finally:
        store.close()


def figures(client, month: str = MARCH, **headers) -> dict:
    response = client.get(f"/public/figures.json?month={month}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def value(body: dict, measure: str, borough: str = "All boroughs", outcome: str = "") -> tuple:
    [found] = [
        (f["value"], f["status"])
        for f in body["figures"]
        if f["measure"] == measure and f["borough"] == borough and f["outcome"] == outcome
    ]
    return found


def test_a_month_counted_from_central_records(settings, client):
    add_clips(settings, MARCH, "camden", 40, evidential=8, dock_hours=3, cameras=6)
    add_clips(settings, MARCH, "kentish", 20, dock_hours=1, cameras=2)  # Camden's second station
    add_clips(settings, MARCH, "barnet", 30, evidential=5, dock_hours=5, cameras=5)
    add_clips(settings, "2025-01", "camden", 9, purged=MARCH)  # deleted in March under the default rule
    add_clips(settings, "2025-01", "barnet", 7, purged=MARCH, categories='["evidential"]')  # not by default
    add_clips(settings, "2025-01", "barnet", 6, purged=MARCH)
    body = figures(client)
    assert body["month"] == MARCH and body["published_at"] == "2025-04-03T00:00:00.000000Z"
    assert value(body, "clips_uploaded", "Camden") == (60, "shown")
    assert value(body, "clips_uploaded", "Barnet") == (30, "shown")
    assert value(body, "clips_uploaded") == (90, "shown")
    assert value(body, "cameras_in_service", "Camden") == (8, "shown")
    assert value(body, "cameras_in_service", "Barnet") == (5, "shown")
    assert value(body, "evidential_share") == (round(100 * 13 / 90, 1), "shown")
    assert value(body, "evidential_share", outcome="clips_marked_evidential") == (13, "shown")
    assert value(body, "deleted_default_rule", "Camden") == (9, "shown")
    assert value(body, "deleted_default_rule", "Barnet") == (6, "shown")
    assert value(body, "median_dock_to_central_hours", "Barnet") == (5.0, "shown")
    assert value(body, "median_dock_to_central_hours", "Camden") == (3.0, "shown")  # 40 at 3 h, 20 at 1 h
    assert value(body, "median_dock_to_central_hours") == (3.0, "shown")
    assert value(body, "keep_requests", outcome="received") == (None, "fewer than 5")  # none in this month
    assert set(body["definitions"]) >= {"cameras_in_service", "clips_uploaded", "median_dock_to_central_hours"}


def test_a_month_is_the_same_asked_twice_on_another_replica_and_after_later_months(settings, client):
    add_clips(settings, MARCH, "camden", 50, evidential=10)
    add_clips(settings, MARCH, "barnet", 12)
    first = client.get(f"/public/figures.csv?month={MARCH}").text
    assert client.get(f"/public/figures.csv?month={MARCH}").text == first
    # April's clips arrive, some of March's are deleted in April: March's figures stay as published
    add_clips(settings, "2025-04", "camden", 30, evidential=3)
    store = central_store(settings.data_dir)
    try:
        with store.writer.write() as db:  # as the retention job would, a month after
            purged = [f"barnet-{MARCH}-None-[]-{i}" for i in range(8)]
            db.execute(
                "UPDATE clip_retention SET deleted_at = ?, purged_at = ? WHERE " + db.dialect.any_of("clip_id"),
                ["2025-04-02T03:00:00.000000Z", "2025-04-10T03:00:00.000000Z", db.dialect.many(purged)],
            )
    finally:
        store.close()
    again = PublicFigures(services(client.app).store.writer, services(client.app).stations)  # another replica
    assert again.month(MARCH)[0] == services(client.app).public_figures.month(MARCH)[0]
    with central_client(settings) as other:
        assert other.get(f"/public/figures.csv?month={MARCH}").text == first


def test_suppression_of_small_counts(settings, client):
    add_clips(settings, MARCH, "camden", 120, evidential=3)  # 3 evidential: the share is not shown
    add_clips(settings, MARCH, "barnet", 3, cameras=1)  # Barnet: 3 clips, 1 camera
    add_clips(settings, "2025-02", "barnet", 2, purged=MARCH)
    body = figures(client)
    assert value(body, "clips_uploaded", "Barnet") == (None, "fewer than 5")
    # with the total shown, Camden's count would give Barnet's by subtraction: Camden is withheld
    assert value(body, "clips_uploaded") == (123, "shown")
    assert value(body, "clips_uploaded", "Camden") == (None, "withheld")
    assert value(body, "cameras_in_service", "Barnet") == (None, "fewer than 5")
    assert value(body, "evidential_share") == (None, "fewer than 5")
    assert value(body, "evidential_share", outcome="clips_marked_evidential") == (None, "fewer than 5")
    assert value(body, "deleted_default_rule", "Barnet") == (None, "fewer than 5")
    assert value(body, "deleted_default_rule") == (None, "fewer than 5")  # 2 in all: a small count itself
    assert value(body, "median_dock_to_central_hours", "Barnet") == (None, "fewer than 5")  # a median of 3 clips
    rows = list(csv.DictReader(io.StringIO(client.get(f"/public/figures.csv?month={MARCH}").text)))
    for row in rows:  # no hidden count in any form, and none recoverable from the shown ones
        assert (row["value"] == "") == (row["status"] != "shown"), row
    for measure in ("clips_uploaded", "cameras_in_service", "deleted_default_rule"):
        table = [r for r in rows if r["measure"] == measure]
        total = next(r for r in table if r["borough"] == "All boroughs")
        hidden = [r for r in table if r["borough"] != "All boroughs" and r["status"] != "shown"]
        assert total["status"] != "shown" or len(hidden) != 1, (measure, table)
    page = client.get(f"/public/figures?month={MARCH}").text
    assert "fewer than 5" in page and "withheld" in page


@pytest.mark.parametrize(
    ("month", "status"),
    [
        ("2025-13", 400),
        ("2025-00", 400),
        ("1900-01", 400),
        ("25-03", 400),
        ("2025-3", 400),
        ("２０２５-03", 400),
        ("2025-03-01", 400),
        ("9999-12", 400),
        ("2999-12", 404),  # not published yet
        ("2024-12", 404),  # before central held anything
    ],
)
def test_a_bad_or_unpublished_month_is_a_clear_4xx(settings, client, month, status):
    add_clips(settings, MARCH, "camden", 5)
    for path in ("/public/figures.json", "/public/figures.csv", "/public/figures"):
        response = client.get(path, params={"month": month})
        assert response.status_code == status, (path, month, response.text[:200])
        assert response.headers["cache-control"] == "no-store"
        if path.endswith(".json"):
            assert response.json()["status"] == status and response.json()["message"]


def test_no_login_the_same_answer_whoever_asks_and_cached(settings, client):
    add_clips(settings, MARCH, "camden", 30)
    add_clips(settings, MARCH, "barnet", 10)
    users = services(client.app).users
    users.add("s.camden", "supervisor", "test", borough="Camden")
    scoped = {"Authorization": f"Bearer {users.create_token('s.camden', 'test', 'test').token}"}
    for path in (f"/public/figures.json?month={MARCH}", f"/public/figures.csv?month={MARCH}", "/public/figures"):
        anonymous = client.get(path)
        assert anonymous.status_code == 200
        assert "set-cookie" not in anonymous.headers
        assert anonymous.headers["cache-control"].startswith("public, max-age=")
        for who in (ADMIN, scoped):  # a borough-scoped user's answer is the public's, so a cache may share it
            assert client.get(path, headers=who).content == anonymous.content
        repeat = client.get(path, headers={"If-None-Match": anonymous.headers["etag"]})
        assert repeat.status_code == 304 and repeat.content == b""
    assert "Barnet" in client.get(f"/public/figures.csv?month={MARCH}", headers=scoped).text
    assert client.get("/healthz").headers["cache-control"] == "no-store"  # everything else stays uncached


def test_a_public_route_that_could_tell_callers_apart_is_refused():
    from litestar import Litestar

    @get("/public/who", scope=PUBLIC, dependencies={"principal": Provide(provide_principal)})
    async def names_the_caller(principal: Caller) -> str:
        return principal.name

    @get("/public/guarded", scope=PUBLIC, guards=[user_with("viewer")])
    async def guarded() -> str:
        return "only some"

    for handler, why in ((names_the_caller, "takes principal"), (guarded, "has guards")):
        with pytest.raises(RuntimeError, match=why):
            check_declarations(Litestar(route_handlers=[handler]), "/schema")


def test_each_month_is_computed_once_whatever_is_asked(settings, client, monkeypatch):
    add_clips(settings, MARCH, "camden", 20)
    computed = []
    original = evidence.dock_to_central_hours

    def counted(*args):
        computed.append(args[2])
        return original(*args)

    monkeypatch.setattr(evidence, "dock_to_central_hours", counted)
    for _ in range(3):  # a visitor cycling through months: each published one is worked out once
        for month in (MARCH, "2025-04", "2999-01", "1999-12", "2025-13", "2024-01", f"{MARCH}&month=2025-04"):
            assert client.get(f"/public/figures.json?month={month}").status_code < 500
    assert sorted(computed) == ["2025-03-01T00:00:00.000000Z", "2025-04-01T00:00:00.000000Z"]


def test_requests_by_borough_and_by_outcome_share_one_total_and_protect_it_together(settings, client, monkeypatch):
    add_clips(settings, MARCH, "camden", 40)
    add_clips(settings, MARCH, "barnet", 40)
    counts = evidence.RequestCounts(  # as the requests' module reports them: each request under one outcome
        received={"Camden": 40, "Barnet": 3},
        outcomes={"Camden": {"under_review": 38, "footage_kept": 2}, "Barnet": {"under_review": 3}},
    )
    monkeypatch.setattr(evidence, "keep_request_counts", lambda db, month, as_of: counts)
    body = figures(client)
    assert value(body, "keep_requests", "Barnet", "received") == (None, "fewer than 5")
    assert value(body, "keep_requests", outcome="footage_kept") == (None, "fewer than 5")
    # the total stays, so in each table the other count is withheld: 40 or 41 beside 43 gives 3 or 2 away
    assert value(body, "keep_requests", outcome="received") == (43, "shown")
    assert value(body, "keep_requests", "Camden", "received") == (None, "withheld")
    assert value(body, "keep_requests", outcome="under_review") == (None, "withheld")


def test_requests_to_keep_footage_are_counted_with_their_outcome_as_published(client, settings):
    """The requests' own table (central.evidence.keep_requests), read as of the month's publication:
    a request narrowed after the month was published still counts as under review."""
    add_clips(settings, MARCH, "camden", 10)
    store = central_store(settings.data_dir)
    with store.writer.write() as db:
        for i in range(12):
            received = _at(MARCH, 2 + i)
            narrowed = _at("2025-04", 1) if i < 6 else _at("2025-05", 1)  # after publication (3 April) for six
            db.execute(
                "INSERT INTO keep_requests (reference, borough, place, happened_from, happened_to, hold_from, "
                "hold_to, contact, received_at, review_by, state, narrowed_at) "
                "VALUES (?, 'Camden', 'High Street', ?, ?, ?, ?, 'x@example.org', ?, ?, 'narrowed', ?)",
                [f"KF-TEST-{i:04d}", *[to_iso(received)] * 4, to_iso(received), to_iso(received), to_iso(narrowed)],
            )
    try:
        body = figures(client)
        # The outcomes share the total with five outcomes none had (each "fewer than 5"): the two
        # that had six each, and the total, are withheld so that no zero can be worked out, and so
        # is Camden's count, which would otherwise all but give the total away.
        assert value(body, "keep_requests", "Camden", "received") == (None, "withheld")
        assert value(body, "keep_requests", outcome="footage_kept") == (None, "withheld")
        assert value(body, "keep_requests", outcome="withdrawn") == (None, "fewer than 5")
        with store.writer.read() as db:
            [camden] = evidence.counts_by_borough_month(db, MARCH, MARCH, from_iso(body["published_at"]))
        assert (camden.received, camden.outcomes["footage_kept"], camden.outcomes["under_review"]) == (12, 6, 6)
    finally:
        store.close()


def test_the_borough_table_never_gives_back_a_total_the_outcome_table_withholds(client, settings, monkeypatch):
    """Camden 5 and Barnet 5 shown would add up to the 10 the outcomes withhold, and so give away
    that every outcome shown "fewer than 5" is 0 (found by the attack review)."""
    from central.evidence.keep_request_form import FIGURE_OUTCOMES

    add_clips(settings, MARCH, "camden", 40)
    add_clips(settings, MARCH, "barnet", 40)
    zero = dict.fromkeys(FIGURE_OUTCOMES, 0)
    counts = evidence.RequestCounts(
        received={"Camden": 5, "Barnet": 5},
        outcomes={"Camden": {**zero, "under_review": 5}, "Barnet": {**zero, "footage_kept": 5}},
    )
    monkeypatch.setattr(evidence, "keep_request_counts", lambda db, month, as_of: counts)
    body = figures(client)
    assert value(body, "keep_requests", outcome="received") == (None, "withheld")
    boroughs = [value(body, "keep_requests", b, "received")[1] for b in ("Camden", "Barnet")]
    assert "withheld" in boroughs


def _reader_can_pin(body: dict) -> dict[str, set[int]]:
    """What the documented reader (docs/contracts.md, "Suppression") learns of each "fewer than 5"
    request outcome: a small count is 0..4, a withheld one lies between 5 and the smallest count shown
    in its table, and the boroughs' requests and the outcomes add up to the same total. (Sums are
    reached table by table, not by trying every combination: six withheld outcomes of up to 60
    each were 56**6 combinations.)"""
    rows = [f for f in body["figures"] if f["measure"] == "keep_requests"]
    total = next(f for f in rows if f["borough"] == "All boroughs" and f["outcome"] == "received")
    by_borough = [f for f in rows if f["borough"] != "All boroughs"]
    by_outcome = [f for f in rows if f["borough"] == "All boroughs" and f["outcome"] != "received"]

    def ranges(table):
        shown = [int(f["value"]) for f in table if f["status"] == "shown"]
        ceiling = min(shown) if shown else 60
        return [
            [int(f["value"])]
            if f["status"] == "shown"
            else range(5)
            if f["status"] == "fewer than 5"
            else range(5, ceiling + 1)
            for f in table
        ]

    def sums_of(choices) -> set[int]:
        reached = {0}
        for values in choices:
            reached = {s + v for s in reached for v in values}
        return reached

    sums = sums_of(ranges(by_borough))
    if total["status"] == "shown":
        sums &= {int(total["value"])}
    outcome_ranges = ranges(by_outcome)
    possible: dict[str, set[int]] = {}
    for i, f in enumerate(by_outcome):
        if f["status"] == "fewer than 5":
            others = sums_of(outcome_ranges[:i] + outcome_ranges[i + 1 :])
            possible[f["outcome"]] = {v for v in outcome_ranges[i] if any(s - v in others for s in sums)}
    return possible


def test_a_withheld_borough_bounded_by_the_one_shown_gives_no_outcome_away(client, settings, monkeypatch):
    """The case the earlier review fixed (Camden 5, Barnet 5, outcomes 5 and 5): Camden is now withheld,
    but a withheld count is at most the smallest shown (Barnet's 5), so Camden is 5, the total 10, and
    each outcome shown "fewer than 5" is 0 (the two withheld outcomes are 5 or more each)."""
    from central.evidence.keep_request_form import FIGURE_OUTCOMES

    add_clips(settings, MARCH, "camden", 40)
    add_clips(settings, MARCH, "barnet", 40)
    zero = dict.fromkeys(FIGURE_OUTCOMES, 0)
    counts = evidence.RequestCounts(
        received={"Camden": 5, "Barnet": 5},
        outcomes={"Camden": {**zero, "under_review": 5}, "Barnet": {**zero, "footage_kept": 5}},
    )
    monkeypatch.setattr(evidence, "keep_request_counts", lambda db, month, as_of: counts)
    possible = _reader_can_pin(figures(client))
    assert possible and all(values == set(range(5)) for values in possible.values()), possible


def test_cameras_in_service_cannot_be_pinned_by_the_clips_table_beside_them(settings, client, monkeypatch):
    add_clips(settings, MARCH, "barnet", 4, cameras=4)
    add_clips(settings, MARCH, "camden", 5, cameras=4)
    counts = evidence.RequestCounts(received={"Ealing": 0}, outcomes={})  # a third borough in the tables
    monkeypatch.setattr(evidence, "keep_request_counts", lambda db, month, as_of: counts)
    body = figures(client)
    clips = {b: value(body, "clips_uploaded", b) for b in ("Barnet", "Camden", "Ealing", "All boroughs")}
    cameras = {b: value(body, "cameras_in_service", b) for b in ("Barnet", "Camden", "Ealing", "All boroughs")}
    # What a reader can work out: clips Barnet + Ealing = total - Camden's (when shown), each camera count
    # at most its borough's clips, and the cameras add up to their total when it is shown.
    if clips["Camden"][1] == "shown" and clips["All boroughs"][1] == "shown" and cameras["All boroughs"][1] == "shown":
        others = clips["All boroughs"][0] - clips["Camden"][0]  # clips of Barnet and Ealing together
        camden_at_least = cameras["All boroughs"][0] - others  # cameras there are at most their clips
        assert not (cameras["Camden"][1] == "fewer than 5" and camden_at_least >= 4), (
            f"Camden's cameras in service, shown 'fewer than 5', are {camden_at_least} or more: exactly 4"
        )
