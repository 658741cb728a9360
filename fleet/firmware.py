"""Firmware releases: what a vendor signs, and how central (and, later, a station) checks it.

A release is one artifact (opaque bytes) for one camera model and version. The vendor signs
its **release statement** with an Ed25519 key whose public half is in central's
``[firmware] release_keys``. The statement is this JSON, UTF-8, with no spaces, its keys in
this (alphabetical) order, so a vendor can make it with any JSON library that sorts keys
(``json.dumps(s, sort_keys=True, separators=(",", ":"))``) or with ``printf``:

    {"format":"bwv-firmware-release/1","model":"Axon Body 2","sha256":"<64 hex>","size":<bytes>,"version":"1.4.3"}

``sha256`` is the artifact's SHA-256 (lower-case hex) and ``size`` its length in bytes: the
signature binds the bytes to their model and version, so an artifact signed for one model is
refused for another, and a tampered or truncated artifact for all. ``format`` names this
layout: a new layout gets a new name, never a changed meaning. docs/firmware.md has the
vendor's commands.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Protocol

import msgspec
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from msgspec import Meta, Struct

STATEMENT_FORMAT = "bwv-firmware-release/1"

Model = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9 ._+()-]*[A-Za-z0-9._+)-])?$(?!\n)",
        description="a camera model as the registry knows it (e.g. 'Axon Body 2'): letters, digits, "
        "spaces inside, . _ + ( ) -",
    ),
]
Version = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$(?!\n)",
        description="a firmware version as the camera reports it (e.g. '1.4.3'): letters, digits, . _ + -",
    ),
]
Sha256 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$(?!\n)")]


class ReleaseStatement(Struct, kw_only=True, forbid_unknown_fields=True):
    """What a release's signature covers. Fields in alphabetical order: msgspec encodes them in
    declaration order, so the bytes are the sorted-keys JSON a vendor makes."""

    format: str = STATEMENT_FORMAT
    model: Model
    sha256: Sha256
    size: Annotated[int, Meta(ge=0, le=2**62)]
    version: Version


def statement_bytes(*, model: str, version: str, sha256: str, size: int) -> bytes:
    """The exact bytes a release's signature is over."""
    return msgspec.json.encode(ReleaseStatement(model=model, sha256=sha256, size=size, version=version))


def parse_public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key given as 64 hex digits, the base64 of its 32 bytes, or a PEM
    ``PUBLIC KEY``; ValueError saying which forms are taken otherwise."""
    text = text.strip()
    raw: bytes | None = None
    if text.startswith("-----BEGIN"):
        try:
            key = load_pem_public_key(text.encode())
        except (ValueError, UnsupportedAlgorithm):
            raise ValueError("not a readable PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"a PEM public key, but not Ed25519 ({type(key).__name__})")
        return key
    if len(text) == 64:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != 32:
        raise ValueError(
            "not an Ed25519 public key: give 64 hex digits, the base64 of its 32 bytes, or a PEM 'PUBLIC KEY'"
        )
    problem = _point_problem(raw)
    if problem:
        raise ValueError(f"not an Ed25519 public key a vendor could hold: {problem}")
    return Ed25519PublicKey.from_public_bytes(raw)


# Curve25519 in Edwards form (RFC 8032 §5.1): only to check a configured key, never to sign or verify.
_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_L = 2**252 + 27742317777372353535851937790883648493
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _point_problem(raw: bytes) -> str | None:
    """Why these 32 bytes are no vendor's public key, or None. A real key is a multiple of the base
    point, so of the prime order L; a point of small order (the identity among them) verifies a
    signature made with no private key at all, and bytes off the curve are no point. (``cryptography``
    loads either without complaint: its verification would then accept a forgery.)"""
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    sign = raw[31] >> 7
    if y >= _P:
        return "not in canonical form"
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P  # RFC 8032 §5.1.3
    if v * x * x % _P == (-u) % _P:
        x = x * _SQRT_M1 % _P
    if v * x * x % _P != u:
        return "not a point on the curve"
    if x == 0 and sign:
        return "not in canonical form"
    if x & 1 != sign:
        x = _P - x
    point = (x, y)
    if point == (0, 1) or _times(_L, point) != (0, 1):
        return "not of the prime order every real key has (a small-order part lets a signature be forged)"
    return None


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    """Two points added (the complete twisted Edwards addition, a = -1)."""
    (x1, y1), (x2, y2) = a, b
    t = _D * x1 * x2 * y1 * y2 % _P
    return (
        (x1 * y2 + y1 * x2) * pow(1 + t, _P - 2, _P) % _P,
        (y1 * y2 + x1 * x2) * pow(1 - t, _P - 2, _P) % _P,
    )


def _times(n: int, point: tuple[int, int]) -> tuple[int, int]:
    result = (0, 1)
    while n:
        if n & 1:
            result = _add(result, point)
        point, n = _add(point, point), n >> 1
    return result


def public_key_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """A short name for a release key (as ``fleet verify-bundle`` names its keys): the first
    16 hex digits of the SHA-256 of its 32 bytes, in groups of four."""
    digest = hashlib.sha256(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]
    return ":".join(digest[i : i + 4] for i in range(0, 16, 4))


def parse_signature(text: str) -> bytes:
    """A signature as base64 (standard or URL-safe alphabet) of its 64 bytes; ValueError otherwise."""
    text = text.strip()
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the signature is not base64") from None
    if len(raw) != 64:
        raise ValueError(f"an Ed25519 signature is 64 bytes; this one is {len(raw)}")
    return raw


class KeyEntry(Protocol):
    """A release key limited to some models, as configured (``fleet.config.ReleaseKey``)."""

    @property
    def key(self) -> str: ...
    @property
    def models(self) -> list[str]: ...


@dataclass(frozen=True)
class TrustedKey:
    """A configured release key, and the models it may sign for (None: any)."""

    key: Ed25519PublicKey
    models: frozenset[str] | None = None

    def may_sign(self, model: str) -> bool:
        return self.models is None or model in self.models


def trusted_keys(entries: Iterable[str | KeyEntry]) -> list[TrustedKey]:
    """``[firmware] release_keys`` as keys with their models (each entry checked when the file loaded)."""
    return [
        TrustedKey(parse_public_key(e))
        if isinstance(e, str)
        else TrustedKey(parse_public_key(e.key), frozenset(e.models))
        for e in entries
    ]


def signed_by(statement: bytes, signature: bytes, keys: list[Ed25519PublicKey]) -> Ed25519PublicKey | None:
    """The first of ``keys`` under which ``signature`` verifies ``statement``; None for none."""
    for key in keys:
        try:
            key.verify(signature, statement)
        except InvalidSignature:
            continue
        return key
    return None
