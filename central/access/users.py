"""People who use central: users with a role, their passwords, API tokens and browser sessions.

- Passwords are hashed with scrypt (``hashlib.scrypt``: memory-hard, in the standard
  library) with a random salt per password, and compared in constant time.
- API tokens (for scripts) are long random strings shown once; central keeps their SHA-256.
- Browser sessions are server-side rows keyed by the SHA-256 of a random cookie value; each
  carries its own CSRF token (synchronizer pattern), so a form posted from another site
  fails, and logging out ends the session everywhere it was copied.
- Every login, failed login, logout and user or token change is in the audit chain.
- Failed logins are throttled per account and per client address (``central.access.login_throttle``).

Roles: ``admin`` (everything), ``fleet_manager`` (devices, stations), ``planner`` (roll-out,
allocation), ``supervisor`` (assignments, unattributed clips, holds, footage; for their
borough when they have one), ``auditor`` (audit trail and custody, read only),
``information_manager`` (the public's requests to keep footage: their queue, narrowing and
closing them; finding a clip from a complaint by its record, holding it and printing its chain
of custody; for their borough when they have one), ``viewer`` (fleet data, read only).
Every user can read fleet data; only admin and supervisors see footage: seeing a camera's
battery does not grant seeing its clips (an information manager sees clips' records, which
officer, camera and time, never their content).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Annotated, get_args

import msgspec

from central.access.login_throttle import LoginThrottle
from central.core.database import Database
from central.evidence import audit
from fleet.clock import from_iso, to_iso, utc_now
from fleet.config import BOROUGH_ROLES, UserRole
from fleet.errors import ApiError, BadRequest, Conflict, NotFound, Unauthorized

Role = UserRole
ROLES: tuple[str, ...] = get_args(UserRole)
CLIP_FINDERS = ("supervisor", "information_manager")
"""Who finds clips by their record (officer, camera, time) and holds them; footage itself stays
the supervisors' (and admins')."""
CUSTODY_READERS = ("auditor", "information_manager")
"""Who reads and prints a clip's chain of custody."""
UserName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$(?!\n)")]

TOKEN_PREFIX = "bwv_"
SESSION_HOURS = 12
"""A browser session lasts a shift; then the user logs in again."""
MIN_PASSWORD = 12

# scrypt at n=2**14, r=8 (16 MiB, ~50 ms here): OWASP's minimum for scrypt.
_N, _R, _P = 2**14, 8, 1
_DUMMY = "scrypt$16384$8$1$" + base64.b64encode(b"\0" * 16).decode() + "$" + base64.b64encode(b"\0" * 32).decode()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def password_matches(password: str, stored: str | None) -> bool:
    """Constant time; a user without a password (or none at all) costs the same scrypt run."""
    _, n, r, p, salt, digest = (stored or _DUMMY).split("$")
    computed = hashlib.scrypt(
        password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32, maxmem=256 << 20
    )
    return hmac.compare_digest(computed, base64.b64decode(digest)) and stored is not None


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class User(msgspec.Struct, kw_only=True):
    name: str
    role: str
    borough: str | None = None
    """A supervisor's borough: what they may act on (None: force-wide)."""
    created_at: datetime
    created_by: str
    disabled_at: datetime | None = None
    has_password: bool = False


class ApiToken(msgspec.Struct, kw_only=True):
    id: int
    user: str
    label: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class NewToken(msgspec.Struct, kw_only=True):
    token: str
    """Shown once: central keeps only its hash."""
    info: ApiToken


class DirectoryMember(msgspec.Struct, kw_only=True):
    """Someone the force's directory vouched for (a validated ID token), and what their groups give."""

    issuer: str
    subject: str
    name: str
    """The user name central gives them when it first sees them (``central.access.oidc``)."""
    groups: list[str]
    """Every group the directory listed (kept with the link, for the audit's and the admin's eyes)."""
    matched: list[str] = []
    """The groups that gave the role (empty when none did)."""
    role: str = "viewer"
    borough: str | None = None


