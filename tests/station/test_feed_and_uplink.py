"""The station's two sync clients against the real central app (Litestar TestClient)."""

from datetime import timedelta

import httpx
import pytest
from litestar.testing import TestClient

from central.core.providers import services
from central.core.app import create_app
from fleet.clock import utc_now
from fleet.events import Officer
from station import outbox
from station.feed import FeedFollower
from station.mirror import Mirror
from station.outbox import Outbox
from station.uplink import EventSender
from tests.central.conftest import ADMIN, make_settings
from tests.central.fleetdata import docked
from tests.station.test_uploader import FAST

STATION = {"Authorization": "Bearer camden-test-token"}  # test value, not a secret


@pytest.fixture
def central(tmp_path):
    with TestClient(create_app(make_settings(tmp_path / "central", fleet={"change_history": 100})),
                    base_url="http://central.local") as client:
        yield client


def station_client(central, **kw):
    return httpx.Client(base_url="http://central.local", transport=central._transport, headers=STATION, **kw)


def test_an_expired_cursor_reloads_the_snapshot(central, store):
    central.post("/api/v1/officers/", headers=ADMIN,
                 json=[{"officer_id": f"PC{i}", "borough": "Camden"} for i in range(150)])
    services(central.app).changes.trim()
    mirror = Mirror(store.writer)
    mirror.apply([Officer(officer_id="GONE", borough="Camden")], cursor=3)  # an old cursor, a stale entry
    feed = FeedFollower(station_client(central), mirror, FAST, wait_s=0)
    assert feed.poll_once() == 150  # every Camden officer, via the snapshot
    assert mirror.officer("GONE") is None and mirror.officer("PC149") is not None
    assert mirror.cursor() > 3 and mirror.policy().min_checkout_pct == 80
    assert feed.poll_once() == 0


def test_events_go_up_and_failures_back_off(central, store):
    with store.writer.write() as db:
        outbox.append(db, [docked("BWV-1"), docked("BWV-2")])
    broken = EventSender(httpx.Client(base_url="http://127.0.0.1:9", timeout=0.5), store, FAST)
    report = broken.run_once()
    assert report.error and report.sent == 0
    assert broken.run_once().error is None and broken.run_once().sent == 0  # backing off: nothing tried
    sender = EventSender(station_client(central), store, FAST, batch_size=1)
    report = sender.run_once()
    assert (report.sent, report.acked_seq, report.error) == (2, 2, None)
    assert Outbox(store.writer).pending(10) == []
    services(central.app).events.apply_all()
    assert central.get("/api/v1/devices/BWV-2", headers=ADMIN).status_code == 200


def test_a_heartbeat_reports_the_backlog_and_the_clock_skew(central, store, monkeypatch):
    from station import uplink

    ahead = utc_now() + timedelta(hours=2)  # this station's clock is two hours fast
    monkeypatch.setattr(uplink, "utc_now", lambda: ahead)
    with store.writer.write() as db:
        outbox.append(db, [docked("BWV-1")], at=ahead)
    assert EventSender(station_client(central), store, FAST).run_once().acked_seq == 1
    camden = central.get("/api/v1/stations/camden", headers=ADMIN).json()
    assert camden["clock_skew_s"] == pytest.approx(7200, abs=60)
    assert not camden["stale"]  # judged by central's clock, not the station's
    [(seq, kind, station_at, _)] = services(central.app).events.events("camden")
    assert (seq, kind) == (1, "camera_docked") and station_at.startswith(ahead.strftime("%Y-%m-%dT%H"))


def test_a_permanent_refusal_is_reported(central, store, caplog):
    with store.writer.write() as db:
        outbox.append(db, [docked("BWV-1")])
    sender = EventSender(httpx.Client(base_url="http://central.local", transport=central._transport,
                                      headers={"Authorization": "Bearer wrong"}), store, FAST)
    report = sender.run_once()
    assert "401" in report.error and Outbox(store.writer).acked_seq() == 0


def test_after_central_is_restored_from_a_backup_the_newer_events_go_again(tmp_path, store):
    import shutil

    settings = make_settings(tmp_path / "central")
    with store.writer.write() as db:
        outbox.append(db, [docked("BWV-1"), docked("BWV-2")])
    with TestClient(create_app(settings), base_url="http://central.local") as central:
        EventSender(station_client(central), store, FAST).run_once()
    backup = tmp_path / "backup"
    shutil.copytree(tmp_path / "central", backup)
    with store.writer.write() as db:
        outbox.append(db, [docked("BWV-3")])
    with TestClient(create_app(settings), base_url="http://central.local") as central:
        assert EventSender(station_client(central), store, FAST).run_once().acked_seq == 3
    shutil.rmtree(tmp_path / "central")
    shutil.copytree(backup, tmp_path / "central")  # central loses seq 3
    with store.writer.write() as db:
        outbox.append(db, [docked("BWV-4")])
    with TestClient(create_app(settings), base_url="http://central.local") as central:
        sender = EventSender(station_client(central), store, FAST)
        sender.run_once()
        assert sender.run_once(force=True).acked_seq == 4
        assert [seq for seq, *_ in services(central.app).events.events("camden")] == [1, 2, 3, 4]


