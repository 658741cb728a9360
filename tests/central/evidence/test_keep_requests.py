"""The public's requests to keep footage: what they protect, what they answer, what they refuse."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from central.evidence import audit
from central.evidence.figures import counts_by_borough_month
from central.evidence.holds import HELD
from central.evidence.keep_request_cap import BoroughFull
from central.evidence.keep_request_escalation import escalate, overdue_count
from central.evidence.keep_request_form import (
    CROCKFORD,
    OUTCOMES,
    REVIEW_DAYS,
    FormErrors,
    NewRequest,
    new_reference,
    normal_reference,
    parse_form,
)
from central.evidence.keep_requests import (
    ADDRESS_FREE,
    ALL_FREE,
    CONTACT_KEPT,
    LOOKUP_MISSES_FREE,
    MOST_CLOSED_AT_ONCE,
    KeepRequests,
)
from central.evidence.retention import HoldRequest, ReviewRequest
from fleet.clock import to_iso, utc_now
from fleet.config import KeepRequestSettings
from fleet.errors import BadRequest, Conflict, NotFound, TooManyRequests
from tests.central.evidence.test_retention import T0, put_clip, service_for, state

INCIDENT = T0 + timedelta(hours=21)
"""21:00 UTC on 1 January 2026 (London is on UTC then)."""


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def env(tmp_path):
    store, blobs, services = service_for(tmp_path)
    with store.writer.write() as db:
        for serial, borough in (("BWV-1", "Camden"), ("BWV-B", "Barnet")):
            db.execute(
                "INSERT INTO devices (serial, borough, registered_by, registered_at) VALUES (?, ?, 'test', ?)",
                [serial, borough, to_iso(T0)],
            )
        for station, borough in (("camden", "Camden"), ("barnet", "Barnet")):
            db.execute("INSERT INTO stations (station_id, borough) VALUES (?, ?)", [station, borough])
    clock = Clock(T0 + timedelta(days=2))
    requests = KeepRequests(store.writer, services.changes, services.retention, services.settings, clock)
    yield store, blobs, services.retention, requests, clock
    store.close()


def capped(env, per_borough_per_day: int) -> KeepRequests:
    """The service of ``env`` (its database, its clock) with another cap on a borough's day."""
    store, _blobs, retention, requests, clock = env
    settings = msgspec.structs.replace(
        requests.settings, keep_requests=KeepRequestSettings(per_borough_per_day=per_borough_per_day)
    )
    return KeepRequests(store.writer, requests.changes, retention, settings, clock)


def clip(env, at: datetime, borough: str = "Camden") -> str:
    """A clip recorded by the borough's camera, docked at its station."""
    store, blobs, *_ = env
    clip_id = put_clip(store, blobs, at, station=borough.lower())
    if borough == "Barnet":
        with store.writer.write() as db:
            db.execute("UPDATE clips SET device_serial = 'BWV-B' WHERE clip_id = ?", [clip_id])
            db.execute("UPDATE attributions SET device_serial = 'BWV-B' WHERE clip_id = ?", [clip_id])
    return clip_id


def reallocate(env, serial: str, borough: str) -> None:
    store, *_ = env
    with store.writer.write() as db:
        db.execute("UPDATE devices SET borough = ? WHERE serial = ?", [borough, serial])


def ask(requests: KeepRequests, start: datetime = INCIDENT, hours: float = 1, borough="Camden", place="p1"):
    return requests.submit(
        NewRequest(
            borough=borough,
            place="outside 12 High Street",
            happened_from=start,
            happened_to=start + timedelta(hours=hours),
            shoulder_numbers=["1234AB"],
            contact="someone@example.org",
        ),
        f"browser:{place}",
    )


