"""Property: whatever the mix of new events, lost requests, lost replies, duplicated and
replayed (reordered) batches, station and central crashes and offline periods, central's
event log ends equal to the station's (same seqs, same bytes; no gaps, no duplicates), and
the station's mirror ends equal to central's view of its borough.

The real central app (Litestar TestClient, real SQLite files that survive its "crashes")
and the real station code (outbox, EventSender, FeedFollower, Mirror) talk over an httpx
transport that injects the faults.
"""

import random
import shutil
import tempfile
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from litestar.testing import TestClient

from central.core.providers import services
from fleet.clock import from_iso
from fleet.events import BadFolder, CheckedIn, CheckedOut, Event
from station.sync.changes import FeedFollower
from station.sync.events import EventSender
from tests.central.apps import app_for
from tests.central.conftest import ADMIN, make_settings
from tests.central.fleetdata import docked
from tests.station.conftest import FAST, station_store

STATION_TOKEN = "camden-test-token"  # test value, not a secret


class FaultyTransport(httpx.BaseTransport):
    """Delegates to central's test transport; can drop a request, lose a reply or send twice."""

    def __init__(self, machine: "TwoWaySync") -> None:
        self.machine = machine
        self.mode = "ok"
        self.sent: list[tuple[str, bytes]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        m = self.machine
        if m.offline or self.mode == "drop":
            raise httpx.ConnectError("network down")
        request.read()
        if request.method == "POST":
            self.sent.append((str(request.url), request.content))
        response = m.central._transport.handle_request(request)
        if self.mode == "duplicate":
            response = m.central._transport.handle_request(request)
        if self.mode == "lose_reply":
            raise httpx.ReadError("connection reset before the reply")
        return response


class TwoWaySync(RuleBasedStateMachine):
    base: Path | None = None
    """The folder the runs' folders are made in (pytest's, while the module runs)."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="two-way-sm-", dir=TwoWaySync.base))
        # Central's app, started again after each crash (the end of its lifespan; all central keeps
        # between requests is opened there, from its files) and handed on to the next run.
        self.central_app_for = app_for(make_settings(self.root / "central"))
        self.central_app = self.central_app_for.__enter__()
        self.central = TestClient(self.central_app, base_url="http://central.local")
        self.central.__enter__()
        self.offline = False
        self.transport = FaultyTransport(self)
        self.rng = random.Random(7)
        self.officer_ids: list[str] = []
        self._open_station()

    def _open_station(self) -> None:
        self.store = station_store(self.root / "station")
        self.client = httpx.Client(
            base_url="http://central.local",
            transport=self.transport,
            headers={"Authorization": f"Bearer {STATION_TOKEN}"},
        )
        self.uplink = EventSender(self.client, self.store, FAST)
        self.mirror = self.store.mirror
        self.feed = FeedFollower(self.client, self.mirror, FAST, wait_s=0)

    def teardown(self) -> None:
        self.client.close()
        self.store.close()
        self.central.__exit__(None, None, None)
        self.central_app_for.__exit__(None, None, None)
        shutil.rmtree(self.root, ignore_errors=True)

    # -- the station changes things (each change writes its events in one transaction) ----------

    @rule(count=st.integers(1, 12), kind=st.sampled_from(["docked", "checkout", "bad_folder"]))
    def station_changes(self, count: int, kind: str) -> None:
        events: list[Event] = []
        for i in range(count):
            serial = f"BWV-{self.rng.randrange(6)}"
            if kind == "docked":
                events.append(docked(serial, self.rng.uniform(-48, 48), clips=self.rng.randrange(3)))
            elif kind == "checkout":
                officer = f"PC{self.rng.randrange(5)}"
                out_and_back: list[Event] = [
                    CheckedOut(device_serial=serial, officer_id=officer),
                    CheckedIn(device_serial=serial, officer_id=officer),
                ]
                events += out_and_back[: self.rng.randrange(1, 3)]
            else:
                events.append(BadFolder(folder=f"f{i}", reason="device.json: not JSON"))
        self.store.outbox.append(events)

    # -- sending up, with faults -----------------------------------------------------------------

    @rule(mode=st.sampled_from(["ok", "ok", "drop", "lose_reply", "duplicate"]), batch=st.integers(1, 20))
    def send(self, mode: str, batch: int) -> None:
        self.transport.mode = mode
        self.uplink.batch_size = batch
        self.uplink.run_once(force=True)
        self.transport.mode = "ok"

    @rule(data=st.data())
    def replay_an_old_batch(self, data) -> None:
        """A delayed copy of an earlier request arrives late (a reordering on the network)."""
        batches = [(url, body) for url, body in self.transport.sent if url.endswith("/api/v1/events/")]
        if batches and not self.offline:
            _url, body = data.draw(st.sampled_from(batches))
            r = self.central.post("/api/v1/events/", content=body, headers={"Authorization": f"Bearer {STATION_TOKEN}"})
            assert r.status_code == 200, r.text

    @rule()
    def go_offline(self) -> None:
        self.offline = True

    @rule()
    def come_back(self) -> None:
        self.offline = False

    @rule()
    def station_crashes(self) -> None:
        self.client.close()
        self.store.close()
        self._open_station()

    @rule()
    def central_crashes(self) -> None:
        self.central.__exit__(None, None, None)
        self.central = TestClient(self.central_app, base_url="http://central.local")
        self.central.__enter__()

    # -- changes coming down ---------------------------------------------------------------------

    @rule(count=st.integers(1, 5), borough=st.sampled_from(["Camden", "Camden", "Barnet"]))
    def central_changes_officers(self, count: int, borough: str) -> None:
        rows = []
        for _ in range(count):
            officer_id = f"PC{self.rng.randrange(40)}"
            rows.append({"officer_id": officer_id, "borough": borough, "team": f"T{self.rng.randrange(3)}"})
        unique = list({r["officer_id"]: r for r in rows}.values())
        assert self.central.post("/api/v1/officers/", json=unique, headers=ADMIN).status_code == 200

    @rule(mode=st.sampled_from(["ok", "ok", "drop", "lose_reply"]))
    def poll_feed(self, mode: str) -> None:
        self.transport.mode = mode
        try:
            self.feed.poll_once(wait_s=0)
        except httpx.TransportError:
            pass  # the follower's loop backs off and asks again from the same cursor
        self.transport.mode = "ok"

    # -- what must always hold -------------------------------------------------------------------

    def central_log(self):
        return services(self.central.app).events.events("camden")

    @invariant()
    def central_holds_a_gap_free_prefix_of_the_station_log(self) -> None:
        station = {seq: (kind, from_iso(at), body) for seq, kind, at, body in self.store.outbox.events()}
        central = self.central_log()
        seqs = [seq for seq, *_ in central]
        assert len(seqs) == len(set(seqs))
        with services(self.central.app).store.writer.read() as db:
            acked = db.execute(
                "SELECT COALESCE(MAX(acked_seq), 0) FROM stations WHERE station_id = 'camden'"
            ).fetchone()[0]
        assert seqs[:acked] == list(range(1, acked + 1))  # applied and acknowledged: no gaps
        for seq, kind, at, body in central:
            assert station[seq] == (kind, from_iso(at), body)
        assert self.store.outbox.acked_seq() <= acked

    def teardown_check(self) -> None:
        self.offline = False
        self.transport.mode = "ok"
        for _ in range(100):
            self.uplink.run_once(force=True)
            if not self.store.outbox.pending(1):
                break
        station = [(seq, kind, from_iso(at), body) for seq, kind, at, body in self.store.outbox.events()]
        assert [(seq, kind, from_iso(at), body) for seq, kind, at, body in self.central_log()] == station
        while self.feed.poll_once(wait_s=0):
            pass
        mirrored = {
            o.officer_id: (o.borough, o.team)
            for o in (self.mirror.officer(r[0]) for r in self.store.db.execute("SELECT officer_id FROM officers"))
        }
        camden = {
            r["officer_id"]: (r["borough"], r["team"])
            for r in self.central.get(
                "/api/v1/officers/", params={"borough": "Camden", "limit": 1000}, headers=ADMIN
            ).json()["items"]
        }
        assert {k: v for k, v in mirrored.items() if v[0] == "Camden"} == camden


class TwoWaySyncMachine(TwoWaySync):
    def teardown(self) -> None:
        try:
            self.teardown_check()
        finally:
            super().teardown()


@pytest.fixture(autouse=True, scope="module")
def _runs_in_the_tests_folder(tmp_path_factory):
    TwoWaySync.base = tmp_path_factory.mktemp("two-way")
    yield
    TwoWaySync.base = None


TwoWaySyncMachine.TestCase.settings = settings(
    max_examples=20, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestTwoWaySync = pytest.mark.slow(TwoWaySyncMachine.TestCase)  # many runs of two processes' state: not in test-fast
