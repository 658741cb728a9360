"""Users, roles, API tokens and browser sessions at central; every login audited."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from central.access.users import UserService, hash_password, password_matches
from central.core.providers import services
from central.evidence import audit
from fleet.errors import BadRequest, Conflict, Unauthorized
from tests.central.conftest import ADMIN
from tests.test_cli import ROOT

PASSWORD = "correct horse battery"  # a test value, not a secret


def test_passwords_are_salted_scrypt_and_checked():
    stored = hash_password(PASSWORD)
    assert stored.startswith("scrypt$16384$8$1$") and PASSWORD not in stored
    assert stored != hash_password(PASSWORD)  # a salt of its own
    assert password_matches(PASSWORD, stored) and not password_matches(PASSWORD + "!", stored)
    assert not password_matches(PASSWORD, None)


@pytest.fixture
def users(client):
    return services(client.app).users


def trail(client, name):
    with services(client.app).store.writer.read() as db:
        return [(r.action, r.detail) for r in audit.records_for(db, "user", name)]


def test_adding_users_is_validated_and_audited(users, client):
    users.add("j.smith", "supervisor", "admin", password=PASSWORD, borough="Camden")
    with pytest.raises(Conflict):
        users.add("j.smith", "viewer", "admin")
    with pytest.raises(BadRequest, match="unknown role"):
        users.add("k.jones", "chief", "admin")
    with pytest.raises(BadRequest, match="at least 12"):
        users.add("k.jones", "viewer", "admin", password="short")
    with pytest.raises(BadRequest, match="user name"):
        users.add("Robert'); DROP", "viewer", "admin")
    with pytest.raises(BadRequest, match="only a supervisor or an information manager"):
        users.add("k.jones", "planner", "admin", borough="Camden")
    assert trail(client, "j.smith") == [("user-add", "role supervisor, borough Camden")]


def test_logins_and_failed_logins_are_audited(users, client):
    users.add("j.smith", "viewer", "admin", password=PASSWORD)
    with pytest.raises(Unauthorized):
        users.login("j.smith", "wrong password!", "192.0.2.7")
    with pytest.raises(Unauthorized):
        users.login("nobody", PASSWORD, "192.0.2.7")
    cookie, _session = users.login("j.smith", PASSWORD, "192.0.2.8")
    assert users.session(cookie).user.name == "j.smith" and users.session("forged") is None
    users.logout(cookie, "192.0.2.8")
    assert users.session(cookie) is None
    assert [a for a, _ in trail(client, "j.smith")] == ["logout", "login", "login-failed", "user-add"]
    assert [a for a, _ in trail(client, "nobody")] == ["login-failed"]
    with services(client.app).store.writer.read() as db:
        assert db.execute("SELECT count(*) FROM sessions WHERE id_sha256 = ?", [cookie]).fetchone()[0] == 0


def test_a_new_password_or_disabling_ends_sessions_and_tokens(users):
    users.add("j.smith", "viewer", "admin", password=PASSWORD)
    cookie, _ = users.login("j.smith", PASSWORD, "-")
    users.set_password("j.smith", PASSWORD + " 2", "admin")
    assert users.session(cookie) is None
    token = users.create_token("j.smith", "export", "admin").token
    assert users.user_for_token(token).name == "j.smith"
    users.disable("j.smith", "admin")
    assert users.user_for_token(token) is None
    with pytest.raises(Unauthorized):
        users.login("j.smith", PASSWORD + " 2", "-")


def test_api_tokens_act_with_their_users_role(users, client):
    users.add("p.lan", "planner", "admin")
    users.add("v.iew", "viewer", "admin")
    planner = {"Authorization": f"Bearer {users.create_token('p.lan', 'script', 'admin').token}"}
    viewer = {"Authorization": f"Bearer {users.create_token('v.iew', 'script', 'admin').token}"}
    assert client.get("/api/v1/devices/", headers=viewer).status_code == 200
    assert client.get("/api/v1/clips/", headers=viewer).status_code == 403  # fleet data is not footage
    assert client.get("/api/v1/rollout/progress", headers=planner).status_code != 403
    assert (
        client.post("/api/v1/holds", headers=planner, json={"kind": "clip", "clip_id": "x", "reason": "x"}).status_code
        == 403
    )
    stored = users.tokens("p.lan")[0]
    users.revoke_token(stored.id, "admin")
    assert client.get("/api/v1/devices/", headers=planner).status_code == 401
    assert client.get("/api/v1/devices/", headers={"Authorization": "Bearer bwv_made-up"}).status_code == 401


def _cli(*args, stdin: str = ""):
    return subprocess.run(
        [sys.executable, "-m", "fleet.cli", "central", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.slow  # a CLI in a subprocess: the whole suite, not test-fast
@pytest.mark.sqlite_only  # its config names no database: SQLite whatever the test's database, so once
def test_the_user_and_token_commands(tmp_path):
    config = tmp_path / "central.toml"
    config.write_text('data_dir = "central"\nadmin_token = "t"\n')
    added = _cli(
        "add-user", "a.dmin", "--role", "admin", "--password-stdin", "--config", str(config), stdin=PASSWORD + "\n"
    )
    assert added.returncode == 0 and "user a.dmin added: admin" in added.stdout
    no_tty = _cli("add-user", "b.user", "--role", "viewer", "--config", str(config))
    assert no_tty.returncode != 0 and "--password-stdin" in no_tty.stderr
    weak = _cli("add-user", "b.user", "--role", "viewer", "--password-stdin", "--config", str(config), stdin="x\n")
    assert weak.returncode != 0 and "at least 12" in weak.stderr and "Traceback" not in weak.stderr
    created = _cli("token", "create", "a.dmin", "--label", "nightly export", "--config", str(config))
    assert created.returncode == 0 and created.stdout.startswith("bwv_") and "shown once" in created.stderr
    listed = _cli("token", "list", "--config", str(config))
    assert "nightly export" in listed.stdout and created.stdout.strip() not in listed.stdout
    assert _cli("token", "revoke", "1", "--config", str(config)).returncode == 0
    assert "revoked" in _cli("token", "list", "--config", str(config)).stdout
    assert "a.dmin" in _cli("users", "--config", str(config)).stdout
    assert _cli("disable-user", "a.dmin", "--config", str(config)).returncode == 0
    assert (
        _cli("set-password", "nobody", "--password-stdin", "--config", str(config), stdin=PASSWORD + "\n").returncode
        != 0
    )


def test_a_borough_supervisor_acts_on_their_borough_only(users, client):
    from tests.central.conftest import BARNET
    from tests.central.fleetdata import docked, ingested, post

    client.post(
        "/api/v1/officers/",
        headers=ADMIN,
        json=[{"officer_id": "PC1", "borough": "Camden"}, {"officer_id": "PC2", "borough": "Barnet"}],
    )
    client.post(
        "/api/v1/devices/",
        headers=ADMIN,
        json=[
            {"serial": "CAM-1", "borough": "Camden", "assignment_mode": "personal"},
            {"serial": "BAR-1", "borough": "Barnet", "assignment_mode": "personal"},
        ],
    )
    users.add("s.camden", "supervisor", "admin", borough="Camden")
    sup = {"Authorization": f"Bearer {users.create_token('s.camden', 'x', 'admin').token}"}
    assert (
        client.post(
            "/api/v1/assignments", headers=sup, json={"device_serial": "CAM-1", "officer_id": "PC1"}
        ).status_code
        == 201
    )
    barnet = client.post("/api/v1/assignments", headers=sup, json={"device_serial": "BAR-1", "officer_id": "PC2"})
    assert barnet.status_code == 403 and "outside s.camden's scope (Camden only)" in barnet.json()["message"]
    assert (
        client.post(
            "/api/v1/assignments", headers=ADMIN, json={"device_serial": "BAR-1", "officer_id": "PC2"}
        ).status_code
        == 201
    )
    assert client.post("/api/v1/assignments/BAR-1/end", headers=sup, json={"reason": "x"}).status_code == 403
    assert (
        client.post(
            "/api/v1/holds",
            headers=sup,
            json={
                "kind": "officer",
                "officer_id": "PC2",
                "window_from": "2026-01-01T00:00:00Z",
                "window_to": "2026-01-02T00:00:00Z",
                "reason": "complaint",
            },
        ).status_code
        == 403
    )
    assert (
        client.post("/api/v1/holds", headers=sup, json={"kind": "case", "case_ref": "C1", "reason": "x"}).status_code
        == 403
    )
    theirs = ingested("BAR-9", 2)
    client.post("/api/v1/devices/", headers=ADMIN, json=[{"serial": "BAR-9", "borough": "Barnet"}])
    post(client, BARNET, [docked("BAR-9", 3, clips=1), theirs], hours=[3, 3])
    assert client.get("/api/v1/unattributed", headers=sup).json() == []  # Barnet's camera: not listed for Camden
    assert (
        client.post(
            f"/api/v1/clips/{theirs.clip_id}/attribution", headers=sup, json={"officer_id": "PC1", "reason": "x"}
        ).status_code
        == 403
    )


class Clock:
    """A hand-driven clock for the login throttle."""

    def __init__(self) -> None:
        from fleet.clock import utc_now

        self.now = utc_now()

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clocked(client):
    from central.access.login_throttle import LoginThrottle

    clock = Clock()
    writer = services(client.app).store.writer
    return UserService(writer, LoginThrottle(writer, clock=clock)), clock


def attempt(users, name, password, place="browser:192.0.2.7"):
    """What a login attempt answered: 'ok', 'wrong' or the seconds to wait."""
    from fleet.errors import TooManyRequests

    try:
        users.login(name, password, place)
        return "ok"
    except Unauthorized:
        return "wrong"
    except TooManyRequests as exc:
        assert "too many failed logins" in exc.message
        return int(exc.headers["Retry-After"])


def test_failed_logins_lock_the_account_for_growing_times(clocked, client):
    from central.access.login_throttle import ACCOUNT_FREE, BASE_LOCK_S

    users, clock = clocked
    users.add("j.smith", "viewer", "admin", password=PASSWORD)
    assert [attempt(users, "j.smith", "wrong password!") for _ in range(ACCOUNT_FREE)] == ["wrong"] * ACCOUNT_FREE
    assert attempt(users, "j.smith", PASSWORD) == BASE_LOCK_S  # the right password, refused unchecked
    clock.advance(BASE_LOCK_S + 1)
    assert attempt(users, "j.smith", "wrong again!!") == "wrong"
    assert attempt(users, "j.smith", PASSWORD, place="browser:198.51.100.1") == 2 * BASE_LOCK_S  # any address
    clock.advance(2 * BASE_LOCK_S + 1)
    assert attempt(users, "j.smith", PASSWORD) == "ok"
    assert attempt(users, "j.smith", "wrong password!") == "wrong"  # a success starts the count again
    assert attempt(users, "j.smith", PASSWORD) == "ok"
    actions = [a for a, _ in trail(client, "j.smith")]
    assert actions.count("login-lockout") == 2 and actions.count("login-throttled") == 2
    assert any("locked for 60 s" in d for a, d in trail(client, "j.smith") if a == "login-lockout")


def test_a_locked_out_answer_does_not_tell_whether_the_account_exists(clocked):
    from central.access.login_throttle import ACCOUNT_FREE

    users, _ = clocked
    users.add("j.smith", "viewer", "admin", password=PASSWORD)
    answers = {}
    for name in ("j.smith", "n.obody"):
        seen = [attempt(users, name, "wrong password!", place=f"browser:{name}") for _ in range(ACCOUNT_FREE + 2)]
        answers[name] = seen
    assert answers["j.smith"] == answers["n.obody"]


def test_many_names_from_one_address_lock_that_address(clocked, client):
    from central.access.login_throttle import ADDRESS_FREE

    users, _ = clocked
    users.add("j.smith", "viewer", "admin", password=PASSWORD)
    assert {attempt(users, f"guess{i}", "wrong password!") for i in range(ADDRESS_FREE)} == {"wrong"}
    assert isinstance(attempt(users, "j.smith", PASSWORD), int)
    assert attempt(users, "j.smith", PASSWORD, place="browser:198.51.100.1") == "ok"
    with services(client.app).store.writer.read() as db:
        assert [r.action for r in audit.records_for(db, "address", "browser:192.0.2.7")] == [
            "login-throttled",
            "login-lockout",
        ]


def test_a_lockout_is_kept_in_the_database_across_restarts(client, settings):
    from central.access.login_throttle import ACCOUNT_FREE
    from central.core.store import CentralStore

    users = services(client.app).users
    users.add("j.smith", "viewer", "admin", password=PASSWORD)
    for _ in range(ACCOUNT_FREE):
        attempt(users, "j.smith", "wrong password!")
    other = CentralStore.open(settings)  # another process on the same database, or central restarted
    try:
        assert isinstance(attempt(UserService(other.writer), "j.smith", PASSWORD), int)
    finally:
        other.close()


def test_logins_sent_all_at_once_are_counted_as_if_sent_one_by_one(clocked, client):
    """Each attempt is counted before its password is hashed: a burst of parallel guesses (each
    from its own address) has no more passwords tried than the account's count allows."""
    from concurrent.futures import ThreadPoolExecutor

    from central.access.login_throttle import ACCOUNT_FREE

    users, _ = clocked
    users.add("j.smith", "viewer", "admin", password=PASSWORD)
    with ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(lambda i: attempt(users, "j.smith", f"guess number {i}", place=f"browser:10.0.0.{i}"), range(32))
        )
    assert answers.count("wrong") == ACCOUNT_FREE, answers
    assert [a for a, _ in trail(client, "j.smith")].count("login-failed") == ACCOUNT_FREE