def test_a_request_whose_window_covers_clips_due_for_deletion_tomorrow_keeps_them(env):
    store, blobs, retention, requests, clock = env
    inside = clip(env, INCIDENT + timedelta(minutes=20))
    margin = clip(env, INCIDENT - timedelta(minutes=50))  # in the hour's margin before the window
    later = clip(env, INCIDENT + timedelta(hours=3))
    elsewhere = clip(env, INCIDENT + timedelta(minutes=20), borough="Barnet")
    retention.assess()
    clock.now = T0 + timedelta(days=30, hours=22)  # the clips' retention ends tomorrow
    status = ask(requests)
    assert status.state == "open" and status.deleted is None
    (queued,) = requests.queue(None)
    assert queued.deadline == INCIDENT - timedelta(minutes=50) + timedelta(days=31) and queued.protected == 2
    retention.run(T0 + timedelta(days=32))
    assert state(store, inside) == (0, 0) and state(store, margin) == (0, 0)
    assert state(store, later) == (1, 0) and state(store, elsewhere) == (1, 0)
    retention.run(T0 + timedelta(days=60))  # long after: still kept, bytes and all
    assert state(store, inside) == (0, 0) and blobs.exists(inside)

    with pytest.raises(BadRequest, match="could match"):
        requests.narrow(status.reference, [later], "x", "im.officer")
    narrowed = requests.narrow(status.reference, [inside], "PC 1234AB's camera, 21:20", "im.officer")
    assert narrowed.state == "narrowed" and narrowed.protected == 1
    with pytest.raises(Conflict):
        requests.narrow(status.reference, [inside], "again", "im.officer")
    retention.run(T0 + timedelta(days=61))
    assert state(store, inside) == (0, 0) and state(store, margin) == (1, 0)
    assert requests.status(status.reference, "browser:p2").kept == 1

    with pytest.raises(BadRequest, match="unknown outcome"):
        requests.close(status.reference, "bored", "x", "im.officer")
    requests.close(status.reference, "concluded", "complaint CMP-9 closed", "im.officer")
    with pytest.raises(Conflict):
        requests.close(status.reference, "concluded", "again", "im.officer")
    retention.run(T0 + timedelta(days=62))
    assert state(store, inside) == (1, 0)
    with store.writer.read() as db:
        trail = [(r.action, r.detail) for r in audit.records_for(db, "keep_request", status.reference)]
        assert [a for a, _ in trail] == ["keep-request-close", "keep-request-narrow", "keep-request"]
        assert "1 of 2 clips kept" in trail[1][1]
        released = [(r.action, r.detail) for r in audit.records_for(db, "clip", margin)]
        assert ("hold", f"public request {status.reference}") in released
        assert ("release", f"public request {status.reference} narrowed to other clips") in released
        assert audit.verify(db).intact


def test_a_request_on_footage_already_purged_gets_the_truthful_answer(env):
    store, _blobs, retention, requests, clock = env
    gone = clip(env, INCIDENT + timedelta(minutes=10))
    retention.run(T0 + timedelta(days=31, hours=22))  # soft-deleted on 1 February
    retention.run(T0 + timedelta(days=39))  # purged a week later
    assert state(store, gone) == (1, 1)
    clock.now = T0 + timedelta(days=45)
    status = ask(requests)
    assert status.state == "closed" and status.headline == "The footage had already been deleted"
    assert status.deleted == (
        "Recordings from that time and place had already been deleted on or before 1 February 2026, "
        "under the force's retention rules."
    )
    again = requests.status(status.reference.lower().replace("-", " "), "browser:p2")
    assert again.deleted == status.deleted and again.state == "closed"
    assert requests.queue(None) == [] and requests.queue(None, "closed")[0].outcome == "already_deleted"


def test_a_request_during_the_recovery_window_brings_soft_deleted_footage_back(env):
    store, blobs, retention, requests, clock = env
    soft = clip(env, INCIDENT)
    retention.run(T0 + timedelta(days=31, hours=22))
    assert state(store, soft) == (1, 0)
    clock.now = T0 + timedelta(days=33)
    status = ask(requests)
    assert status.state == "open" and state(store, soft) == (0, 0)
    retention.run(T0 + timedelta(days=80))
    assert state(store, soft) == (0, 0) and blobs.exists(soft)


def test_a_clip_a_station_reported_but_has_not_sent_is_held_for_the_station(env):
    store, _blobs, _retention, requests, _clock = env
    with store.writer.write() as db:
        db.execute(
            "INSERT INTO attributions (clip_id, device_serial, recorded_at, station_id) VALUES ('late', 'BWV-1', ?, "
            "'camden')",
            [to_iso(INCIDENT + timedelta(minutes=5))],
        )
    ask(requests)
    with store.writer.read() as db:
        held = db.execute(f"SELECT {HELD} FROM (SELECT CAST(? AS TEXT) AS clip_id) c", ["late"]).fetchone()[0]
        told = db.execute("SELECT count(*) FROM changes WHERE kind = 'clip_hold'").fetchone()[0]
    assert held and told == 1


def test_a_reviewer_cannot_dispose_of_a_clip_a_request_keeps(env):
    store, blobs, retention, requests, _clock = env
    reviewed = put_clip(store, blobs, INCIDENT, tags=["use_of_force"])  # reviewed after 45 days
    retention.assess()
    ask(requests)
    with pytest.raises(Conflict, match="public request KF-"):
        retention.review(
            reviewed,
            ReviewRequest(decision="dispose", reason="no further use"),
            "reviewer",
            now=T0 + timedelta(days=50),
        )


