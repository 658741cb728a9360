"""Staff sign in through the force's directory: OpenID Connect, authorization code flow with PKCE.

``begin`` keeps a new sign-in (its state, nonce and PKCE verifier) in central's database
(``directory_sign_ins``, written only here), bound to the browser by a random cookie whose
SHA-256 the row holds, and sends the browser to the directory. ``finish`` takes the row back
once (a second use of the same answer finds nothing: no replay), checks the browser is the one
that began it, trades the code for tokens (authlib's httpx client, with the PKCE verifier),
and validates the ID token: signed by a key of the directory's JWKS with an asymmetric
algorithm (never ``none``, never the client secret), for this client, by this issuer, with this
sign-in's nonce, not expired. The groups claim then maps to a role and borough through
``[oidc] groups``; someone whose groups give nothing is refused, both audited, and the user
row (``central.access.users``) takes the role at every sign-in. Because the row lives in the
shared database, the directory may send the browser back to any replica.

The directory's discovery document and keys are fetched when first needed, never at start-up
(a directory down must not keep central, or its break-glass local accounts, from starting),
kept for ``METADATA_TTL_S``, and the keys fetched again when a token names a key not yet seen
(a rotation).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
import warnings
from datetime import timedelta
from typing import Any

import httpx
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from central.access.users import DirectoryMember, Session, UserService
from central.core.database import Database
from fleet.clock import from_iso, to_iso, utc_now
from fleet.config import OidcSettings
from fleet.errors import BadRequest, Forbidden, NotFound, ServiceUnavailable

with warnings.catch_warnings():
    # authlib 1.9.7+ would rather run on httpx2; it still runs on httpx, which the whole system uses.
    warnings.filterwarnings("ignore", "The httpx module is deprecated", DeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client, OAuthError

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
"""Signatures an ID token may carry: the directory's own keys only (no ``none``, no HMAC with the
client secret, which anyone holding the secret could forge)."""
PENDING = timedelta(minutes=10)
"""A sign-in not finished within this is forgotten (the user starts again)."""
METADATA_TTL_S = 3600.0
LEEWAY_S = 60
"""Clock skew allowed between central and the directory (exp, iat)."""
COOKIE = "bwv_directory"
"""The browser's half of a sign-in begun (a random value; the row keeps its SHA-256)."""


class SignInRefused(BadRequest):
    """A directory sign-in central does not accept (400: start again)."""


class InvalidIdToken(Exception):
    """An ID token that fails validation (its signature, issuer, audience, nonce or times)."""