def test_a_successful_login_gives_back_what_its_address_was_counted(clocked):
    from central.access.login_throttle import ADDRESS_FREE

    users, _ = clocked
    users.add("j.smith", "viewer", "admin", password=PASSWORD)
    assert {attempt(users, f"guess{i}", "wrong password!") for i in range(ADDRESS_FREE - 1)} == {"wrong"}
    for _ in range(3):  # an office's right logins do not lock the address it shares
        assert attempt(users, "j.smith", PASSWORD) == "ok"
    assert attempt(users, "guess-last", "wrong password!") == "wrong"  # the 20th failure locks it
    assert isinstance(attempt(users, "j.smith", PASSWORD), int)


@pytest.mark.slow  # 1-2 s: the whole suite runs it, the quick lane stays under 2 minutes
def test_right_logins_after_an_address_lockout_neither_lock_it_again_nor_keep_its_count(clocked):
    from central.access.login_throttle import ADDRESS_FREE, FORGET_AFTER_S, MAX_LOCK_S

    users, clock = clocked
    users.add("j.smith", "viewer", "admin", password=PASSWORD)
    users.add("a.jones", "viewer", "admin", password=PASSWORD)
    for i in range(ADDRESS_FREE + 5):  # a guesser on the office's shared address
        attempt(users, f"guess{i}", "wrong password!")
        clock.advance(MAX_LOCK_S + 1)
    for _ in range(4):  # the lock is over: the office logs in, one after another
        assert attempt(users, "j.smith", PASSWORD) == "ok"
        assert attempt(users, "a.jones", PASSWORD) == "ok"
        clock.advance(FORGET_AFTER_S / 3)
    # an hour and more after the last failure, the address's count is forgotten however many right logins came since
    assert {attempt(users, f"typo{i}", "wrong password!") for i in range(ADDRESS_FREE - 1)} == {"wrong"}