def test_a_camera_moved_to_another_borough_leaves_its_clips_in_the_request_where_they_were_recorded(env):
    store, _blobs, retention, requests, clock = env
    recorded_here = clip(env, INCIDENT + timedelta(minutes=20))  # Camden's camera, docked at Camden
    retention.assess()
    reallocate(env, "BWV-1", "Barnet")  # the camera goes to Barnet after the incident
    clock.now = T0 + timedelta(days=30, hours=22)
    status = ask(requests)
    (queued,) = requests.queue(None)
    assert queued.protected == 1
    _, matching = requests.request(status.reference)
    assert [c.clip_id for c in matching] == [recorded_here]
    assert requests.over_retention("Camden", now=INCIDENT + timedelta(days=41))[0].clips == 1
    retention.run(T0 + timedelta(days=40))
    assert state(store, recorded_here) == (0, 0)
    assert ask(requests, borough="Barnet", place="p3").state == "open"  # the camera's new borough
    requests.close(status.reference, "concluded", "done", "im.officer")
    retention.run(T0 + timedelta(days=41))
    assert state(store, recorded_here) == (0, 0)  # Barnet's request covers it through the camera


def test_over_retention_counts_clips_kept_only_by_public_requests(env):
    _store, _blobs, retention, requests, _clock = env
    only_requested = clip(env, INCIDENT)
    also_held = clip(env, INCIDENT + timedelta(minutes=1))
    retention.assess()
    ask(requests)
    retention.place_hold(HoldRequest(kind="clip", clip_id=also_held, reason="complaint"), "s.uper")
    (camden,) = requests.over_retention(None, now=INCIDENT + timedelta(days=41))
    assert (camden.borough, camden.clips, camden.longest_days) == ("Camden", 1, 10)
    assert requests.over_retention("Barnet", now=INCIDENT + timedelta(days=41)) == []
    assert only_requested


def test_the_queue_of_a_borough_shows_its_own_requests_only(env):
    _store, _blobs, _retention, requests, _clock = env
    camden = ask(requests, borough="Camden").reference
    barnet = ask(requests, borough="Barnet").reference
    assert [r.reference for r in requests.queue("Camden")] == [camden]
    assert {r.reference for r in requests.queue(None)} == {camden, barnet}
    with pytest.raises(NotFound):
        requests.request("KF-0000-0000-0000")


def test_a_flood_from_one_address_is_held_to_a_few_requests_and_stores_nothing_more(env):
    store, _blobs, _retention, requests, clock = env
    for _ in range(ADDRESS_FREE):
        ask(requests, place="203.0.113.9")
    with pytest.raises(TooManyRequests, match="too many requests from your address") as refused:
        ask(requests, place="203.0.113.9")
    assert int(refused.value.headers["Retry-After"]) > 0
    ask(requests, place="198.51.100.7")  # someone else is not held back
    clock.now += timedelta(seconds=int(refused.value.headers["Retry-After"]) + 1)
    ask(requests, place="203.0.113.9")  # after the wait: one more, then a longer wait
    with pytest.raises(TooManyRequests):
        ask(requests, place="203.0.113.9")
    with store.writer.read() as db:
        assert db.execute("SELECT count(*) FROM keep_requests").fetchone()[0] == ADDRESS_FREE + 2
        lockouts = db.execute("SELECT count(*) FROM audit WHERE action = 'keep-footage-lockout'").fetchone()[0]
    assert lockouts == 2


def test_references_are_unguessable_readable_and_forgiving(env):
    _store, _blobs, _retention, requests, _clock = env
    made = {new_reference() for _ in range(1000)}
    assert len(made) == 1000
    assert all(len(r) == 17 and set(r[3:].replace("-", "")) <= set(CROCKFORD) for r in made)
    assert normal_reference("kf-7h3k q9pm xd42") == "KF-7H3K-Q9PM-XD42"
    assert normal_reference("KF-7H3K-Q9PM-XDO2") == "KF-7H3K-Q9PM-XD02"  # O read as 0
    assert normal_reference("KF-7H3K-Q9PM-XD4") is None
    assert normal_reference("'; DROP TABLE keep_requests; --") is None
    for _ in range(LOOKUP_MISSES_FREE):
        with pytest.raises(NotFound):
            requests.status(new_reference(), "browser:guesser")
    real = ask(requests).reference
    with pytest.raises(TooManyRequests):
        requests.status(real, "browser:guesser")  # a guesser is locked out, even with a right one
    assert requests.status(real, "browser:owner").reference == real


