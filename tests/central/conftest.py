import base64
import hashlib
import os
import uuid

import pytest

from central.core.store import CentralStore
from fleet.config import CentralSettings, settings_from_dict
from fleet.protocol import UploadMetadata, encode_upload_metadata
from tests.central.apps import central_client
from tests.station.conftest import RECORDED
from tests.support.databases import BACKEND, BACKENDS

ADMIN = {"Authorization": "Bearer admin-test-token"}  # test values, not secrets
CAMDEN = {"Authorization": "Bearer camden-test-token"}
BARNET = {"Authorization": "Bearer barnet-test-token"}
KENTISH = {"Authorization": "Bearer kentish-test-token"}
"""A second station of Camden's."""
TUS = {"Tus-Resumable": "1.0.0"}
TEST_SIGNING_KEY_ENV = "FLEET_TEST_DISCLOSURE_KEY"
os.environ.setdefault(TEST_SIGNING_KEY_ENV, "7e57" * 16)  # a TEST Ed25519 seed, not a secret


def pytest_generate_tests(metafunc):
    """Every central test runs on each database in BACKENDS, but for those marked ``sqlite_only``
    or ``postgresql_only`` (those are also ``slow``: the quick lane runs SQLite only)."""
    if "database" in metafunc.fixturenames:
        if metafunc.definition.get_closest_marker("sqlite_only"):
            backends = ["sqlite"]
        elif metafunc.definition.get_closest_marker("postgresql_only"):
            backends = ["postgresql"]
        else:
            backends = list(BACKENDS)
        metafunc.parametrize("database", backends, indirect=True)


@pytest.fixture(scope="session", autouse=True)
def _stop_postgres():
    """This worker's PostgreSQL, if a test started it, stops with the session."""
    yield
    BACKEND.stop()


@pytest.fixture(autouse=True)
def database(request):
    """The database this run of the test uses (``tests/support/databases.py``)."""
    BACKEND.use(request.param)
    yield BACKEND
    BACKEND.finish_test()


def central_store(data_dir) -> CentralStore:
    """Central's store on this test's database (two calls on one folder: one database)."""
    return CentralStore(data_dir, BACKEND.url_for(data_dir))


def make_settings(data_dir, **overrides) -> CentralSettings:
    url = BACKEND.url_for(data_dir)
    if url is not None:
        overrides.setdefault("database", {"url": url})
    # Every replica of a real cluster is given one signing key; so is every test's central.
    overrides.setdefault("disclosure", {"signing_key": {"env": TEST_SIGNING_KEY_ENV}})
    return settings_from_dict(
        {
            "data_dir": str(data_dir),
            "admin_token": "admin-test-token",
            "stations": {
                "camden": {"borough": "Camden", "token": "camden-test-token"},
                "kentish": {"borough": "Camden", "token": "kentish-test-token"},
                "barnet": {"borough": "Barnet", "token_sha256": hashlib.sha256(b"barnet-test-token").hexdigest()},
            },
            **overrides,
        },
        CentralSettings,
    )


def config_file(tmp_path, extra: str = "") -> str:
    """central.toml for a ``fleet central`` command on the test's central (data under
    ``tmp_path / "central"``, as ``settings`` puts it, on the test's database), then ``extra``."""
    data_dir = tmp_path / "central"
    database = BACKEND.url_for(data_dir)
    path = tmp_path / "central.toml"
    path.write_text(
        f'data_dir = "{data_dir}"\nadmin_token = "admin-test-token"\n'
        + (f'[database]\nurl = "{database}"\n' if database else "")
        + extra
    )
    return str(path)


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path / "central")


@pytest.fixture
def client(settings):
    with central_client(settings, raise_server_exceptions=False) as c:
        yield c


def metadata(data: bytes, clip_id: str | None = None, **extra) -> str:
    return encode_upload_metadata(
        UploadMetadata(
            clip_id=uuid.UUID(clip_id) if clip_id else uuid.uuid4(),
            sha256=hashlib.sha256(data).hexdigest(),
            device_serial="BWV-000123",
            recorded_at=RECORDED,
            filename="clip.mp4",
            **extra,
        )
    )


def create(client, data: bytes, headers=CAMDEN, clip_id: str | None = None, length: int | None = None):
    return client.post(
        "/api/v1/uploads/",
        headers={
            **headers,
            **TUS,
            "Upload-Length": str(len(data) if length is None else length),
            "Upload-Metadata": metadata(data, clip_id),
        },
    )


def checksum(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


def patch(client, location: str, offset: int, data: bytes, headers=CAMDEN, with_checksum=True, **extra):
    h = {**headers, **TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream", **extra}
    if with_checksum:
        h.setdefault("Upload-Checksum", checksum(data))
    return client.patch(location, content=data, headers=h)


@pytest.fixture
def blob():
    return os.urandom(300_000)
