import httpx
import pytest

from tests.central.apps import central_client
from tests.central.conftest import make_settings

STATION = {"Authorization": "Bearer camden-test-token"}  # test value, not a secret


@pytest.fixture
def central(tmp_path):
    """The real central app, with a short change history (so a cursor can expire)."""
    with central_client(
        make_settings(tmp_path / "central", fleet={"change_history": 100}), base_url="http://central.local"
    ) as client:
        yield client


def station_client(central, **kw):
    """A station's client to ``central``, with the station's token."""
    return httpx.Client(base_url="http://central.local", transport=central._transport, headers=STATION, **kw)