def test_the_form_checks_every_field_with_a_clear_message(env):
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    good = {
        "borough": "Camden",
        "place": "High St",
        "date": "2026-11-19",
        "time_from": "23:30",
        "time_to": "00:15",
        "shoulder_numbers": "1234ab, 56CD",
        "contact": "a@example.org",
    }
    parsed = parse_form(good, ["Camden"], now)
    assert parsed.happened_from == datetime(2026, 11, 19, 23, 30, tzinfo=UTC)
    assert parsed.happened_to == datetime(2026, 11, 20, 0, 15, tzinfo=UTC)  # past midnight: the next day
    assert parsed.shoulder_numbers == ["1234AB", "56CD"]
    assert parse_form({**good, "place": "High St\r\nby the bus stop"}, ["Camden"], now).place == (
        "High St\nby the bus stop"  # as a browser posts a textarea's lines
    )
    summer = parse_form({**good, "date": "2026-07-01", "time_from": "21:00", "time_to": "22:00"}, ["Camden"], now)
    assert summer.happened_from == datetime(2026, 7, 1, 20, tzinfo=UTC)  # typed in London's summer time
    cases = {
        "borough": ({"borough": "Atlantis"}, "we have no cameras in that borough"),
        "place": ({"place": ""}, "this is needed"),
        "contact": ({"contact": "x" * 301}, "300 characters"),
        "shoulder_numbers": ({"shoulder_numbers": "12<b>"}, "only letters and digits"),
        "date": ({"date": "yesterday"}, "give the date"),
        "time_to": ({"time_from": "10:00", "time_to": "10:00"}, "later than the start"),
        "time_from": ({"time_from": "25:00"}, "hours and minutes"),
    }
    for name, (change, message) in cases.items():
        with pytest.raises(FormErrors) as refused:
            parse_form({**good, **change}, ["Camden"], now)
        assert name in refused.value.errors and message in refused.value.errors[name], (name, refused.value.errors)
    with pytest.raises(FormErrors, match="in the future"):
        parse_form({**good, "date": "2026-11-21"}, ["Camden"], now)
    with pytest.raises(FormErrors, match="later than now"):
        parse_form({**good, "date": "2026-11-20", "time_from": "11:00", "time_to": "13:00"}, ["Camden"], now)
    with pytest.raises(FormErrors, match="no routine footage"):
        parse_form({**good, "date": "2016-11-19"}, ["Camden"], now)
    for hidden in ("\x00", "\x1b[2J", "\x85", "\u202e", "\u2066", "\u200f"):  # C0, C1, bidirectional
        with pytest.raises(FormErrors) as refused:
            parse_form(
                {**good, "place": f"High St {hidden}gnp.exe", "contact": f"a{hidden}@example.org"}, ["Camden"], now
            )
        assert set(refused.value.errors) == {"place", "contact"}, hidden


def test_the_service_refuses_a_whole_borough_for_a_year_whatever_the_form_said(env):
    _store, _blobs, _retention, requests, _clock = env
    with pytest.raises(FormErrors, match="at most 24 hours"):
        ask(requests, start=T0 - timedelta(days=365), hours=365 * 24)
    with pytest.raises(FormErrors, match="borough"):
        ask(requests, borough="Atlantis")


def test_figures_count_requests_by_borough_month_and_outcome_as_they_stood(env):
    store, _blobs, _retention, requests, clock = env
    first = ask(requests).reference
    ask(requests, borough="Barnet")
    clock.now = T0 + timedelta(days=40)
    ask(requests, place="p2")
    decided = clock.now - timedelta(seconds=1)  # just before the decision
    requests.close(first, "no_matching_footage", "nothing there", "im.officer")
    with store.writer.read() as db:
        now = {(c.borough, c.month): c for c in counts_by_borough_month(db)}
        before = {(c.borough, c.month): c for c in counts_by_borough_month(db, as_of=decided)}
        january = counts_by_borough_month(db, "2026-01", "2026-01")
    assert now["Camden", "2026-01"].received == 1 and now["Camden", "2026-01"].outcomes["no_matching_footage"] == 1
    assert before["Camden", "2026-01"].outcomes["under_review"] == 1
    assert now["Camden", "2026-02"].outcomes["under_review"] == 1
    assert {(c.borough, c.month) for c in january} == {("Camden", "2026-01"), ("Barnet", "2026-01")}