def test_a_station_restored_from_a_backup_holds_its_new_events_back(central, store, tmp_path):
    with store.writer.write() as db:
        outbox.append(db, [docked("BWV-1"), docked("BWV-2")])
    EventSender(station_client(central), store, FAST).run_once()
    with store.writer.write() as db:  # the restored database "forgot" seq 2 and writes a new one there
        db.execute("DELETE FROM outbox WHERE seq = 2")
        db.execute("UPDATE sqlite_sequence SET seq = 1 WHERE name = 'outbox'")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'outbox_acked_seq'")
    report = EventSender(station_client(central), store, FAST).run_once()
    assert report.error and ("409" in report.error or "restored or replaced" in report.error)
    with store.writer.write() as db:
        outbox.append(db, [docked("BWV-NEW")])
    report = EventSender(station_client(central), store, FAST).run_once()
    assert report.error and [b for *_, b in services(central.app).events.events("camden") if b"BWV-NEW" in b] == []


def _scripted_feed(store, pages, linger_s):
    """A follower whose central answers ``pages`` in turn (then empty pages); returns it and the request times."""
    import threading
    import time

    asked: list[float] = []
    lock = threading.Lock()

    def answer(request: httpx.Request) -> httpx.Response:
        with lock:
            asked.append(time.monotonic())
            index = len(asked) - 1
        since = int(request.url.params["since"])
        page = pages[index] if index < len(pages) else {"changes": [], "cursor": since, "more": False}
        return httpx.Response(200, json=page)

    client = httpx.Client(base_url="http://central.local", transport=httpx.MockTransport(answer))
    return FeedFollower(client, Mirror(store.writer), FAST, wait_s=0.01, linger_s=linger_s), asked


def _officer_page(cursor, more):
    return {"changes": [{"cursor": cursor, "item": {"kind": "officer", "officer_id": f"PC{cursor}",
                                                    "borough": "Camden"}}], "cursor": cursor, "more": more}


def _follow_until(feed, asked, count, timeout=10.0):
    import threading
    import time

    thread = threading.Thread(target=feed.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while len(asked) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    feed.stopping.set()
    thread.join(timeout=5)
    return len(asked) >= count


def test_after_a_page_of_changes_the_feed_lingers_before_asking_again(store):
    feed, asked = _scripted_feed(store, [_officer_page(1, more=False)], linger_s=0.3)
    assert _follow_until(feed, asked, 2)
    assert asked[1] - asked[0] >= 0.3  # the burst was given time to gather
    assert feed.mirror.officer("PC1") is not None


def test_a_page_that_says_more_is_followed_at_once_whatever_the_linger(store):
    feed, asked = _scripted_feed(store, [_officer_page(1, more=True), _officer_page(2, more=False)], linger_s=60)
    assert _follow_until(feed, asked, 2)  # with the 60 s linger after a "more" page this would time out


def test_an_event_central_refuses_does_not_jam_the_outbox(central, store):
    """A camera of Barnet's docked at this Camden station: central refuses that claim when it applies
    it, but it was stored and acknowledged, so the outbox moves on and later events go up and apply."""
    central.post("/api/v1/devices/", headers=ADMIN, json=[{"serial": "BAR-1", "borough": "Barnet"}])
    with store.writer.write() as db:
        outbox.append(db, [docked("BAR-1"), docked("BWV-1")])
    sender = EventSender(station_client(central), store, FAST)
    assert sender.run_once().acked_seq == 2
    services(central.app).events.apply_all()
    with store.writer.write() as db:
        outbox.append(db, [docked("BWV-2")])
    report = sender.run_once()
    assert (report.sent, report.acked_seq, report.error) == (1, 3, None)
    assert Outbox(store.writer).pending(10) == []
    services(central.app).events.apply_all()
    camden = central.get("/api/v1/stations/camden", headers=ADMIN).json()
    assert (camden["applied_seq"], camden["refused_events"]) == (3, 1)
    assert central.get("/api/v1/devices/BWV-2", headers=ADMIN).status_code == 200
    assert central.get("/api/v1/devices/BAR-1", headers=ADMIN).json()["device"]["last_station"] is None
