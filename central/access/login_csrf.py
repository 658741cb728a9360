"""The login form's CSRF token: there is no session yet, so a signed double-submit token.

The login page sets a cookie holding ``nonce.signature`` and puts the same value in a
hidden field; a login is accepted only when the posted field equals the cookie (a page on
another site can post the form but can neither read nor set the cookie) and the signature
is central's (a cookie planted by a neighbouring host is not). Both compared in constant
time. The signing key is random, made once and kept in central's database (``signing_keys``,
written only here): every central process on that database accepts the tokens of the others,
and nothing in a config file (where a token's hash may sit in the open) can forge one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

COOKIE = "bwv_login_csrf"
FIELD = "csrf_token"
MAX_AGE_S = 3600
"""A login page left open longer than this needs reloading."""


def signing_key(writer) -> bytes:
    """The key, made on first use (a process racing another keeps whichever was stored first)."""
    with writer.write() as db:
        db.execute(
            "INSERT INTO signing_keys (name, key) VALUES ('login_csrf', ?) ON CONFLICT DO NOTHING",
            [secrets.token_bytes(32)],
        )
        return db.execute("SELECT key FROM signing_keys WHERE name = 'login_csrf'").fetchone()[0]


def new_token(key: bytes) -> str:
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{_sign(key, nonce)}"


def is_valid(key: bytes, token: str | None) -> bool:
    nonce, _, signature = (token or "").partition(".")
    return bool(nonce) and hmac.compare_digest(signature.encode(), _sign(key, nonce).encode())


def matches(key: bytes, cookie: str | None, posted: str | None) -> bool:
    """The posted field is the cookie's value, and that value central's."""
    return hmac.compare_digest((cookie or "").encode(), (posted or "").encode()) and is_valid(key, cookie)


def _sign(key: bytes, nonce: str) -> str:
    return hmac.new(key, nonce.encode(), hashlib.sha256).hexdigest()
