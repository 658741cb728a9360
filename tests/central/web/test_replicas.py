"""The dashboard through two central processes on one database, as a round-robin balancer
serves it: a browser's every request may land on either, and nothing it holds is one
process's (the login form's token, the session, its CSRF token, the failed-login count)."""

from __future__ import annotations

import itertools

import pytest

from central.core.providers import services
from tests.central.apps import central_client
from tests.central.web.test_dashboard import PASSWORD, csrf_of, login_csrf_of


@pytest.fixture
def replicas(settings):
    """Two apps on one database, each a client on https (session cookies are Secure)."""
    with (
        central_client(settings, base_url="https://central.test", raise_server_exceptions=False) as one,
        central_client(settings, base_url="https://central.test", raise_server_exceptions=False) as two,
    ):
        services(one.app).users.add("v.iewer", "viewer", "test", password=PASSWORD)
        yield one, two


class Browser:
    """One cookie jar, each request sent through the next replica in turn."""

    def __init__(self, replicas) -> None:
        self.turns = itertools.cycle(replicas)
        self.cookies: dict[str, str] = {}

    def send(self, method: str, path: str, **kwargs):
        client = next(self.turns)
        client.cookies.clear()
        client.cookies.update(self.cookies)
        response = client.request(method, path, follow_redirects=False, **kwargs)
        self.cookies = {cookie.name: cookie.value for cookie in client.cookies.jar}  # as the answer left them
        return response


def test_a_browser_logs_in_works_and_logs_out_whichever_replica_answers(replicas):
    browser = Browser(replicas)
    token = login_csrf_of(browser.send("GET", "/login").text)  # from the first
    logged_in = browser.send(  # posted to the second
        "POST", "/login", data={"name": "v.iewer", "password": PASSWORD, "next": "/", "csrf_token": token}
    )
    assert logged_in.status_code == 303, logged_in.text
    overview = browser.send("GET", "/")  # the first again: the session is the database's
    assert overview.status_code == 200
    assert browser.send("GET", "/devices").status_code == 200
    assert browser.send("POST", "/logout", data={"csrf_token": "forged"}).status_code == 403
    out = browser.send("POST", "/logout", data={"csrf_token": csrf_of(overview.text)})  # a token the other gave
    assert out.status_code == 303 and out.headers["location"] == "/login"
    for _ in replicas:  # ended on both
        assert browser.send("GET", "/").status_code == 302


def test_failed_logins_are_counted_once_across_replicas(replicas):
    from central.access.login_throttle import ACCOUNT_FREE

    answers = []
    for _ in range(ACCOUNT_FREE + 1):
        browser = Browser(replicas)  # a fresh cookie jar every time: the count is kept in the database
        token = login_csrf_of(browser.send("GET", "/login").text)
        data = {"name": "v.iewer", "password": "not the password", "next": "/", "csrf_token": token}
        answers.append(browser.send("POST", "/login", data=data).status_code)
    assert answers == [401] * ACCOUNT_FREE + [429]
