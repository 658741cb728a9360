"""Firmware tests: a vendor's TEST key, generated per test (never a secret), and central's services."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central.core.services import build_services
from central.core.store import CentralStore
from fleet.firmware import public_key_hex, statement_bytes
from tests.central.conftest import make_settings

MODEL = "Axon Body 2"
LIMIT = 64 * 1024


def sign(key: Ed25519PrivateKey, data: bytes, model: str = MODEL, version: str = "1.0.0") -> str:
    """The vendor's signature, as docs/firmware.md tells a vendor to make it."""
    import hashlib

    statement = statement_bytes(model=model, version=version, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    return base64.b64encode(key.sign(statement)).decode()


@pytest.fixture
def vendor() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()  # a TEST key, made for this test alone


def firmware_settings(data_dir, vendor: Ed25519PrivateKey | None, **firmware):
    keys = [public_key_hex(vendor.public_key())] if vendor is not None else []
    return make_settings(data_dir, firmware={"release_keys": keys, "max_artifact_bytes": LIMIT, **firmware})


@pytest.fixture
def services(tmp_path, vendor):
    settings = firmware_settings(tmp_path / "central", vendor)
    store = CentralStore.open(settings)
    try:
        yield build_services(settings, store)
    finally:
        store.close()


def audit_actions(services, object_type: str) -> list[tuple[str, str, str]]:
    with services.store.writer.read() as db:
        return [
            tuple(r)
            for r in db.execute(
                "SELECT action, object_id, detail FROM audit WHERE object_type = ? ORDER BY id", [object_type]
            )
        ]
