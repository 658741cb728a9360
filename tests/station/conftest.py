import os
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tenacity.wait import wait_none

from fleet.cipher import Keyring, SealedReader
from fleet.retry import RetryPolicy
from station.store import StationStore

TEST_KEY = bytes.fromhex("7e57" * 16)
"""The station key of test stations: a test value, not a secret."""
TEST_KEYS = Keyring(TEST_KEY)


def key_file(folder) -> str:
    """A file holding the test key, readable by its owner only, as a station's key file must be."""
    path = Path(folder) / "station.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, TEST_KEY.hex().encode() + b"\n")
        os.close(fd)
    return str(path)


def station_store(data_dir, keys=TEST_KEYS) -> StationStore:
    """A test station's store, holding the test key."""
    return StationStore(data_dir, keys=keys)


def plain_copy(store: StationStore, clip_id: str) -> bytes:
    """The original bytes of a clip's local copy (opened with the store's keys when sealed)."""
    clip_id, size, local_path, wrapped_by, wrapped_key = store.db.execute(
        "SELECT clip_id, size, local_path, wrapped_by, wrapped_key FROM clips WHERE clip_id = ?", [clip_id]
    ).fetchone()
    path = store.local_path(local_path)
    if wrapped_key is None:
        return path.read_bytes()
    data_key = store.keys.unwrap(wrapped_by, wrapped_key, clip_id)
    with SealedReader(path, data_key, clip_id, size) as sealed:
        return b"".join(sealed.read_range(0, size, 1 << 20))


@pytest.fixture
def store(tmp_path):
    s = station_store(tmp_path / "data")
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