def test_a_closed_requests_contact_address_is_erased_after_it_is_no_longer_needed(env):
    store, _blobs, _retention, requests, clock = env
    kept = ask(requests, place="a").reference
    closed = ask(requests, place="b").reference
    requests.close(closed, "concluded", "nothing to add", "i.m")
    assert requests.forget_contacts() == 0  # just closed: the requester may still ask about it
    clock.now += CONTACT_KEPT + timedelta(days=1)
    assert requests.forget_contacts() == 1
    assert requests.request(closed)[0].contact == "" and requests.request(kept)[0].contact == "someone@example.org"
    assert requests.forget_contacts() == 0  # once
    with store.writer.read() as db:
        erased = audit.records_for(db, "keep_request", closed)
    assert [r.action for r in erased].count("keep-request-contact-erased") == 1


# -- found by the attack review ----------------------------------------------------------------


def test_a_request_never_undoes_a_reviewers_disposal(env):
    store, blobs, retention, requests, clock = env
    private = put_clip(store, blobs, INCIDENT, tags=["use_of_force"])
    retention.assess()
    retention.review(
        private,
        ReviewRequest(decision="dispose", reason="recorded in error inside a home"),
        "r",
        now=T0 + timedelta(days=46),
    )
    assert state(store, private) == (1, 0)  # soft-deleted by a reviewer's decision, awaiting purge
    clock.now = T0 + timedelta(days=47)
    ask(requests, place="anyone")
    assert state(store, private) == (1, 0)  # still deleted: a person weighs it, not the form
    retention.run(T0 + timedelta(days=120))
    assert state(store, private) == (1, 0)  # and while the request is open, not purged either


def test_a_flood_of_new_requests_never_pushes_an_older_one_off_the_queue(env):
    _store, _blobs, _retention, _requests, clock = env
    requests = capped(env, 10**4)  # the throttles' flood, to one borough: the cap has tests of its own
    genuine = ask(requests, place="198.51.100.7").reference  # the soonest review date of all
    clock.now += timedelta(minutes=1)
    for n in range(ALL_FREE - 1):
        ask(requests, place=f"2001:db8:{n // ADDRESS_FREE:x}::1")  # each line its own /64
    clock.now += timedelta(hours=2)
    for n in range(10):
        ask(requests, place=f"2001:db9:{n:x}::1")
    shown = [r.reference for r in requests.queue(None)]
    assert genuine in shown and len(shown) == 200


def test_a_flood_never_shuts_the_form_to_someone_who_has_not_asked_before(env):
    _store, _blobs, _retention, _requests, _clock = env
    requests = capped(env, 10**4)
    for n in range(ALL_FREE):  # a botnet: every address new, one request each
        ask(requests, place=f"203.0.113.{n}")
    with pytest.raises(TooManyRequests, match="very busy"):
        ask(requests, place="203.0.113.1")  # one of the flood's addresses again: the form is busy
    assert ask(requests, place="198.51.100.7").reference  # a first request from anyone else goes through
    with pytest.raises(TooManyRequests):
        ask(requests, place="198.51.100.7")  # but only the first, while the form is busy


def test_an_ipv6_line_is_one_client_whatever_address_of_its_64_it_uses(env):
    _store, _blobs, _retention, requests, _clock = env
    for n in range(ADDRESS_FREE):
        ask(requests, place=f"2001:db8:1:2::{n:x}")
    with pytest.raises(TooManyRequests, match="your address"):
        ask(requests, place="2001:db8:1:2::ffff")
    assert ask(requests, place="2001:db8:1:3::1").reference  # another /64: another line


def test_the_answer_about_deleted_footage_gives_no_count_and_no_reviewers_decision(env):
    store, blobs, retention, requests, clock = env
    disposed = put_clip(store, blobs, INCIDENT, tags=["use_of_force"])  # reviewed, not deleted unseen
    routine = clip(env, INCIDENT + timedelta(minutes=5))
    many = [clip(env, INCIDENT + timedelta(days=1, minutes=m)) for m in range(6)]
    retention.assess()
    retention.run(T0 + timedelta(days=33))  # the routine ones, under the 31-day rule
    retention.review(disposed, ReviewRequest(decision="dispose", reason="in error"), "r", now=T0 + timedelta(days=46))
    later = utc_now() + timedelta(days=8)  # a reviewer's deletion is audited when it happens
    retention.run(later)
    assert {state(store, c) for c in [disposed, routine, *many]} == {(1, 1)}
    clock.now = later + timedelta(hours=1)
    few = ask(requests, place="a")
    assert few.state == "closed" and re.fullmatch(
        r"Recordings from that time and place had already been deleted on or before \d{1,2} \w+ 20\d\d, "
        r"under the force's retention rules\.",
        few.deleted or "",
    ), few.deleted
    assert requests.status(few.reference, "browser:b").deleted == few.deleted
    counted = ask(requests, start=INCIDENT + timedelta(days=1), place="c")
    assert counted.deleted == (
        "Recordings from that time and place had already been deleted on or before "
        "3 February 2026, under the force's retention rules."
    )


