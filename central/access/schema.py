"""The access package's tables: users, their API tokens and sessions, login throttling, signing keys."""

from __future__ import annotations

from central.core.migrations import Step

TABLES = frozenset(
    {"users", "api_tokens", "sessions", "login_throttle", "signing_keys", "directory_identities", "directory_sign_ins"}
)

STEPS = [
    # v12: users with a role, their API tokens (hashed) and browser sessions (hashed ids).
    Step(
        12,
        """
    CREATE TABLE users (
        name            TEXT PRIMARY KEY,
        role            TEXT NOT NULL,
        borough         TEXT,
        password_hash   TEXT,
        created_at      TEXT NOT NULL,
        created_by      TEXT NOT NULL,
        disabled_at     TEXT
    );
    CREATE TABLE api_tokens (
        id              INTEGER PRIMARY KEY,
        user            TEXT NOT NULL REFERENCES users (name),
        label           TEXT NOT NULL,
        token_sha256    TEXT NOT NULL UNIQUE,
        created_at      TEXT NOT NULL,
        expires_at      TEXT,
        revoked_at      TEXT
    );
    CREATE TABLE sessions (
        id_sha256       TEXT PRIMARY KEY,
        user            TEXT NOT NULL REFERENCES users (name),
        csrf            TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        expires_at      TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX sessions_user ON sessions (user);
    """,
    ),
    # v15: failed dashboard logins per account and per client address (central.access.login_throttle),
    # kept here so a lockout holds across restarts and for every central process on this database.
    Step(
        15,
        """
    CREATE TABLE login_throttle (
        key             TEXT PRIMARY KEY,
        failures        INTEGER NOT NULL,
        last_failed_at  TEXT NOT NULL,
        locked_until    TEXT
    ) WITHOUT ROWID;
    """,
    ),
    # v17: random keys central signs with (central.access.login_csrf), one per use, made once and kept
    # here so that every central process on this database signs alike and none is in a config file.
    Step(
        17,
        """
    CREATE TABLE signing_keys (
        name            TEXT PRIMARY KEY,
        key             BLOB NOT NULL
    ) WITHOUT ROWID;
    """,
    ),
    # v32: staff who sign in through the force's directory (OpenID Connect, central.access.oidc):
    # which directory subject is which user (the link is the issuer and subject, never a name), and
    # the sign-ins begun and not yet finished (state, nonce, PKCE verifier), kept here so the
    # directory may send the browser back to any replica, and each is used once.
    Step(
        32,
        """
    CREATE TABLE directory_identities (
        issuer          TEXT NOT NULL,
        subject         TEXT NOT NULL,
        user            TEXT NOT NULL UNIQUE REFERENCES users (name),
        groups          TEXT NOT NULL,
        signed_in_at    TEXT NOT NULL,
        PRIMARY KEY (issuer, subject)
    ) WITHOUT ROWID;
    CREATE TABLE directory_sign_ins (
        state_sha256    TEXT PRIMARY KEY,
        browser_sha256  TEXT NOT NULL,
        nonce           TEXT NOT NULL,
        code_verifier   TEXT NOT NULL,
        next            TEXT NOT NULL,
        created_at      TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    ),
]
