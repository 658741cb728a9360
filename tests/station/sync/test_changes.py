"""Changes down: the feed into the mirror, against the real central app or a scripted one."""

import threading
import time

import httpx
import msgspec

from central.core.providers import services
from fleet.events import Officer
from station.sync.changes import FeedFollower, _page_decoder, known_items
from tests.central.conftest import ADMIN
from tests.station.conftest import FAST
from tests.station.sync.conftest import station_client


def test_an_expired_cursor_reloads_the_snapshot(central, store):
    central.post(
        "/api/v1/officers/", headers=ADMIN, json=[{"officer_id": f"PC{i}", "borough": "Camden"} for i in range(150)]
    )
    services(central.app).changes.trim()
    mirror = store.mirror
    mirror.apply([Officer(officer_id="GONE", borough="Camden")], cursor=3)  # an old cursor, a stale entry
    feed = FeedFollower(station_client(central), mirror, FAST, wait_s=0)
    assert feed.poll_once() == 150  # every Camden officer, via the snapshot
    assert mirror.officer("GONE") is None and mirror.officer("PC149") is not None
    assert mirror.cursor() > 3 and mirror.policy().min_checkout_pct == 80
    assert feed.poll_once() == 0


def test_a_change_kind_this_station_does_not_know_is_skipped(store):
    body = msgspec.json.encode(
        {
            "cursor": 3,
            "changes": [
                {"cursor": 1, "item": {"kind": "firmware_target", "model": "Axon Body 2", "version": "2.0"}},
                {"cursor": 2, "item": {"kind": "clip_hold", "clip_id": "c1", "held": True}},
            ],
        }
    )
    items = known_items(_page_decoder.decode(body))
    assert [type(i).__name__ for i in items] == ["ClipHold"]


def _scripted_feed(store, pages, linger_s):
    """A follower whose central answers ``pages`` in turn (then empty pages); returns it and the request times."""
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
    return FeedFollower(client, store.mirror, FAST, wait_s=0.01, linger_s=linger_s), asked


def _officer_page(cursor, more):
    return {
        "changes": [{"cursor": cursor, "item": {"kind": "officer", "officer_id": f"PC{cursor}", "borough": "Camden"}}],
        "cursor": cursor,
        "more": more,
    }


def _follow_until(feed, asked, count, timeout=10.0):
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
