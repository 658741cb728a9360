"""The orphan sweep: artifact blobs no release names are deleted once older than the grace
period, on the filesystem and on S3, never one an addition is still completing."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from central.core.services import build_services
from central.core.store import CentralStore
from central.firmware.releases import BLOB_PREFIX
from fleet.errors import ServiceUnavailable
from tests.central.conftest import make_settings
from tests.central.firmware.conftest import LIMIT, audit_actions, sign
from tests.central.firmware.test_releases import add
from tests.support.s3server import s3_settings

DAY = 24 * 3600.0


@pytest.fixture(params=["filesystem", "s3"])
def backend(request, tmp_path, vendor):
    from fleet.firmware import public_key_hex

    extra = {"blobs": s3_settings()} if request.param == "s3" else {}
    settings = make_settings(
        tmp_path / "central",
        firmware={"release_keys": [public_key_hex(vendor.public_key())], "max_artifact_bytes": LIMIT},
        **extra,
    )
    store = CentralStore.open(settings)
    try:
        services = build_services(settings, store)
        services.blobs.check()
        yield request.param, services
    finally:
        store.close()


def orphan(services, tmp_path, data: bytes, age_s: float = 0.0) -> str:
    """A blob as a crash between an addition's put and its commit leaves it (aged, on the filesystem)."""
    sha = hashlib.sha256(data).hexdigest()
    path = tmp_path / f"{sha}.part"
    path.write_bytes(data)
    key = BLOB_PREFIX + sha
    services.blobs.put(path, key, sha)
    if age_s:
        stored = services.blobs.root / key[:2] / key
        os.utime(stored, (time.time() - age_s, time.time() - age_s))
    return key


def test_the_sweep_deletes_old_orphans_only_and_audits_each(backend, tmp_path, vendor):
    kind, services = backend
    data = os.urandom(2000)
    release, _ = add(services, tmp_path, data, sign(vendor, data))
    named = BLOB_PREFIX + release.sha256
    on_s3 = kind == "s3"  # S3 sets an object's time itself: a grace of 0 makes every orphan old there
    old = orphan(services, tmp_path, os.urandom(1000), age_s=0 if on_s3 else 2 * DAY)
    young = orphan(services, tmp_path, os.urandom(1000))
    grace = 0.0 if on_s3 else DAY

    dry = services.releases.sweep_orphans(grace, dry_run=True)
    assert sorted(dry.deleted) == (sorted([old, young]) if on_s3 else [old]) and dry.named == 1
    assert services.blobs.exists(old)

    if on_s3:  # the young one is kept under a grace period, whatever its backend
        kept = services.releases.sweep_orphans(3600.0)
        assert (kept.deleted, kept.young) == ([], 2)
    swept = services.releases.sweep_orphans(grace)
    assert old in swept.deleted and swept.deleted_bytes >= 1000 and not services.blobs.exists(old)
    assert services.blobs.exists(named) and b"".join(services.releases.artifact(release)) == data
    assert services.blobs.exists(young) != on_s3
    actions = audit_actions(services, "firmware_blob")
    assert [(a, key) for a, key, _ in actions] == [("firmware-orphan-deleted", k) for k in swept.deleted]
    assert services.releases.sweep_orphans(grace).deleted == []


@pytest.mark.parametrize("backend", ["filesystem"], indirect=True)  # a blob's age is set by hand there only
def test_an_orphan_readded_is_adopted_fresh_so_the_sweep_keeps_it(backend, tmp_path, vendor):
    _, services = backend
    data = os.urandom(1500)
    key = orphan(services, tmp_path, data, age_s=2 * DAY)
    release, created = add(services, tmp_path, data, sign(vendor, data))
    assert created and services.releases.sweep_orphans(DAY).deleted == []
    assert services.blobs.stored_at(key) > time.time() - 60  # put again: fresh
    assert b"".join(services.releases.artifact(release)) == data


def test_an_addition_whose_blob_is_swept_before_its_commit_stores_no_release(backend, tmp_path, vendor, monkeypatch):
    _, services = backend
    data = os.urandom(1200)
    real_put = services.blobs.put

    def put_then_swept(source, key, sha256=None):
        real_put(source, key, sha256)
        services.blobs.delete(key)  # as a sweep between the put and the commit would

    monkeypatch.setattr(services.blobs, "put", put_then_swept)
    with pytest.raises(ServiceUnavailable, match="send it again"):
        add(services, tmp_path, data, sign(vendor, data))
    assert services.releases.releases() == []