def test_footage_released_by_a_review_and_deleted_later_was_not_already_deleted(env):
    store, _blobs, retention, requests, _clock = env
    kept, released = clip(env, INCIDENT), clip(env, INCIDENT + timedelta(minutes=10))
    retention.assess()
    reference = ask(requests).reference
    requests.narrow(reference, [kept], "the one that matches", "im.officer")
    requests.close(reference, "concluded", "done", "im.officer")
    retention.run(T0 + timedelta(days=31, hours=22))
    retention.run(T0 + timedelta(days=40))
    assert state(store, released) == (1, 1) and state(store, kept) == (1, 1)
    told = requests.status(reference, "browser:p2")
    assert told.deleted is None and told.explanation == OUTCOMES["concluded"]  # nothing of the review's choice


def test_a_request_past_its_review_date_is_escalated_and_keeps_its_footage(env):
    store, _blobs, retention, requests, clock = env
    footage = clip(env, INCIDENT)
    retention.assess()
    late = ask(requests, place="a").reference  # to be reviewed within REVIEW_DAYS
    clock.now += timedelta(days=5)
    sooner = ask(requests, start=INCIDENT - timedelta(hours=12), place="b").reference  # an earlier deadline
    barnet = ask(requests, borough="Barnet", place="c").reference
    assert [r.reference for r in requests.queue("Camden")] == [sooner, late]  # soonest deadline first
    clock.now = T0 + timedelta(days=2 + REVIEW_DAYS, hours=1)  # the first is past its review date
    queue = requests.queue(None)
    assert [(r.reference, r.overdue) for r in queue] == [(late, True), (sooner, False), (barnet, False)]
    assert requests.request(late)[0].overdue
    with store.writer.read() as db:
        counts = [overdue_count(db, b, clock.now) for b in (None, "Camden", "Barnet")]
    assert counts == [1, 1, 0]
    assert escalate(store.writer, clock.now) == 1
    assert escalate(store.writer, clock.now) == 0  # audited once
    with store.writer.read() as db:
        trail = [(r.actor, r.action) for r in audit.records_for(db, "keep_request", late)]
    assert trail[0] == ("central", "keep-request-overdue")
    retention.run(T0 + timedelta(days=90))  # long after: never released for being late
    assert state(store, footage) == (0, 0) and requests.request(late)[0].state == "open"
    requests.narrow(late, [footage], "reviewed at last", "im.officer")
    assert not requests.request(late)[0].overdue  # reviewed: no longer overdue
    with store.writer.read() as db:
        assert overdue_count(db, None, clock.now) == 0


def test_several_requests_are_closed_at_once_each_as_if_alone_or_none_is(env):
    store, _blobs, retention, requests, _clock = env
    footage = clip(env, INCIDENT)
    retention.assess()
    first, second, third = (ask(requests, place=p).reference for p in "abc")
    for wrong, message in (
        (dict(outcome="bored"), "unknown outcome"),
        (dict(note=" "), "say why"),
        (dict(references=[]), "choose the requests"),
        (dict(references=[f"KF-{n:04d}-0000-0000" for n in range(MOST_CLOSED_AT_ONCE + 1)]), "at most 200"),
    ):
        call = {**dict(references=[first], outcome="withdrawn", note="asked to", actor="im.officer"), **wrong}
        with pytest.raises(BadRequest, match=message):
            requests.close_many(**call)
    requests.close(third, "withdrawn", "asked to", "im.officer")
    with pytest.raises(Conflict, match=f"{third} is closed already"):
        requests.close_many([first, third], "withdrawn", "x", "im.officer")
    with pytest.raises(NotFound):
        requests.close_many([first, "KF-0000-0000-0000"], "withdrawn", "x", "im.officer")
    assert {r.reference for r in requests.queue(None)} == {first, second}  # none of them was closed
    assert requests.close_many([second, first, second], "not_actionable", "repeats KF-X", "im.officer") == 2
    assert requests.queue(None) == []
    with store.writer.read() as db:
        for reference in (first, second):
            (closed,) = [r for r in audit.records_for(db, "keep_request", reference) if r.action.endswith("close")]
            assert (closed.actor, closed.detail) == ("im.officer", "not_actionable: repeats KF-X")
        released = [r.detail for r in audit.records_for(db, "clip", footage) if r.action == "release"]
    assert sorted(released) == sorted(
        [
            *(f"public request {r} closed (not_actionable)" for r in (first, second)),
            f"public request {third} closed (withdrawn)",
        ]
    )
    retention.run(T0 + timedelta(days=32))
    assert state(store, footage) == (1, 0)  # back to the normal rules


