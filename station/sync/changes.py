"""Changes down: central's changes feed (long poll), followed into the station's mirror.

A thread of its own: each request may be held by central for ``wait`` seconds, which is
no work for a scheduler job. Each page is applied with its cursor in one transaction; a
cursor central no longer knows (410 ``cursor_expired``) makes the station reload the
snapshot. While central is away the thread backs off (full jitter) and the mirror keeps
serving the desk.
"""

from __future__ import annotations

import logging
import threading

import httpx
import msgspec

from fleet.errors import CursorExpired
from fleet.events import ChangeItem, Snapshot
from fleet.retry import RetryPolicy, as_transfer_error
from station.store.mirror import Mirror
from station.sync.errors import error_code, error_from_response

log = logging.getLogger(__name__)
CHANGES_PATH = "/api/v1/changes/"
SNAPSHOT_PATH = "/api/v1/changes/snapshot"


class _RawChange(msgspec.Struct):
    cursor: int
    item: msgspec.Raw


class _RawPage(msgspec.Struct):
    """A page whose items are decoded one by one, so a kind this station does not know (from a
    newer central) is skipped instead of stopping the feed."""

    changes: list[_RawChange]
    cursor: int
    more: bool = False


_page_decoder = msgspec.json.Decoder(_RawPage)
_item_decoder = msgspec.json.Decoder(ChangeItem)
_snapshot_decoder = msgspec.json.Decoder(Snapshot)


def known_items(page: _RawPage) -> list[ChangeItem]:
    items = []
    for change in page.changes:
        try:
            items.append(_item_decoder.decode(change.item))
        except msgspec.ValidationError as exc:
            log.warning("change %d skipped: %s (a newer central?)", change.cursor, exc)
    return items


class FeedFollower:
    def __init__(
        self, client: httpx.Client, mirror: Mirror, policy: RetryPolicy, *, wait_s: float = 20.0, linger_s: float = 0.0
    ) -> None:
        self.client = client
        self.mirror = mirror
        self.policy = policy
        self.wait_s = wait_s
        self.linger_s = linger_s
        self.caught_up = False
        """The last page was the end of the feed (not ``more``): the next one may linger."""
        self.applying = threading.Lock()
        """Held while a page is applied; the node takes it before closing the store."""
        self.stopping = threading.Event()
        self.applied = 0

    def poll_once(self, wait_s: float | None = None) -> int:
        """One request; apply what came (or reload the snapshot). Returns changes applied."""
        since = self.mirror.cursor()
        response = self.client.get(
            CHANGES_PATH,
            params={"since": since, "wait": self.wait_s if wait_s is None else wait_s},
            timeout=httpx.Timeout(30.0, read=(wait_s or self.wait_s) + 30.0),
        )
        if response.status_code == 410 and error_code(response) == CursorExpired.code:
            log.warning("feed cursor %d is older than central's history: reloading the snapshot", since)
            return self.reload()
        if response.status_code != 200:
            raise error_from_response(response)
        page = _page_decoder.decode(response.content)
        with self.applying:
            if self.stopping.is_set():
                return 0
            self.mirror.apply(known_items(page), page.cursor)
        self.applied += len(page.changes)
        self.caught_up = not page.more
        return len(page.changes)

    def reload(self) -> int:
        response = self.client.get(SNAPSHOT_PATH)
        if response.status_code != 200:
            raise error_from_response(response)
        snapshot = _snapshot_decoder.decode(response.content)
        with self.applying:
            if self.stopping.is_set():
                return 0
            self.mirror.replace(snapshot)
        count = len(snapshot.officers) + len(snapshot.devices) + len(snapshot.personal_issues)
        log.info("mirror reloaded from central's snapshot: %d entries, cursor %d", count, snapshot.cursor)
        return count

    def run(self) -> None:
        """Follow the feed until ``stopping`` is set."""
        failures = 0
        while not self.stopping.is_set():
            try:
                applied = self.poll_once()
                failures = 0
                if applied and self.caught_up and self.linger_s:
                    self.stopping.wait(self.linger_s)  # let the burst gather: one page, not a request each
            except Exception as exc:  # logged and retried with backoff; the mirror keeps serving
                if self.stopping.is_set():
                    return
                failures += 1
                error = as_transfer_error(exc)
                delay = self.policy.backoff_delay(failures, error)
                log.warning("changes feed: %s; retrying in %.1fs", error, delay)
                self.stopping.wait(delay)
