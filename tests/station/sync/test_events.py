"""Events up: the outbox against the real central app (Litestar TestClient)."""

from datetime import timedelta

import httpx
import pytest

from central.core.providers import services
from fleet.clock import utc_now
from station.sync.events import EventSender
from tests.central.apps import central_client
from tests.central.conftest import ADMIN, make_settings
from tests.central.fleetdata import docked
from tests.station.conftest import FAST
from tests.station.sync.conftest import station_client


def test_events_go_up_and_failures_back_off(central, store):
    store.outbox.append([docked("BWV-1"), docked("BWV-2")])
    broken = EventSender(httpx.Client(base_url="http://127.0.0.1:9", timeout=0.5), store, FAST)
    report = broken.run_once()
    assert report.error and report.sent == 0
    assert broken.run_once().error is None and broken.run_once().sent == 0  # backing off: nothing tried
    sender = EventSender(station_client(central), store, FAST, batch_size=1)
    report = sender.run_once()
    assert (report.sent, report.acked_seq, report.error) == (2, 2, None)
    assert store.outbox.pending(10) == []
    services(central.app).events.apply_all()
    assert central.get("/api/v1/devices/BWV-2", headers=ADMIN).status_code == 200


def test_a_heartbeat_reports_the_backlog_and_the_clock_skew(central, store, monkeypatch):
    from station.sync import events as uplink

    ahead = utc_now() + timedelta(hours=2)  # this station's clock is two hours fast
    monkeypatch.setattr(uplink, "utc_now", lambda: ahead)
    store.outbox.append([docked("BWV-1")], at=ahead)
    assert EventSender(station_client(central), store, FAST).run_once().acked_seq == 1
    camden = central.get("/api/v1/stations/camden", headers=ADMIN).json()
    assert camden["clock_skew_s"] == pytest.approx(7200, abs=60)
    assert not camden["stale"]  # judged by central's clock, not the station's
    [(seq, kind, station_at, _)] = services(central.app).events.events("camden")
    assert (seq, kind) == (1, "camera_docked") and station_at.startswith(ahead.strftime("%Y-%m-%dT%H"))


def test_a_permanent_refusal_is_reported(central, store, caplog):
    store.outbox.append([docked("BWV-1")])
    sender = EventSender(
        httpx.Client(
            base_url="http://central.local", transport=central._transport, headers={"Authorization": "Bearer wrong"}
        ),
        store,
        FAST,
    )
    report = sender.run_once()
    assert report.error is not None and "401" in report.error and store.outbox.acked_seq() == 0


def test_after_central_is_restored_from_a_backup_the_newer_events_go_again(tmp_path, store):
    import shutil

    settings = make_settings(tmp_path / "central")
    store.outbox.append([docked("BWV-1"), docked("BWV-2")])
    with central_client(settings, base_url="http://central.local") as central:
        EventSender(station_client(central), store, FAST).run_once()
    backup = tmp_path / "backup"
    shutil.copytree(tmp_path / "central", backup)
    store.outbox.append([docked("BWV-3")])
    with central_client(settings, base_url="http://central.local") as central:
        assert EventSender(station_client(central), store, FAST).run_once().acked_seq == 3
    shutil.rmtree(tmp_path / "central")
    shutil.copytree(backup, tmp_path / "central")  # central loses seq 3
    store.outbox.append([docked("BWV-4")])
    with central_client(settings, base_url="http://central.local") as central:
        sender = EventSender(station_client(central), store, FAST)
        sender.run_once()
        assert sender.run_once(force=True).acked_seq == 4
        assert [seq for seq, *_ in services(central.app).events.events("camden")] == [1, 2, 3, 4]


def test_a_station_restored_from_a_backup_holds_its_new_events_back(central, store, tmp_path):
    store.outbox.append([docked("BWV-1"), docked("BWV-2")])
    EventSender(station_client(central), store, FAST).run_once()
    with store.writer.write() as db:  # the restored database "forgot" seq 2 and writes a new one there
        db.execute("DELETE FROM outbox WHERE seq = 2")
        db.execute("UPDATE sqlite_sequence SET seq = 1 WHERE name = 'outbox'")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'outbox_acked_seq'")
    report = EventSender(station_client(central), store, FAST).run_once()
    assert report.error and ("409" in report.error or "restored or replaced" in report.error)
    store.outbox.append([docked("BWV-NEW")])
    report = EventSender(station_client(central), store, FAST).run_once()
    assert report.error and [b for *_, b in services(central.app).events.events("camden") if b"BWV-NEW" in b] == []


def test_an_event_central_refuses_does_not_jam_the_outbox(central, store):
    """A camera of Barnet's docked at this Camden station: central refuses that claim when it applies
    it, but it was stored and acknowledged, so the outbox moves on and later events go up and apply."""
    central.post("/api/v1/devices/", headers=ADMIN, json=[{"serial": "BAR-1", "borough": "Barnet"}])
    store.outbox.append([docked("BAR-1"), docked("BWV-1")])
    sender = EventSender(station_client(central), store, FAST)
    assert sender.run_once().acked_seq == 2
    services(central.app).events.apply_all()
    store.outbox.append([docked("BWV-2")])
    report = sender.run_once()
    assert (report.sent, report.acked_seq, report.error) == (1, 3, None)
    assert store.outbox.pending(10) == []
    services(central.app).events.apply_all()
    camden = central.get("/api/v1/stations/camden", headers=ADMIN).json()
    assert (camden["applied_seq"], camden["refused_events"]) == (3, 1)
    assert central.get("/api/v1/devices/BWV-2", headers=ADMIN).status_code == 200
    assert central.get("/api/v1/devices/BAR-1", headers=ADMIN).json()["device"]["last_station"] is None
