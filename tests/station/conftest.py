import random
from datetime import UTC, datetime

import pytest
from tenacity.wait import wait_none

from fleet.retry import RetryPolicy
from station.store import StationStore


@pytest.fixture
def store(tmp_path):
    s = StationStore(tmp_path / "data")
    yield s
    s.close()


@pytest.fixture
def dock_dir(tmp_path):
    d = tmp_path / "dock"
    d.mkdir()
    return d


@pytest.fixture
def rng():
    return random.Random(20261122)


RECORDED = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)

FAST = RetryPolicy(quick_attempts=3, quick_wait=wait_none(), sleep=lambda s: None)
"""Retries at once, for tests."""
