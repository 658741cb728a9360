"""Staff sign in through the force's directory: a real OpenID Connect provider (a process of its
own), central's dashboard in a browser's shoes, each refusal audited."""

from __future__ import annotations

import json
import re
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from central.access import oidc
from central.core.providers import services
from tests.central.apps import central_client
from tests.central.conftest import make_settings
from tests.central.web.test_dashboard import PASSWORD, csrf_of, log_in
from tests.support.oidc_provider import running_provider

pytestmark = pytest.mark.slow  # a provider process per module

CALLBACK = "https://central.test/login/oidc/callback"
GROUPS = {
    "BWV-Admins": {"role": "admin"},
    "BWV-Supervisors-Camden": {"role": "supervisor", "borough": "Camden"},
    "BWV-Viewers": {"role": "viewer"},
}


@pytest.fixture(scope="module")
def provider():
    with running_provider() as running:
        yield running


@pytest.fixture
def browser(tmp_path, provider):
    settings = make_settings(
        tmp_path / "central",
        oidc={
            "issuer": provider.issuer,
            "client_id": "bwv-fleet",
            "client_secret": "test-client-secret",  # a test value, not a secret
            "redirect_url": CALLBACK,
            "display_name": "the Met directory",
            "groups": GROUPS,
        },
    )
    with central_client(settings, base_url="https://central.test", raise_server_exceptions=False) as c:
        yield c


def begin(browser, provider, next_path="/"):
    """Central sends the browser to the directory: where to."""
    started = browser.get("/login/oidc", params={"next": next_path}, follow_redirects=False)
    assert started.status_code == 303, started.text
    assert started.headers["location"].startswith(provider.url + "/oauth2/authorize?")
    assert "code_challenge_method=S256" in started.headers["location"]
    return started.headers["location"]


def sign_in(browser, provider, subject, next_path="/"):
    """The whole round: central → the directory (the user picks ``subject``) → central."""
    back = provider.authorize(begin(browser, provider, next_path), subject)
    assert back.startswith(CALLBACK + "?")
    return browser.get(back.removeprefix("https://central.test"), follow_redirects=False), back


def me(browser):
    """Who the browser's session is (None: no session)."""
    return services(browser.app).tokens.from_session(browser.cookies.get("bwv_session"))


def audit_details(browser, action):
    with services(browser.app).store.writer.read() as db:
        return [r[0] for r in db.execute("SELECT detail FROM audit WHERE action = ? ORDER BY id", [action])]


def test_the_login_page_offers_the_directory_and_a_member_signs_in_with_their_groups_role(browser, provider):
    assert "Sign in with the Met directory" in browser.get("/login").text
    provider.set_user("sub-1", preferred_username="J.Smith@met", groups=["Canteen", "BWV-Supervisors-Camden"])
    answer, _ = sign_in(browser, provider, "sub-1", next_path="/devices")
    assert answer.status_code == 303 and answer.headers["location"] == "/devices"
    assert "HttpOnly" in answer.headers["set-cookie"]
    principal = me(browser)
    assert principal.name == "j.smith-met" and principal.roles == {"supervisor"} and principal.acts_for == "Camden"
    assert browser.get("/devices").status_code == 200
    assert browser.get("/audit").status_code == 403  # a supervisor is no auditor
    assert any("BWV-Supervisors-Camden → role supervisor for Camden" in d for d in audit_details(browser, "login"))
    assert audit_details(browser, "user-add") == ["subject sub-1, role supervisor for Camden"]


def test_a_member_whose_groups_give_no_role_is_refused_and_audited(browser, provider):
    provider.set_user("sub-2", preferred_username="canteen", groups=["Canteen"])
    answer, _ = sign_in(browser, provider, "sub-2")
    assert answer.status_code == 403 and "none of your groups is given a role here" in answer.text
    assert me(browser) is None
    assert audit_details(browser, "login-failed") == [
        "subject sub-2: no role: none of their directory groups is given one here"
    ]
    with services(browser.app).store.writer.read() as db:
        assert db.execute("SELECT count(*) FROM users WHERE name = 'canteen'").fetchone()[0] == 0


def test_a_changed_group_takes_effect_at_the_next_sign_in_and_a_removed_one_ends_the_sessions(browser, provider):
    provider.set_user("sub-3", preferred_username="a.dmin", groups=["BWV-Admins"])
    assert sign_in(browser, provider, "sub-3")[0].status_code == 303
    first = browser.cookies.get("bwv_session")
    assert me(browser).roles == {"admin"}
    provider.set_user("sub-3", preferred_username="a.dmin", groups=["BWV-Viewers"])
    assert me(browser).roles == {"admin"}  # the directory is asked only at a sign-in
    assert sign_in(browser, provider, "sub-3")[0].status_code == 303
    assert me(browser).roles == {"viewer"}
    tokens = services(browser.app).tokens
    assert tokens.from_session(first).roles == {"viewer"}  # the earlier session too: one user row
    assert audit_details(browser, "user-role") == [
        "role admin force-wide → role viewer force-wide, from the directory's groups"
    ]
    provider.set_user("sub-3", preferred_username="a.dmin", groups=[])
    assert sign_in(browser, provider, "sub-3")[0].status_code == 403
    assert tokens.from_session(first) is None  # every session of theirs ended
    assert "their 2 session(s) ended" in audit_details(browser, "login-failed")[-1]


