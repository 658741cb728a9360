import pytest

from tests.central.conftest import central_store


@pytest.fixture
def two_replicas(tmp_path):
    """Two central processes' stores on one database (one data folder: one SQLite file or database)."""
    stores = [central_store(tmp_path / "central") for _ in range(2)]
    yield stores
    for store in stores:
        store.close()
