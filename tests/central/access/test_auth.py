"""Who may call what: 401 without a known token, 403 with the wrong rights (docs/contracts.md §5)."""

import os

import pytest

from tests.central.apps import central_client
from tests.central.conftest import ADMIN, BARNET, CAMDEN, TUS, create, make_settings

ROUTES = [
    ("GET", "/api/v1/clips"),
    ("GET", "/api/v1/clips/6f1c1d3e-8a7b-4c2d-9e0f-1a2b3c4d5e6f"),
    ("GET", "/api/v1/clips/6f1c1d3e-8a7b-4c2d-9e0f-1a2b3c4d5e6f/content"),
    ("OPTIONS", "/api/v1/uploads/"),
    ("POST", "/api/v1/uploads/"),
    ("HEAD", "/api/v1/uploads/" + "0" * 32),
    ("PATCH", "/api/v1/uploads/" + "0" * 32),
    ("DELETE", "/api/v1/uploads/" + "0" * 32),
    ("POST", "/api/v1/events/"),
    ("GET", "/api/v1/changes/"),
    ("GET", "/api/v1/changes/snapshot"),
    ("GET", "/api/v1/devices/"),
    ("GET", "/api/v1/devices/BWV-1"),
    ("POST", "/api/v1/devices/"),
    ("POST", "/api/v1/devices/BWV-1/lifecycle"),
    ("GET", "/api/v1/officers/"),
    ("GET", "/api/v1/officers/PC1"),
    ("GET", "/api/v1/officers/export.csv"),
    ("POST", "/api/v1/officers/"),
    ("POST", "/api/v1/officers/import.csv"),
    ("GET", "/api/v1/assignments"),
    ("POST", "/api/v1/assignments"),
    ("POST", "/api/v1/assignments/BWV-1/end"),
    ("GET", "/api/v1/conflicts"),
    ("POST", "/api/v1/conflicts/1/resolve"),
    ("GET", "/api/v1/unattributed"),
    ("GET", "/api/v1/clips/x/attribution"),
    ("POST", "/api/v1/clips/x/attribution"),
    ("GET", "/api/v1/stations/"),
    ("GET", "/api/v1/stations/camden"),
]

STATION_FORBIDDEN = [
    ("POST", "/api/v1/devices/"),
    ("POST", "/api/v1/devices/BWV-1/lifecycle"),
    ("POST", "/api/v1/officers/"),
    ("POST", "/api/v1/officers/import.csv"),
    ("POST", "/api/v1/assignments"),
    ("POST", "/api/v1/assignments/BWV-1/end"),
    ("GET", "/api/v1/conflicts"),
    ("POST", "/api/v1/conflicts/1/resolve"),
    ("GET", "/api/v1/unattributed"),
    ("GET", "/api/v1/clips/x/attribution"),
    ("POST", "/api/v1/clips/x/attribution"),
    ("GET", "/api/v1/stations/"),
    ("GET", "/api/v1/stations/barnet"),
    ("GET", "/api/v1/devices/?borough=Barnet"),
    ("GET", "/api/v1/officers/?borough=Barnet"),
    ("GET", "/api/v1/changes/?borough=Barnet"),
]


@pytest.fixture(scope="module")
def refusing(tmp_path_factory):
    """One central for the refusals below: each is refused before it could change anything, and
    none is about the database (so they run on SQLite only), so one app serves them all."""
    settings = make_settings(tmp_path_factory.mktemp("refusing") / "central", database={})  # SQLite whatever ran before
    with central_client(settings, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.sqlite_only
@pytest.mark.parametrize("method, path", STATION_FORBIDDEN)
def test_stations_may_not_administer_or_look_beyond_their_borough(refusing, method, path):
    r = refusing.request(method, path, headers=CAMDEN, json={})
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "forbidden"


@pytest.mark.sqlite_only
@pytest.mark.parametrize("method, path", ROUTES)
@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic YTpi"}, {"Authorization": "Bearer "}]
)
def test_every_route_needs_a_known_token(refusing, method, path, headers):
    r = refusing.request(method, path, headers={**headers, **TUS})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
    if method != "HEAD":
        assert r.json()["error"] == "unauthorized"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/clips",
        "/api/v1/clips/6f1c1d3e-8a7b-4c2d-9e0f-1a2b3c4d5e6f",
        "/api/v1/clips/6f1c1d3e-8a7b-4c2d-9e0f-1a2b3c4d5e6f/content",
    ],
)
def test_stations_may_not_read_clips(client, path):
    assert client.get(path, headers=CAMDEN).status_code == 403
    assert client.get(path, headers=ADMIN).status_code in (200, 404)


def test_healthz_needs_no_token(client):
    assert client.get("/healthz").json()["status"] == "ok"


def test_stations_touch_only_their_own_uploads_and_admin_any(client):
    data = os.urandom(100)
    location = create(client, data, headers=CAMDEN).headers["Location"]
    assert client.head(location, headers={**BARNET, **TUS}).status_code == 403
    assert client.head(location, headers={**ADMIN, **TUS}).status_code == 200
    assert client.head(location, headers={**CAMDEN, **TUS}).status_code == 200


def test_tokens_are_not_kept_in_memory_in_clear(settings):
    from central.access.auth import TokenRegistry

    registry = TokenRegistry(settings)
    assert all(len(known) == 32 for known, _ in registry._entries)
    assert b"camden-test-token" not in repr(registry._entries).encode()


def test_a_station_token_rotation_accepts_the_new_token_beside_the_old(tmp_path):
    import hashlib

    from central.access.auth import TokenRegistry
    from fleet.errors import Unauthorized
    from tests.central.conftest import make_settings

    settings = make_settings(
        tmp_path,
        stations={
            "camden": {
                "borough": "Camden",
                "token": "camden-test-token",
                "next_token_sha256": hashlib.sha256(b"camden-new-token").hexdigest(),
            }
        },
    )
    registry = TokenRegistry(settings)
    old, new = registry.resolve("Bearer camden-test-token"), registry.resolve("Bearer camden-new-token")
    assert old == new and new.station_id == "camden" and new.borough == "Camden"
    with pytest.raises(Unauthorized):
        registry.resolve("Bearer barnet-new-token")


def test_a_station_token_rotation_through_the_app_ends_with_the_old_token_refused(tmp_path):
    # SECURITY.md's procedure, step by step, as central's config and its HTTP answers see it.
    import hashlib

    from tests.central.conftest import make_settings

    old, new = {"Authorization": "Bearer camden-test-token"}, {"Authorization": "Bearer camden-new-token"}
    new_hash = hashlib.sha256(b"camden-new-token").hexdigest()

    def answers(station: dict) -> dict[str, int]:
        settings = make_settings(tmp_path / "central", stations={"camden": station})
        with central_client(settings, raise_server_exceptions=False) as client:
            return {
                name: client.get("/api/v1/stations/camden", headers=headers).status_code
                for name, headers in (("old", old), ("new", new))
            }

    assert answers({"borough": "Camden", "token": "camden-test-token"}) == {"old": 200, "new": 401}
    # 1. the new token's hash beside the old token: both work
    assert answers({"borough": "Camden", "token": "camden-test-token", "next_token_sha256": new_hash}) == {
        "old": 200,
        "new": 200,
    }
    # 3. the new hash moved to token_sha256, next_token_sha256 gone: the old token is refused
    assert answers({"borough": "Camden", "token_sha256": new_hash}) == {"old": 401, "new": 200}
