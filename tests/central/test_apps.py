"""The tests' app pool (tests/central/apps.py): a reused app serves the new test's settings, not the last's."""

from __future__ import annotations

from central.core.providers import settings_of
from tests.central.apps import app_for, central_client
from tests.central.conftest import ADMIN, make_settings

OTHER = {"Authorization": "Bearer other-test-token"}  # a test value, not a secret
HEARTBEAT = b'{"sent_at": "2026-12-06T06:00:00Z", "events": []}'


def test_an_app_started_again_serves_the_new_settings_stations_and_folder(tmp_path):
    first = make_settings(tmp_path / "first")
    second = make_settings(
        tmp_path / "second",
        admin_token="other-admin-test-token",
        stations={"other": {"borough": "Barnet", "token": "other-test-token"}},
    )
    with central_client(first) as client:
        built = client.app
        assert client.get("/api/v1/stations", headers=ADMIN).status_code == 200
        assert client.post("/api/v1/events/", headers=OTHER, content=HEARTBEAT).status_code == 401
    with central_client(second) as client:
        assert client.app is built  # the same routes, started on the second settings
        assert settings_of(client.app) is second
        assert client.get("/api/v1/stations", headers=ADMIN).status_code == 401  # the first's admin token
        assert client.post("/api/v1/events/", headers=OTHER, content=HEARTBEAT).status_code == 200
        assert (
            client.get("/api/v1/stations", headers={"Authorization": "Bearer other-admin-test-token"}).json()[0][
                "station_id"
            ]
            == "other"
        )  # the second's database: the first's stations are not in it


def test_other_limits_are_another_app_and_a_serving_app_is_never_handed_out(tmp_path):
    settings = make_settings(tmp_path / "a")
    with app_for(settings) as one, central_client(make_settings(tmp_path / "b")) as serving:
        assert serving.app is not one  # ``one`` is out of the pool until its block ends
    with app_for(make_settings(tmp_path / "c", limits={"events_in_flight": 3})) as narrow:
        assert narrow is not one and narrow is not serving.app
