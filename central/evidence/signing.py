"""Central's disclosure signing key: Ed25519, through ``cryptography``.

It signs each disclosure package's index (``fleet.bundle``); its public half, and those of the
keys it replaced, are published at ``GET /api/v1/disclosure/keys`` so a receiver can check a
package offline. The key comes from ``[disclosure] signing_key`` (a file only central's user may
read, an environment variable or a systemd credential; never the database). Every replica must
hold the same key, so without one a central on PostgreSQL refuses to export; a central on SQLite
(one machine) makes its own in the data directory on first start, and says so.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from msgspec import Struct

from fleet.bundle import key_fingerprint
from fleet.config import CentralSettings, KeySource
from fleet.errors import Conflict
from fleet.keyfile import read_key, write_key_file

log = logging.getLogger(__name__)

GENERATED_KEY = "disclosure-signing.key"


class PublishedKey(Struct, kw_only=True):
    public_key: str
    """64 hex digits: the key's 32 raw bytes, as ``fleet verify-bundle --public-key`` takes it."""
    fingerprint: str
    current: bool


class Signer:
    """Signs with the configured key; ``None`` key: exports refused, saying what to configure."""

    def __init__(self, key: Ed25519PrivateKey | None, previous: list[str]) -> None:
        self._key = key
        self.public_key = None if key is None else key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
        self.previous = [p for p in previous if p != self.public_key]

    @classmethod
    def from_settings(cls, settings: CentralSettings, *, single_machine: bool) -> Signer:
        source = settings.disclosure.signing_key
        previous = list(settings.disclosure.previous_public_keys)
        if source is not None:
            seed = read_key(source, "[disclosure] signing_key")
            return cls(Ed25519PrivateKey.from_private_bytes(seed), previous)
        if not single_machine:
            return cls(None, previous)
        path = Path(settings.data_dir) / GENERATED_KEY
        if not path.exists():
            _make_key_once(path)
        seed = read_key(KeySource(file=str(path)), f"[disclosure] signing key made by central ({path})")
        return cls(Ed25519PrivateKey.from_private_bytes(seed), previous)

    def ready(self) -> str:
        """The public key that will sign; Conflict (409) when there is none: nothing goes unsigned."""
        if self._key is None or self.public_key is None:
            raise Conflict(
                "no disclosure signing key: give every replica the same [disclosure] signing_key "
                "(docs/disclosure.md); packages are never sent unsigned"
            )
        return self.public_key

    def sign(self, data: bytes) -> bytes:
        self.ready()
        assert self._key is not None
        return self._key.sign(data)

    def published(self) -> list[PublishedKey]:
        keys = [self.public_key] if self.public_key else []
        return [
            PublishedKey(public_key=k, fingerprint=key_fingerprint(k), current=k == self.public_key)
            for k in [*keys, *self.previous]
        ]


def _make_key_once(path: Path) -> None:
    """A new key at ``path``, whole or not at all, and only once: written to a file of its own,
    then linked into place, so a crash leaves no empty key and of two processes starting at once
    the second finds the first's key."""
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    write_key_file(draft, Ed25519PrivateKey.generate().private_bytes_raw())
    try:
        os.link(draft, path)
        log.warning("no [disclosure] signing_key: made one for this central in %s (back it up)", path)
    except FileExistsError:
        pass  # another process made it first: that key is the one
    finally:
        draft.unlink()