def validate_id_token(
    raw: str,
    keys: dict[str, Any],
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    access_token: str | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    """The claims of ``raw`` once validated (OpenID Connect Core §3.1.3.7); InvalidIdToken otherwise."""
    try:
        token = jwt.decode(raw, KeySet.import_key_set(keys), algorithms=list(ALGORITHMS))  # type: ignore[arg-type]
    except InvalidKeyIdError:
        raise
    except (JoseError, ValueError) as exc:
        raise InvalidIdToken(f"the ID token's signature or form: {exc}") from None
    claims = CodeIDToken(
        token.claims,
        token.header,
        {"iss": {"essential": True, "value": issuer}, "aud": {"essential": True, "value": client_id}},
        {"nonce": nonce, "client_id": client_id, "access_token": access_token},
    )
    try:
        claims.validate(now=now, leeway=LEEWAY_S)
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidIdToken(f"the ID token's claims: {exc}") from None
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise InvalidIdToken("the ID token names no subject")
    return dict(claims)


def member_of(claims: dict[str, Any], oidc: OidcSettings) -> DirectoryMember:
    """Who the claims name, their groups, and what the first matching group gives (``matched``
    empty: nothing)."""
    listed = claims.get(oidc.groups_claim) or []
    if isinstance(listed, str):
        groups = [listed]
    else:  # a list of names; anything else (a number, an object) names no group
        groups = [g for g in listed if isinstance(g, str)] if isinstance(listed, list) else []
    member = DirectoryMember(
        issuer=oidc.issuer, subject=claims["sub"], name=user_name(claims, oidc.name_claim), groups=groups[:200]
    )
    for group, grant in oidc.groups.items():
        if group in groups:
            member.matched, member.role, member.borough = [group], grant.role, grant.borough
            break
    return member


def user_name(claims: dict[str, Any], claim: str) -> str:
    """A user name central accepts, from ``claim`` (else the e-mail, else the subject): lower case,
    any other character than a-z, 0-9, '.', '_', '-' made '-', at most 64."""
    given = next((v for v in (claims.get(claim), claims.get("email"), claims["sub"]) if isinstance(v, str) and v), "")
    name = re.sub(r"[^a-z0-9._-]", "-", given.lower()).lstrip("._-")[:64]
    return name or "user-" + hashlib.sha256(claims["sub"].encode()).hexdigest()[:16]


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class DirectorySignIn:
    """The sign-in through ``[oidc]``'s directory, for every browser of this central process
    (without ``[oidc]``, ``settings`` is None and every use is NotFound)."""

    def __init__(self, settings: OidcSettings | None, writer: Database, users: UserService) -> None:
        self.settings = settings
        self.writer = writer
        self.users = users
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._keys: dict[str, Any] | None = None
        self._fetched_at = 0.0

    @property
    def oidc(self) -> OidcSettings:
        if self.settings is None:
            raise NotFound("staff sign-in through a directory is not set up here ([oidc] in central's config)")
        return self.settings

    def begin(self, next_path: str) -> tuple[str, str]:
        """The directory's authorization URL to send the browser to, and the browser's cookie value."""
        metadata = self.metadata()
        browser, state, nonce = (secrets.token_urlsafe(32) for _ in range(3))
        verifier = secrets.token_urlsafe(48)
        now = utc_now()
        with self.writer.write() as db:
            db.execute("DELETE FROM directory_sign_ins WHERE created_at <= ?", [to_iso(now - PENDING)])
            db.execute(
                "INSERT INTO directory_sign_ins (state_sha256, browser_sha256, nonce, code_verifier, next, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [_sha256(state), _sha256(browser), nonce, verifier, next_path, to_iso(now)],
            )
        with self._client() as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"], state=state, code_verifier=verifier, nonce=nonce
            )
        return url, browser

    def finish(
        self, *, state: str, code: str | None, error: str | None, browser: str | None, place: str
    ) -> tuple[str, Session, str]:
        """The session of the user the directory sent back (its cookie value, the session, and the
        page to go to); SignInRefused, Forbidden (groups that give nothing) or ServiceUnavailable."""
        with self.writer.write() as db:
            row = db.execute(
                "DELETE FROM directory_sign_ins WHERE state_sha256 = ? "
                "RETURNING browser_sha256, nonce, code_verifier, next, created_at",
                [_sha256(state[:200])],
            ).fetchone()
        if row is None or from_iso(row[4]) <= utc_now() - PENDING:
            raise SignInRefused("this sign-in has expired or was used already: sign in again")
        if not hmac.compare_digest(row[0], _sha256(browser or "")):
            raise SignInRefused("this sign-in was begun in another browser: sign in again")
        if error is not None or not code:
            raise SignInRefused(f"the directory did not sign you in ({(error or 'no code')[:100]}): sign in again")
        nonce, verifier, next_path = row[1], row[2], row[3]
        claims = self._claims(code[:2000], verifier, nonce)
        member = member_of(claims, self.oidc)
        if not member.matched:
            reason = "no role: none of their directory groups is given one here"
            self.users.directory_refused(member, place, reason)
            raise Forbidden(
                f"{self.oidc.display_name} signed you in, but none of your groups is given a role here: "
                "ask your supervisor to add you to the right group"
            )
        cookie, session = self.users.directory_sign_in(member, place)
        return cookie, session, next_path

    def logout_url(self) -> str | None:
        """The directory's end-session URL (RP-initiated logout) that comes back to central's login
        page; None when the directory has none (or cannot be reached: the local session is over anyway)."""
        if self.settings is None:
            return None
        after = self.settings.redirect_url.removesuffix("/oidc/callback")
        try:
            endpoint = self.metadata().get("end_session_endpoint")
        except ServiceUnavailable:
            return None
        if not isinstance(endpoint, str):
            return None
        return str(httpx.URL(endpoint, params={"client_id": self.oidc.client_id, "post_logout_redirect_uri": after}))

    # -- talking to the directory ----------------------------------------------------------------

    def _client(self) -> OAuth2Client:
        return OAuth2Client(
            client_id=self.oidc.client_id,
            client_secret=self.oidc.client_secret,
            scope=" ".join(self.oidc.scopes),
            redirect_uri=self.oidc.redirect_url,
            code_challenge_method="S256",
            timeout=self.oidc.timeout_s,
            verify=self.oidc.ca_bundle or True,
        )

    def _claims(self, code: str, verifier: str, nonce: str) -> dict[str, Any]:
        metadata = self.metadata()
        try:
            with self._client() as client:
                token = client.fetch_token(metadata["token_endpoint"], code=code, code_verifier=verifier)
                raw = token.get("id_token")
                if not isinstance(raw, str):
                    raise SignInRefused("the directory sent no ID token: sign in again")
                claims = self._validated(raw, nonce, token.get("access_token"))
                if self.oidc.groups_claim not in claims and isinstance(metadata.get("userinfo_endpoint"), str):
                    claims = self._with_userinfo(client, metadata["userinfo_endpoint"], claims)
        except OAuthError as exc:
            raise SignInRefused(f"the directory refused the sign-in ({exc.error}): sign in again") from None
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"{self.oidc.display_name} cannot be reached: {type(exc).__name__}") from None
        except ValueError:  # a token or userinfo answer that is no JSON object (a proxy's error page)
            raise ServiceUnavailable(f"{self.oidc.display_name} answered the sign-in with no JSON object") from None
        return claims

    def _validated(self, raw: str, nonce: str, access_token: str | None) -> dict[str, Any]:
        oidc = self.oidc
        try:
            try:
                keys = self.keys()
                return validate_id_token(
                    raw, keys, issuer=oidc.issuer, client_id=oidc.client_id, nonce=nonce, access_token=access_token
                )
            except InvalidKeyIdError:  # a key not seen yet: the directory may have rotated its keys
                keys = self.keys(refresh=True)
                return validate_id_token(
                    raw, keys, issuer=oidc.issuer, client_id=oidc.client_id, nonce=nonce, access_token=access_token
                )
        except (InvalidIdToken, InvalidKeyIdError) as exc:
            raise SignInRefused(f"the directory's answer is not valid ({exc}): sign in again") from None

    @staticmethod
    def _with_userinfo(client: OAuth2Client, endpoint: str, claims: dict[str, Any]) -> dict[str, Any]:
        """The groups from userinfo when the ID token leaves them out (its subject must be the token's)."""
        response = client.get(endpoint)
        response.raise_for_status()
        info = response.json()
        if not isinstance(info, dict) or info.get("sub") != claims["sub"]:
            raise SignInRefused("the directory's userinfo names someone else: sign in again")
        return {**info, **claims}

    def metadata(self) -> dict[str, Any]:
        """The directory's discovery document (cached); ServiceUnavailable when it cannot be had."""
        with self._lock:
            if self._metadata is None or time.monotonic() - self._fetched_at > METADATA_TTL_S:
                document = self._get_json(f"{self.oidc.issuer}/.well-known/openid-configuration")
                if document.get("issuer") != self.oidc.issuer:
                    named = str(document.get("issuer"))[:200]
                    raise ServiceUnavailable(
                        f"{self.oidc.display_name}'s discovery document names issuer {named!r}, "
                        f"not {self.oidc.issuer!r} as [oidc] issuer says"
                    )
                missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if k not in document]
                if missing:
                    raise ServiceUnavailable(f"{self.oidc.display_name}'s discovery document has no {missing[0]}")
                self._metadata, self._keys, self._fetched_at = document, None, time.monotonic()
            return self._metadata

    def keys(self, *, refresh: bool = False) -> dict[str, Any]:
        jwks_uri = self.metadata()["jwks_uri"]
        with self._lock:
            if self._keys is None or refresh:
                self._keys = self._get_json(jwks_uri)
            return self._keys

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = httpx.get(url, timeout=self.oidc.timeout_s, verify=self.oidc.ca_bundle or True)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ServiceUnavailable(f"{self.oidc.display_name} cannot be reached: {type(exc).__name__}") from None
        if not isinstance(document, dict):
            raise ServiceUnavailable(f"{self.oidc.display_name} answered {url} with no JSON object")
        return document