def test_logout_ends_the_session_and_goes_through_the_directorys_end_session(browser, provider):
    provider.set_user("sub-4", preferred_username="v.iewer", groups=["BWV-Viewers"])
    sign_in(browser, provider, "sub-4")
    cookie = browser.cookies.get("bwv_session")
    out = browser.post("/logout", data={"csrf_token": csrf_of(browser.get("/").text)}, follow_redirects=False)
    assert out.status_code == 303
    to = urlsplit(out.headers["location"])
    assert f"{to.scheme}://{to.netloc}{to.path}" == provider.url + "/oauth2/end_session"
    assert parse_qs(to.query) == {
        "client_id": ["bwv-fleet"],
        "post_logout_redirect_uri": ["https://central.test/login"],
    }
    assert services(browser.app).tokens.from_session(cookie) is None
    assert browser.get("/", follow_redirects=False).status_code == 302
    assert httpx.get(out.headers["location"]).status_code == 200  # the directory's own page


def test_an_answer_is_used_once_and_only_by_the_browser_that_began_it(browser, provider):
    provider.set_user("sub-5", preferred_username="r.eplay", groups=["BWV-Viewers"])
    first, back = sign_in(browser, provider, "sub-5")
    assert first.status_code == 303
    again = browser.get(back.removeprefix("https://central.test"), follow_redirects=False)
    assert again.status_code == 400 and "expired or was used already" in again.text
    # Login CSRF: an attacker's own answer planted in a victim's browser finds no sign-in begun there.
    theirs = provider.authorize(begin(browser, provider), "sub-5").removeprefix("https://central.test")
    attackers = browser.cookies.get(oidc.COOKIE)
    browser.cookies.clear()  # now the victim's browser: it never began a sign-in
    planted = browser.get(theirs, follow_redirects=False)
    assert planted.status_code == 400 and "begun in another browser" in planted.text
    assert me(browser) is None
    # ... and once refused, the answer is spent: the attacker's browser cannot use it either.
    browser.cookies.set(oidc.COOKIE, attackers, domain="central.test", path="/login/oidc")
    assert browser.get(theirs, follow_redirects=False).status_code == 400


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/x", "javascript:alert(1)", "/\\evil.example", "/\t/evil.example"],
)
def test_no_open_redirect_after_a_directory_sign_in(browser, provider, target):
    provider.set_user("sub-6", preferred_username="n.ext", groups=["BWV-Viewers"])
    assert sign_in(browser, provider, "sub-6", next_path=target)[0].headers["location"] == "/"


def test_a_directory_account_never_takes_over_a_local_one_of_the_same_name(browser, provider):
    services(browser.app).users.add("b.reakglass", "admin", "test", password=PASSWORD)
    provider.set_user("sub-7", preferred_username="b.reakglass", groups=["BWV-Viewers"])
    answer, _ = sign_in(browser, provider, "sub-7")
    assert answer.status_code == 409 and "another account here" in answer.text
    assert me(browser) is None
    assert log_in(browser, name="b.reakglass").status_code == 303  # the local password still works


def test_the_directorys_error_answer_and_a_forged_state_are_refused(browser, provider):
    begin(browser, provider)
    answer = browser.get("/login/oidc/callback", params={"state": "forged", "code": "x"}, follow_redirects=False)
    assert answer.status_code == 400
    state = parse_qs(urlsplit(begin(browser, provider)).query)["state"][0]
    denied = browser.get("/login/oidc/callback", params={"state": state, "error": "access_denied"})
    assert denied.status_code == 400 and "did not sign you in (access_denied)" in denied.text


def test_without_oidc_there_is_no_directory_sign_in(client):
    assert "Sign in with" not in client.get("/login").text
    assert client.get("/login/oidc", follow_redirects=False).status_code == 404
    assert re.search("not set up here", client.get("/login/oidc").text)


def test_an_unreachable_directory_is_a_clear_503_and_local_logins_still_work(tmp_path):
    settings = make_settings(
        tmp_path / "central",
        oidc={
            "issuer": "http://127.0.0.1:9",  # the discard port: nothing answers
            "client_id": "bwv-fleet",
            "client_secret": "x",
            "redirect_url": CALLBACK,
            "groups": GROUPS,
        },
    )
    with central_client(settings, base_url="https://central.test", raise_server_exceptions=False) as c:
        answer = c.get("/login/oidc")
        assert answer.status_code == 503 and "cannot be reached" in answer.text
        services(c.app).users.add("v.iewer", "viewer", "test", password=PASSWORD)
        assert log_in(c).status_code == 303


@contextmanager
def garbled_directory():
    """A directory whose discovery document is right but whose token endpoint answers an HTML page."""
    where: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            base = where[0]
            document = {
                "issuer": base,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "jwks_uri": f"{base}/jwks",
            }
            self._answer(json.dumps(document).encode(), "application/json")

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self._answer(b"<html>502 Bad Gateway</html>", "text/html")

        def _answer(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    where.append(f"http://127.0.0.1:{server.server_port}")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield where[0]
    finally:
        server.shutdown()
        server.server_close()


def test_a_directory_answering_no_json_is_a_clear_503_not_a_500(tmp_path):
    with garbled_directory() as issuer:
        settings = make_settings(
            tmp_path / "central",
            oidc={
                "issuer": issuer,
                "client_id": "bwv-fleet",
                "client_secret": "x",
                "redirect_url": CALLBACK,
                "groups": GROUPS,
            },
        )
        with central_client(settings, base_url="https://central.test", raise_server_exceptions=False) as c:
            started = c.get("/login/oidc", follow_redirects=False)
            state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
            answer = c.get("/login/oidc/callback", params={"state": state, "code": "a-code"})
            assert answer.status_code == 503 and "no JSON object" in answer.text