def test_a_borough_takes_its_days_cap_of_requests_then_asks_for_a_phone_call(env):
    store, _blobs, _retention, _requests, clock = env
    requests = capped(env, 3)
    first = ask(requests, place="198.51.100.1").reference
    clock.now += timedelta(hours=1)
    for n in range(2):
        ask(requests, place=f"198.51.100.{n + 2}")
    for n in range(4):  # a flood past the cap, every address new: refused, nothing stored, never an error
        with pytest.raises(BoroughFull, match="as many requests for Camden today") as refused:
            ask(requests, place=f"203.0.113.{n}")
    assert refused.value.status_code == 429
    assert int(refused.value.headers["Retry-After"]) == 23 * 3600  # when the first leaves the 24 hours, in hours
    assert ask(requests, borough="Barnet", place="198.51.100.9").state == "open"  # another borough's day
    with store.writer.read() as db:
        stored = db.execute("SELECT borough, count(*) FROM keep_requests GROUP BY 1 ORDER BY 1").fetchall()
        refusals = db.execute(
            "SELECT object_type, object_id, place, detail FROM audit WHERE action = 'keep-request-refused'"
        ).fetchall()
    assert [tuple(r) for r in stored] == [("Barnet", 1), ("Camden", 3)]
    assert [(r[0], r[1]) for r in refusals] == [("borough", "Camden")] * 4
    assert len({r[2] for r in refusals}) == 4 and all(re.fullmatch("public:[0-9a-f]{16}", r[2]) for r in refusals)
    assert all("someone@example.org" not in r[3] and "High Street" not in r[3] for r in refusals)
    clock.now += timedelta(minutes=1)
    with pytest.raises(BoroughFull) as refused:
        ask(requests, place="203.0.113.50")
    assert int(refused.value.headers["Retry-After"]) == 23 * 3600  # rounded up: no other requester's minute
    clock.now += timedelta(hours=23)  # the first request's 24 hours are over
    assert ask(requests, place="198.51.100.20").reference != first
    with pytest.raises(BoroughFull):
        ask(requests, place="198.51.100.21")
    flood = [r.reference for r in requests.queue("Camden")]
    requests.close_many(flood, "not_actionable", "a flood", "im.officer")  # the officers dealt with it
    assert ask(requests, place="198.51.100.22").state == "open"  # the borough's form takes requests again


def test_the_refusals_past_the_cap_are_throttled_like_requests(env):
    _store, _blobs, _retention, _requests, _clock = env
    requests = capped(env, 1)
    ask(requests, place="198.51.100.1")
    for _ in range(ADDRESS_FREE - 1):
        with pytest.raises(BoroughFull):
            ask(requests, place="203.0.113.9")
    with pytest.raises(BoroughFull):
        ask(requests, place="203.0.113.9")  # counted: the address's last before its wait
    with pytest.raises(TooManyRequests, match="too many requests from your address"):
        ask(requests, place="203.0.113.9")


def test_a_borough_takes_50_requests_a_day_unless_configured():
    assert KeepRequestSettings().per_borough_per_day == 50


