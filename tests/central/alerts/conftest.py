from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from tenacity import wait_none

from central.core.services import Services, build_services
from central.registry import stations
from fleet.clock import to_iso
from fleet.retry import RetryPolicy
from tests.central.alerts.receivers import Mailbox, WebhookReceiver, smtp_server
from tests.central.conftest import central_store, make_settings

SECRET = "a-test-webhook-secret-of-40-characters!!"  # a test value, not a secret
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
FAST = RetryPolicy(initial_s=60.0, max_s=600.0, quick_attempts=2, quick_wait=wait_none(), sleep=lambda _s: None)
"""Quick retries without waiting; the persisted backoff as configured (the tests move the clock)."""


@contextmanager
def alert_services(data_dir, destinations: dict, **alerts) -> Iterator[Services]:
    settings = make_settings(data_dir, alerts={"destinations": destinations, **alerts})
    store = central_store(data_dir)
    try:
        services = build_services(settings, store)
        services.alerts.policy = FAST
        yield services
    finally:
        store.close()


def heard(services: Services, station_id: str, at: datetime) -> None:
    """The station sent a batch at ``at`` (its last contact)."""
    borough = services.settings.stations[station_id].borough
    with services.store.writer.write() as db:
        acked = stations.heard_from(db, station_id, borough)
        stations.note_batch(db, station_id, acked, to_iso(at), 0.0, None)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver(SECRET).start()
    yield hook
    hook.stop()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    server = smtp_server(box)
    box.port = server.port
    yield box
    server.stop()