class Session(msgspec.Struct, kw_only=True):
    user: User
    csrf: str
    expires_at: datetime


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise BadRequest(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise BadRequest("a password may have at most 1024 characters")


class UserService:
    def __init__(self, writer: Database, throttle: LoginThrottle | None = None) -> None:
        self.writer = writer
        self.throttle = throttle or LoginThrottle(writer)

    # -- users -------------------------------------------------------------------------------

    def add(self, name: str, role: str, actor: str, *, password: str | None = None, borough: str | None = None) -> User:
        if not _valid_name(name):
            raise BadRequest(
                f"user name {name!r}: lower-case letters, digits, '.', '_' or '-', at most 64, "
                "starting with a letter or digit"
            )
        if role not in ROLES:
            raise BadRequest(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        if borough is not None and role not in BOROUGH_ROLES:
            raise BadRequest(f"only a {' or an '.join(r.replace('_', ' ') for r in BOROUGH_ROLES)} has a borough")
        if password is not None:
            check_password_strength(password)
        with self.writer.write() as db:
            if db.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchone():
                raise Conflict(f"user {name} exists already")
            db.execute(
                "INSERT INTO users (name, role, borough, password_hash, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [name, role, borough, hash_password(password) if password else None, to_iso(utc_now()), actor],
            )
            audit.record(
                db,
                actor=actor,
                action="user-add",
                object_type="user",
                object_id=name,
                detail=f"role {role}" + (f", borough {borough}" if borough else ""),
            )
            return self._user(db, name)

    def set_password(self, name: str, password: str, actor: str) -> None:
        check_password_strength(password)
        with self.writer.write() as db:
            self._user(db, name)
            db.execute("UPDATE users SET password_hash = ? WHERE name = ?", [hash_password(password), name])
            db.execute('DELETE FROM sessions WHERE "user" = ?', [name])  # logged out everywhere
            audit.record(db, actor=actor, action="password-set", object_type="user", object_id=name)

    def disable(self, name: str, actor: str) -> User:
        with self.writer.write() as db:
            user = self._user(db, name)
            if user.disabled_at is not None:
                raise Conflict(f"user {name} is disabled already")
            now = to_iso(utc_now())
            db.execute("UPDATE users SET disabled_at = ? WHERE name = ?", [now, name])
            db.execute('UPDATE api_tokens SET revoked_at = ? WHERE "user" = ? AND revoked_at IS NULL', [now, name])
            db.execute('DELETE FROM sessions WHERE "user" = ?', [name])
            audit.record(
                db,
                actor=actor,
                action="user-disable",
                object_type="user",
                object_id=name,
                detail="its tokens revoked and sessions ended",
            )
            return self._user(db, name)

    def all(self) -> list[User]:
        with self.writer.read() as db:
            return [_user(r) for r in db.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY name")]

    @staticmethod
    def _user(db, name: str) -> User:
        row = db.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?", [name]).fetchone()
        if row is None:
            raise NotFound(f"no user {name}")
        return _user(row)

    # -- API tokens --------------------------------------------------------------------------

    def create_token(self, name: str, label: str, actor: str, *, days: int | None = None) -> NewToken:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = utc_now()
        with self.writer.write() as db:
            user = self._user(db, name)
            if user.disabled_at is not None:
                raise Conflict(f"user {name} is disabled")
            token_id = db.execute(
                'INSERT INTO api_tokens ("user", label, token_sha256, created_at, expires_at) VALUES (?, ?, ?, ?, ?) '
                "RETURNING id",
                [name, label, sha256_hex(token), to_iso(now), to_iso(now + timedelta(days=days)) if days else None],
            ).fetchone()[0]
            audit.record(
                db,
                actor=actor,
                action="token-create",
                object_type="user",
                object_id=name,
                detail=f"token {token_id} ({label})" + (f", {days} days" if days else ""),
            )
            return NewToken(token=token, info=self._token(db, token_id))

    def tokens(self, name: str | None = None) -> list[ApiToken]:
        with self.writer.read() as db:
            rows = db.execute(
                f"SELECT {_TOKEN_COLUMNS} FROM api_tokens" + (' WHERE "user" = ?' if name else "") + " ORDER BY id",
                [name] if name else [],
            ).fetchall()
        return [_token(r) for r in rows]

    def revoke_token(self, token_id: int, actor: str) -> ApiToken:
        with self.writer.write() as db:
            token = self._token(db, token_id)
            if token.revoked_at is not None:
                raise Conflict(f"token {token_id} was revoked already")
            db.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ?", [to_iso(utc_now()), token_id])
            audit.record(
                db,
                actor=actor,
                action="token-revoke",
                object_type="user",
                object_id=token.user,
                detail=f"token {token_id} ({token.label})",
            )
            return self._token(db, token_id)

    @staticmethod
    def _token(db, token_id: int) -> ApiToken:
        row = db.execute(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE id = ?", [token_id]).fetchone()
        if row is None:
            raise NotFound(f"no token {token_id}")
        return _token(row)

    def user_for_token(self, token: str) -> User | None:
        """The user an API token belongs to, if it is live (not revoked, not expired, user enabled)."""
        digest = sha256_hex(token)
        with self.writer.read() as db:
            row = db.execute(
                f"SELECT t.token_sha256, t.expires_at, {_U_COLUMNS} FROM api_tokens t "
                "JOIN users u ON u.name = t.user WHERE t.token_sha256 = ? AND t.revoked_at IS NULL "
                "AND u.disabled_at IS NULL",
                [digest],
            ).fetchone()
        if row is None or not hmac.compare_digest(row[0], digest):
            return None
        if row[1] is not None and from_iso(row[1]) <= utc_now():
            return None
        return _user(row[2:])

    # -- browser sessions --------------------------------------------------------------------

    def login(self, name: str, password: str, place: str) -> tuple[str, Session]:
        """Check the password; a new session (its cookie value, and the session). Audited either way.

        ``place`` is where the attempt came from (``browser:<address>``): failures are counted
        per name and per place, and a locked one is refused (TooManyRequests) before any check."""
        counted = self.throttle.admit(name[:64], place)
        with self.writer.read() as db:
            row = db.execute(f"SELECT {_USER_COLUMNS}, password_hash FROM users WHERE name = ?", [name[:64]]).fetchone()
        user = _user(row[:-1]) if row else None
        ok = password_matches(password[:1024], row[-1] if row else None)
        if not ok or user is None or user.disabled_at is not None:
            with self.writer.write() as db:
                audit.record(
                    db,
                    actor=name[:64] or "-",
                    action="login-failed",
                    object_type="user",
                    object_id=name[:64] or "-",
                    place=place,
                    detail="disabled user" if ok and user is not None else "wrong name or password",
                )
                self.throttle.failed(db, name[:64], place, counted)
            raise Unauthorized("wrong user name or password")
        with self.writer.write() as db:
            cookie, session = _start_session(db, user)
            audit.record(db, actor=user.name, action="login", object_type="user", object_id=user.name, place=place)
            self.throttle.succeeded(db, user.name, place, counted)
        return cookie, session

    def directory_sign_in(self, member: DirectoryMember, place: str) -> tuple[str, Session]:
        """A new session for someone the directory vouched for, their user made or brought up to
        date first: the role and borough are the directory's groups' at this sign-in, for every
        session of theirs from now on. The link is the directory's subject, never the name, so a
        directory account can never take over a local one of the same name (refused: Conflict).
        A disabled user stays disabled whatever the directory says. Audited either way."""
        now = to_iso(utc_now())
        refused: ApiError | None = None
        with self.writer.write() as db:
            row = db.execute(
                'SELECT "user" FROM directory_identities WHERE issuer = ? AND subject = ?',
                [member.issuer, member.subject],
            ).fetchone()
            name = row[0] if row else member.name
            user = self._user(db, name) if row else None
            if row is None and db.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchone():
                refused = Conflict(
                    f"the directory names you {name}, which is another account here: ask an administrator"
                )
            elif user is not None and user.disabled_at is not None:
                refused = Unauthorized(f"user {name} is disabled here")
            if refused is not None:
                _refusal(db, member, place, refused.message)
            else:
                cookie, session = self._bring_up_to_date(db, member, name, user, now, place)
        if refused is not None:
            raise refused
        return cookie, session

    def _bring_up_to_date(
        self, db, member: DirectoryMember, name: str, user: User | None, now: str, place: str
    ) -> tuple[str, Session]:
        groups = msgspec.json.encode(member.groups).decode()
        actor = f"directory:{member.issuer}"
        if user is None:
            db.execute(
                "INSERT INTO users (name, role, borough, password_hash, created_at, created_by) "
                "VALUES (?, ?, ?, NULL, ?, ?)",
                [name, member.role, member.borough, now, actor],
            )
            db.execute(
                'INSERT INTO directory_identities (issuer, subject, "user", groups, signed_in_at) '
                "VALUES (?, ?, ?, ?, ?)",
                [member.issuer, member.subject, name, groups, now],
            )
            audit.record(
                db,
                actor=actor,
                action="user-add",
                object_type="user",
                object_id=name,
                detail=f"subject {member.subject}, {_grant(member)}",
            )
        else:
            db.execute("UPDATE users SET role = ?, borough = ? WHERE name = ?", [member.role, member.borough, name])
            db.execute(
                "UPDATE directory_identities SET groups = ?, signed_in_at = ? WHERE issuer = ? AND subject = ?",
                [groups, now, member.issuer, member.subject],
            )
            if (user.role, user.borough) != (member.role, member.borough):
                audit.record(
                    db,
                    actor=actor,
                    action="user-role",
                    object_type="user",
                    object_id=name,
                    detail=f"{_grant(user)} → {_grant(member)}, from the directory's groups",
                )
        cookie, session = _start_session(db, self._user(db, name))
        audit.record(
            db,
            actor=name,
            action="login",
            object_type="user",
            object_id=name,
            place=place,
            detail=f"through the directory: groups {', '.join(member.matched)} → {_grant(member)}",
        )
        return cookie, session

    def directory_refused(self, member: DirectoryMember, place: str, reason: str) -> None:
        """Audit a sign-in the directory vouched for but central refuses (the groups give no role).
        A linked user's sessions end too: the directory has just said they may do nothing here."""
        with self.writer.write() as db:
            _refusal(db, member, place, reason)

    def directory_user(self, name: str) -> bool:
        """Whether ``name`` signs in through the directory."""
        with self.writer.read() as db:
            return db.execute('SELECT 1 FROM directory_identities WHERE "user" = ?', [name]).fetchone() is not None

    def session(self, cookie: str) -> Session | None:
        digest = sha256_hex(cookie)
        with self.writer.read() as db:
            row = db.execute(
                f"SELECT s.id_sha256, s.csrf, s.expires_at, {_U_COLUMNS} FROM sessions s "
                "JOIN users u ON u.name = s.user WHERE s.id_sha256 = ? AND u.disabled_at IS NULL",
                [digest],
            ).fetchone()
        if row is None or not hmac.compare_digest(row[0], digest) or from_iso(row[2]) <= utc_now():
            return None
        return Session(user=_user(row[3:]), csrf=row[1], expires_at=from_iso(row[2]))

    def logout(self, cookie: str, place: str) -> str | None:
        """End the session; the name of its user (None: there was no such session)."""
        with self.writer.write() as db:
            row = db.execute(
                'DELETE FROM sessions WHERE id_sha256 = ? RETURNING "user"', [sha256_hex(cookie)]
            ).fetchone()
            if row:
                audit.record(db, actor=row[0], action="logout", object_type="user", object_id=row[0], place=place)
        return row[0] if row else None


def _start_session(db, user: User) -> tuple[str, Session]:
    """A new browser session for ``user`` (its cookie value, and the session), in ``db``'s transaction."""
    cookie = secrets.token_urlsafe(32)
    now = utc_now()
    session = Session(user=user, csrf=secrets.token_urlsafe(32), expires_at=now + timedelta(hours=SESSION_HOURS))
    db.execute("DELETE FROM sessions WHERE expires_at <= ?", [to_iso(now)])
    db.execute(
        'INSERT INTO sessions (id_sha256, "user", csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)',
        [sha256_hex(cookie), user.name, session.csrf, to_iso(now), to_iso(session.expires_at)],
    )
    return cookie, session


def _refusal(db, member: DirectoryMember, place: str, reason: str) -> None:
    """A refused directory sign-in, audited; a linked user's sessions ended."""
    row = db.execute(
        'SELECT "user" FROM directory_identities WHERE issuer = ? AND subject = ?', [member.issuer, member.subject]
    ).fetchone()
    ended = db.execute('DELETE FROM sessions WHERE "user" = ?', [row[0]]).rowcount if row else 0
    audit.record(
        db,
        actor=f"directory:{member.issuer}",
        action="login-failed",
        object_type="user",
        object_id=row[0] if row else member.name,
        place=place,
        detail=f"subject {member.subject}: {reason}" + (f"; their {ended} session(s) ended" if ended else ""),
    )


def _grant(who) -> str:
    return f"role {who.role}" + (f" for {who.borough}" if who.borough else " force-wide")


_USER_COLUMNS = "name, role, borough, created_at, created_by, disabled_at, password_hash IS NOT NULL"
_U_COLUMNS = ", ".join(f"u.{c}" for c in _USER_COLUMNS.split(", "))
_TOKEN_COLUMNS = 'id, "user", label, created_at, expires_at, revoked_at'


def _user(r) -> User:
    return User(
        name=r[0],
        role=r[1],
        borough=r[2],
        created_at=from_iso(r[3]),
        created_by=r[4],
        disabled_at=from_iso(r[5]) if r[5] else None,
        has_password=bool(r[6]),
    )


def _token(r) -> ApiToken:
    return ApiToken(
        id=r[0],
        user=r[1],
        label=r[2],
        created_at=from_iso(r[3]),
        expires_at=from_iso(r[4]) if r[4] else None,
        revoked_at=from_iso(r[5]) if r[5] else None,
    )


def _valid_name(name: str) -> bool:
    try:
        msgspec.convert(name, UserName)
        return True
    except msgspec.ValidationError:
        return False
