"""Attacks on the orphan sweep: it deletes only artifact blobs no release names, never a clip's
blob nor anything else under the store, on the filesystem and on S3."""

from __future__ import annotations

import os
import uuid

from tests.central.firmware.conftest import sign
from tests.central.firmware.test_releases import add
from tests.central.firmware.test_sweep import backend

__all__ = ["backend"]  # the fixture, reused


def _blob(services, tmp_path, key: str, data: bytes) -> None:
    path = tmp_path / f"{uuid.uuid4()}.part"
    path.write_bytes(data)
    services.blobs.put(path, key)


def test_an_artifact_two_releases_share_is_kept_when_one_of_them_is_withdrawn(backend, tmp_path, vendor):
    _, services = backend
    data = os.urandom(2000)
    first, _ = add(services, tmp_path, data, sign(vendor, data, model="Axon Body 2"), model="Axon Body 2")
    second, _ = add(services, tmp_path, data, sign(vendor, data, model="Axon Body 3"), model="Axon Body 3")
    assert first.sha256 == second.sha256
    services.releases.withdraw(first.id, "bricks some cameras", "fm")
    swept = services.releases.sweep_orphans(0.0)
    assert swept.deleted == [] and swept.named == 1
    assert b"".join(services.releases.artifact(services.releases.release(second.id))) == data


def test_the_sweep_never_touches_a_clips_blob_nor_a_key_not_an_artifacts(backend, tmp_path, vendor):
    kind, services = backend
    clip = str(uuid.uuid4())
    others = [clip, "firmware-notasha", "firmware-" + "a" * 63]
    if kind == "filesystem":  # a name S3 servers refuse: an artifact's key with a line end after it
        others.append("firmware-" + "b" * 64 + "\n")
    for key in others:
        _blob(services, tmp_path, key, b"evidence or someone else's")
    swept = services.releases.sweep_orphans(0.0)
    assert swept.deleted == []
    assert [key for key in others if not services.blobs.exists(key)] == []