def test_a_window_past_midnight_on_the_night_the_clocks_go_back_ends_when_it_was_typed(env):
    """25 October 2026: London goes from 02:00 BST back to 01:00 GMT. "23:00 to 04:00" on the 24th
    ends at 04:00 GMT on the 25th (04:00 UTC); the request keeps an hour beyond that (05:00 UTC)."""
    now = datetime(2026, 11, 1, 12, tzinfo=UTC)
    typed = {
        "borough": "Camden",
        "place": "High St",
        "date": "2026-10-24",
        "time_from": "23:00",
        "time_to": "04:00",
        "contact": "a@example.org",
    }
    parsed = parse_form(typed, ["Camden"], now)
    assert parsed.happened_from == datetime(2026, 10, 24, 22, tzinfo=UTC)  # 23:00 BST
    assert parsed.happened_to == datetime(2026, 10, 25, 4, tzinfo=UTC)  # 04:00 GMT, not 03:00
    ambiguous = parse_form({**typed, "date": "2026-10-25", "time_from": "01:30", "time_to": "01:45"}, ["Camden"], now)
    assert ambiguous.happened_from == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 01:30 BST, the first 01:30
    assert ambiguous.happened_to == datetime(2026, 10, 25, 1, 45, tzinfo=UTC)  # 01:45 GMT, the second 01:45
    spring = parse_form({**typed, "date": "2026-03-29", "time_from": "00:30", "time_to": "01:30"}, ["Camden"], now)
    assert spring.happened_to - spring.happened_from >= timedelta(hours=1)  # 01:30 never was: not shortened


def test_ipv4_clients_seen_through_a_dual_stack_socket_are_not_one_client(env):
    _store, _blobs, _retention, requests, _clock = env
    for n in range(ADDRESS_FREE):
        ask(requests, place=f"::ffff:203.0.113.{n}")  # five people, five IPv4 addresses
    assert ask(requests, place="::ffff:198.51.100.7").reference  # a sixth person, elsewhere on the internet


def test_two_requests_cannot_be_subtracted_to_count_deleted_recordings(env):
    store, _blobs, retention, requests, clock = env
    five = [clip(env, INCIDENT + timedelta(minutes=10 + m)) for m in range(5)]
    two = [clip(env, INCIDENT + timedelta(hours=3, minutes=m)) for m in range(2)]  # the ones to work out
    retention.assess()
    retention.run(T0 + timedelta(days=33))
    retention.run(T0 + timedelta(days=41))
    assert {state(store, c) for c in [*five, *two]} == {(1, 1)}
    clock.now = T0 + timedelta(days=45)
    wide = ask(requests, start=INCIDENT, hours=3, place="a")  # 20:00 to 01:00 kept: all seven
    narrow = ask(requests, start=INCIDENT, hours=1, place="b")  # 20:00 to 23:00: the five
    assert wide.state == narrow.state == "closed"
    assert wide.deleted == narrow.deleted and not re.search(r"\d+ recordings|fewer than", wide.deleted or "", re.I)
    notes = sorted((r.note or "").split(",")[0] for r in requests.queue(None, "closed"))  # the officer has counts
    assert notes == ["5 recordings had already been deleted", "7 recordings had already been deleted"]


def test_requests_on_deleted_footage_count_against_the_boroughs_day(env):
    _store, _blobs, retention, _requests, clock = env
    clip(env, INCIDENT + timedelta(minutes=10))
    retention.assess()
    retention.run(T0 + timedelta(days=33))
    retention.run(T0 + timedelta(days=41))  # purged
    clock.now = T0 + timedelta(days=45)
    requests = capped(env, 2)
    first, second = ask(requests, place="a"), ask(requests, place="b")
    assert first.state == second.state == "closed"
    with pytest.raises(BoroughFull):
        ask(requests, place="c")


def test_the_audit_keeps_a_pseudonym_of_the_day_never_the_requesters_address(env):
    store, _blobs, _retention, requests, clock = env
    clip(env, INCIDENT + timedelta(minutes=10))
    clock.now = INCIDENT + timedelta(days=1)
    ask(requests, place="2001:db8:1:2::7")
    ask(requests, place="2001:db8:1:2::8", start=INCIDENT + timedelta(hours=2))  # the same /64: one client
    ask(requests, place="198.51.100.4", start=INCIDENT + timedelta(hours=4))
    clock.now += timedelta(days=1)
    ask(requests, place="2001:db8:1:2::7", start=INCIDENT + timedelta(hours=6))  # the next day
    clock.now += timedelta(days=3)
    ask(requests, place="198.51.100.5", start=INCIDENT + timedelta(hours=8))
    with store.writer.read() as db:
        places = [r[0] for r in db.execute("SELECT place FROM audit WHERE action = 'keep-request' ORDER BY id")]
        everything = " ".join(str(v) for row in db.execute("SELECT * FROM audit") for v in row)
        keys = sorted(r[0] for r in db.execute("SELECT name FROM signing_keys WHERE name LIKE 'client_pseudonym:%'"))
    assert places[0] == places[1] and len(set(places)) == 4  # a /64 is one client, within its day only
    assert "2001:db8" not in everything and "198.51.100" not in everything
    assert keys == ["client_pseudonym:2026-01-06"]  # the earlier days' keys are gone: unlinkable
