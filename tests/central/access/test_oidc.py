"""The ID token's checks and the groups' mapping, one attack at a time (no directory needed:
tokens are signed here with keys made here)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from central.access.oidc import InvalidIdToken, member_of, user_name, validate_id_token
from fleet.config import CentralSettings, settings_from_dict

pytestmark = pytest.mark.sqlite_only  # no database

ISSUER = "https://login.force.example"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
OTHER = RSAKey.generate_key(2048, parameters={"kid": "k1"})
JWKS = {"keys": [KEY.as_dict(private=False)]}


def token(key=KEY, alg="RS256", **overrides) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "bwv-fleet", "sub": "s-1", "nonce": "n-1", "iat": now, "exp": now + 300}
    claims.update(overrides)
    return jwt.encode({"alg": alg, "kid": "k1"}, {k: v for k, v in claims.items() if v is not None}, key)


def check(raw: str, nonce: str = "n-1") -> dict:
    return validate_id_token(raw, JWKS, issuer=ISSUER, client_id="bwv-fleet", nonce=nonce)


def b64(part: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def test_a_good_token_gives_its_claims():
    assert check(token(groups=["BWV-Viewers"]))["groups"] == ["BWV-Viewers"]


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (lambda: token(aud="another-app"), "aud"),  # an ID token for another audience
        (lambda: token(aud=["another-app", "bwv-fleet"], azp="another-app"), "azp"),  # issued to another party
        (lambda: token(iss="https://evil.example"), "iss"),  # an issuer mismatch
        (lambda: token(nonce="n-earlier"), "nonce"),  # a token replayed from another sign-in
        (lambda: token(nonce=None), "nonce"),
        (lambda: token(exp=int(time.time()) - 3600), "exp"),  # expired
        (lambda: token(key=OTHER), "signature"),  # signed by someone else's key with the same kid
        (lambda: token(sub=None), "sub"),
    ],
)
def test_a_token_that_fails_a_check_is_refused(raw, why):
    with pytest.raises(InvalidIdToken) as refused:
        check(raw())
    assert why in str(refused.value).lower() or why == "signature", refused.value


def test_an_unsigned_token_is_refused():
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "bwv-fleet", "sub": "s-1", "nonce": "n-1", "iat": now, "exp": now + 300}
    for header in ({"alg": "none"}, {"alg": "none", "kid": "k1"}, {"alg": "None"}):
        with pytest.raises(InvalidIdToken):
            check(f"{b64(header)}.{b64(claims)}.")


def test_a_token_signed_with_the_client_secret_is_refused():
    """HS256 with the client secret is allowed by the specification, but anyone holding the secret
    (every replica's config) could forge one: only the directory's own keys sign."""
    secret = OctKey.import_key(b"test-client-secret-test-client-secret")
    with pytest.raises(InvalidIdToken):
        validate_id_token(
            token(key=secret, alg="HS256"),
            {"keys": [secret.as_dict(private=True)]},
            issuer=ISSUER,
            client_id="bwv-fleet",
            nonce="n-1",
        )


def test_garbage_is_refused_not_a_crash():
    for raw in ("", "a.b", "a.b.c", "x" * 10_000, b64({"alg": "RS256"}) + ".e30.AAAA"):
        with pytest.raises(InvalidIdToken):
            check(raw)


def oidc_settings(groups):
    return settings_from_dict(
        {
            "data_dir": "/tmp/x",
            "admin_token": "t",
            "oidc": {
                "issuer": ISSUER,
                "client_id": "bwv-fleet",
                "client_secret": "s",
                "redirect_url": "https://fleet.example/login/oidc/callback",
                "groups": groups,
            },
        },
        CentralSettings,
    ).oidc


def test_the_first_group_in_the_files_order_gives_the_role():
    oidc = oidc_settings(
        {"BWV-Admins": {"role": "admin"}, "BWV-Sup-Camden": {"role": "supervisor", "borough": "Camden"}}
    )
    member = member_of({"sub": "s", "groups": ["BWV-Sup-Camden", "BWV-Admins"]}, oidc)
    assert (member.role, member.borough, member.matched) == ("admin", None, ["BWV-Admins"])
    member = member_of({"sub": "s", "groups": "BWV-Sup-Camden"}, oidc)  # one group as a string
    assert (member.role, member.borough) == ("supervisor", "Camden")
    odd: list[object] = [[1, None, {"a": 1}], 5, {"BWV-Admins": 1}]
    claims: list[dict[str, Any]] = [{"sub": "s"}, {"sub": "s", "groups": ["Canteen"]}]
    for nothing in claims + [{"sub": "s", "groups": g} for g in odd]:
        assert member_of(nothing, oidc).matched == []


def test_user_names_are_made_acceptable():
    assert user_name({"sub": "s", "preferred_username": "J.Smith@Met.Police.UK"}, "preferred_username") == (
        "j.smith-met.police.uk"
    )
    assert user_name({"sub": "s", "email": "a@b"}, "preferred_username") == "a-b"
    assert user_name({"sub": "s", "preferred_username": "__"}, "preferred_username").startswith("user-")
    assert len(user_name({"sub": "s", "preferred_username": "x" * 500}, "preferred_username")) == 64


@pytest.mark.parametrize(
    ("oidc", "message"),
    [
        ({"issuer": "http://login.force.example"}, "issuer must be https://"),
        ({"redirect_url": "http://fleet.example/login/oidc/callback"}, "redirect_url must be https://"),
        ({"redirect_url": "https://fleet.example/elsewhere"}, "redirect_url"),
        ({"groups": {}}, "nobody could sign in"),
        ({"groups": {"G": {"role": "viewer", "borough": "Camden"}}}, "only a supervisor or an information_manager"),
        ({"groups": {"G": {"role": "viewer", "force_wide": True}}}, "only a supervisor or an information_manager"),
        ({"groups": {"G": {"role": "supervisor"}}}, "force_wide = true"),  # a borough left out: never force-wide
        ({"groups": {"G": {"role": "supervisor", "borough": "Camden", "force_wide": True}}}, "give exactly one"),
        ({"groups": {"G": {"role": "superuser"}}}, "superuser"),
        ({"client_secret": None}, "client_secret (or client_secret_env) is required"),
        ({"client_secret_env": "NOT_SET_ANYWHERE"}, "NOT_SET_ANYWHERE, which is not set"),
        ({"client_secret_credential": "oidc-secret"}, "needs $CREDENTIALS_DIRECTORY"),
        ({"client_secret_file": "/nonexistent/secret"}, "client_secret_file: /nonexistent/secret"),
        ({"tenant": "x"}, "unknown field"),
    ],
)
def test_bad_oidc_settings_are_clear_errors_at_start_up(oidc, message, monkeypatch):
    from fleet.errors import ConfigError

    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    base = {
        "issuer": ISSUER,
        "client_id": "bwv-fleet",
        "client_secret": "s",
        "redirect_url": "https://fleet.example/login/oidc/callback",
        "groups": {"G": {"role": "viewer"}},
    }
    given = {**base, **oidc}
    if any(k.startswith("client_secret_") for k in oidc):
        given.pop("client_secret")
    given = {k: v for k, v in given.items() if v is not None}
    with pytest.raises(ConfigError) as refused:
        settings_from_dict({"data_dir": "/tmp/x", "admin_token": "t", "oidc": given}, CentralSettings)
    assert message in str(refused.value)


def test_the_client_secret_from_a_systemd_credential_or_a_file(tmp_path, monkeypatch):
    (tmp_path / "oidc-secret").write_text("from-systemd\n")
    (tmp_path / "oidc-secret").chmod(0o600)  # a file named in the config is readable by its owner only
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    base = {"issuer": "http://127.0.0.1:8080", "client_id": "c", "redirect_url": "http://localhost/login/oidc/callback"}
    groups = {"groups": {"G": {"role": "viewer"}}}
    for source in ({"client_secret_credential": "oidc-secret"}, {"client_secret_file": str(tmp_path / "oidc-secret")}):
        oidc = settings_from_dict(
            {"data_dir": "/tmp/x", "admin_token": "t", "oidc": {**base, **groups, **source}}, CentralSettings
        ).oidc
        assert oidc.client_secret == "from-systemd" and oidc.scopes[0] == "openid"
