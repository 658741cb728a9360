"""The alert jobs as central runs them: elected, scheduled, and sending to a real receiver."""

import time

import pytest

from central.core.providers import services
from fleet.clock import utc_now
from tests.central.alerts.conftest import SECRET
from tests.central.apps import central_client
from tests.central.conftest import make_settings


@pytest.mark.slow
def test_a_running_central_sends_its_digest_through_the_elected_job(tmp_path, receiver):
    """Stations never heard from are silent: the digest job (moved to now rather than waiting its
    first minute) tells the destination, through the leader's scheduler and executor."""
    settings = make_settings(
        tmp_path / "central",
        alerts={"destinations": {"ops": {"webhook_url": receiver.url, "secret": SECRET}}},
    )
    with central_client(settings, raise_server_exceptions=False) as client:
        scheduler = services(client.app).scheduler
        assert {"alerts-digest", "alerts-deliver"} <= {job.id for job in scheduler.get_jobs()}
        scheduler.modify_job("alerts-digest", next_run_time=utc_now())
        deadline = time.monotonic() + 30
        while not receiver.taken and time.monotonic() < deadline:
            time.sleep(0.05)
    assert receiver.taken, "no digest arrived within 30 s"
    digest = receiver.taken[0]
    assert digest.destination == "ops"
    assert {(i.kind, i.borough) for i in digest.items} >= {("station_silent", "Camden"), ("station_silent", "Barnet")}
    assert receiver.refused == 0


def test_without_destinations_no_alert_job_is_scheduled(client):
    assert not {j.id for j in services(client.app).scheduler.get_jobs()} & {"alerts-digest", "alerts-deliver"}
