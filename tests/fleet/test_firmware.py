"""The release keys in central's config, in every form a vendor may give them, checked at load."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fleet.config import CentralSettings, settings_from_dict
from fleet.errors import ConfigError
from fleet.firmware import parse_public_key, parse_signature, public_key_hex

KEY = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32).public_key()  # a TEST key, not a secret
RAW = KEY.public_bytes(Encoding.Raw, PublicFormat.Raw)


def central(**firmware) -> CentralSettings:
    return settings_from_dict({"data_dir": "d", "admin_token": "t", "firmware": firmware}, CentralSettings)


@pytest.mark.parametrize(
    "given",
    [
        RAW.hex(),
        base64.b64encode(RAW).decode(),
        KEY.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode(),
    ],
    ids=["hex", "base64", "pem"],
)
def test_a_release_key_may_be_hex_base64_or_pem(given):
    assert public_key_hex(parse_public_key(given)) == RAW.hex()
    assert central(release_keys=[given]).firmware.release_keys == [given]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["nope"], r"release_keys\[0\]: not an Ed25519 public key: give 64 hex digits"),
        ([RAW.hex(), base64.b64encode(RAW[:31]).decode()], r"release_keys\[1\]: not an Ed25519"),
        ([RAW.hex(), base64.b64encode(RAW).decode()], r"release_keys\[1\]: the same key as release_keys\[0\]"),
        (
            [
                generate_private_key(SECP256R1())
                .public_key()
                .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
                .decode()
            ],
            r"release_keys\[0\]: a PEM public key, but not Ed25519",
        ),
        (
            ["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"],
            r"release_keys\[0\]: not a readable PEM public key",
        ),
        ([{"key": "nope", "models": ["A"]}], r"release_keys\[0\]: not an Ed25519 public key"),
        ([RAW.hex(), {"key": RAW.hex(), "models": ["A"]}], r"release_keys\[1\]: the same key as release_keys\[0\]"),
        ([{"key": RAW.hex(), "models": ["Axon\nBody"]}], r"release_keys\[0\]: models: 'Axon\\nBody' is not a camera"),
    ],
    ids=[
        "garbage",
        "short",
        "twice",
        "not-ed25519",
        "bad-pem",
        "table-garbage",
        "table-twice",
        "table-bad-model",
    ],
)
def test_a_bad_release_key_stops_the_config_with_a_clear_error(keys, message):
    with pytest.raises(ConfigError, match=r"\[firmware\] " + message):
        central(release_keys=keys)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"key": RAW.hex(), "models": []}, "Expected `array` of length >= 1 - at `$.firmware.release_keys[0].models`"),
        ({"key": RAW.hex()}, "Object missing required field `models` - at `$.firmware.release_keys[0]`"),
        ({"key": RAW.hex(), "models": ["A"], "model": "B"}, "unknown field `model` - at `$.firmware.release_keys[0]`"),
        (5, "Expected `str | object`, got `int` - at `$.firmware.release_keys[0]`"),
    ],
    ids=["no-models", "missing-models", "typo", "neither"],
)
def test_a_malformed_release_key_entry_is_a_clear_error(entry, message):
    with pytest.raises(ConfigError) as refused:
        central(release_keys=[entry])
    assert message in str(refused.value)


def test_a_release_key_may_be_limited_to_some_models_beside_plain_keys():
    from fleet.config import ReleaseKey
    from fleet.firmware import trusted_keys

    other = Ed25519PrivateKey.from_private_bytes(b"\x09" * 32).public_key()  # a TEST key, not a secret
    keys = central(release_keys=[public_key_hex(other), {"key": RAW.hex(), "models": ["Axon Body 2"]}])
    assert keys.firmware.release_keys == [public_key_hex(other), ReleaseKey(key=RAW.hex(), models=["Axon Body 2"])]
    plain, limited = trusted_keys(keys.firmware.release_keys)
    assert plain.may_sign("Axon Body 2") and plain.may_sign("Other")
    assert limited.may_sign("Axon Body 2") and not limited.may_sign("Axon Body 3")


def test_the_artifact_limit_is_bounded():
    assert central().firmware.max_artifact_bytes == 512 << 20
    with pytest.raises(ConfigError, match="max_artifact_bytes"):
        central(max_artifact_bytes=10)
    with pytest.raises(ConfigError, match="unknown field `release_key`"):
        central(release_key=[])


def test_signatures_are_base64_of_64_bytes_in_either_alphabet():
    raw = bytes(range(250, 256)) * 10 + b"\xfb\xff\xfe\xfa"
    assert parse_signature(base64.b64encode(raw).decode()) == raw
    assert parse_signature(base64.urlsafe_b64encode(raw).decode()) == raw
