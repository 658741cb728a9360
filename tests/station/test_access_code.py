"""The desk's access code: wrong guesses locked out per address, through the page and the API alike."""

from __future__ import annotations

import httpx
import pytest
from litestar.testing import TestClient

from fleet.errors import ConfigError, TooManyRequests
from station.access_code import BASE_LOCK_S, FORGET_AFTER_S, FREE, MAX_LOCK_S, AccessCode
from station.api import create_desk_app
from tests.station.test_api import desk_settings, node
from tests.station.test_desk_page import ACCESS_CODE, DESK, PORT, csrf_of, line

CODE = "correct-desk-code-for-tests"  # a test value, not a secret


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def guess_wrong(access: AccessCode, times: int, address: str = "10.0.0.9") -> None:
    for _ in range(times):
        assert access.check("guess", address) is False


def test_an_address_is_locked_after_its_free_guesses_for_ever_longer_and_the_right_code_waits_too():
    clock = Clock()
    access = AccessCode(CODE, clock)
    guess_wrong(access, FREE)
    with pytest.raises(TooManyRequests) as locked:
        access.check(CODE, "10.0.0.9")  # refused unchecked while locked, even the right code
    assert locked.value.headers["Retry-After"] == str(int(BASE_LOCK_S))
    assert access.check(CODE, "10.0.0.10") is True  # another address is not held
    clock.now += BASE_LOCK_S
    guess_wrong(access, 1)  # one more wrong: locked for twice as long
    with pytest.raises(TooManyRequests) as longer:
        access.check(CODE, "10.0.0.9")
    assert longer.value.headers["Retry-After"] == str(int(2 * BASE_LOCK_S))
    for _ in range(20):  # never past the most
        clock.now += MAX_LOCK_S
        guess_wrong(access, 1)
    with pytest.raises(TooManyRequests) as most:
        access.check(CODE, "10.0.0.9")
    assert most.value.headers["Retry-After"] == str(int(MAX_LOCK_S))


def test_the_right_code_clears_the_count_and_an_old_count_is_forgotten():
    clock = Clock()
    access = AccessCode(CODE, clock)
    guess_wrong(access, FREE - 1)
    assert access.check(f"  {CODE} ", "10.0.0.9") is True  # as typed, spaces around it
    guess_wrong(access, FREE - 1)  # counted from zero again: not locked
    clock.now += FORGET_AFTER_S + 1
    guess_wrong(access, FREE - 1)  # forgotten: again not locked
    assert access.check(CODE, "10.0.0.9") is True


def test_the_page_and_the_api_share_one_count_and_a_locked_page_says_when_to_come_back(store, dock_dir):
    app = create_desk_app(node(store, dock_dir, api_port=PORT, api_token=ACCESS_CODE))
    with TestClient(app, base_url=DESK) as desk:
        for _ in range(FREE - 1):
            form = desk.get("/desk/sign-in")
            wrong = desk.post("/desk/sign-in", data={"csrf_token": csrf_of(form), "token": "guess"})
            assert wrong.status_code == 401
        assert desk.get("/checkouts", headers={"Authorization": "Bearer guess"}).status_code == 401  # the FREE-th
        locked = desk.post(
            "/desk/sign-in", data={"csrf_token": csrf_of(desk.get("/desk/sign-in")), "token": ACCESS_CODE}
        )
        assert locked.status_code == 429 and locked.headers["retry-after"] == str(int(BASE_LOCK_S))
        assert line(locked, "failed").startswith("too many wrong access codes from this address")
        api = desk.get("/checkouts", headers={"Authorization": f"Bearer {ACCESS_CODE}"})
        assert api.status_code == 429 and api.json()["error"] == "too_many_requests"
        assert desk.get("/healthz").status_code == 200  # what needs no code still answers


@pytest.mark.parametrize("code", ["short-code", " " * 20 + "x"])
def test_a_short_access_code_is_refused_at_start_up(code):
    with pytest.raises(ConfigError, match="api_token has fewer than 16 characters"):
        desk_settings(api_token=code)


def test_a_forwarded_for_header_names_no_other_address_to_the_real_desk_server(store, dock_dir):
    """uvicorn would take X-Forwarded-For from a loopback client as its address: a guesser rotating it
    would never be locked out. The desk is reached directly and counts the connection's own address."""
    from simulation.local_cluster import free_port
    from station.api import DeskServer

    server = DeskServer(node(store, dock_dir, api_port=PORT, api_token=ACCESS_CODE), "127.0.0.1", free_port())
    server.start()
    try:
        url = f"http://127.0.0.1:{server.server.config.port}/checkouts"
        answers = [
            httpx.get(
                url,
                headers={
                    "Authorization": "Bearer guess",
                    "X-Forwarded-For": f"10.1.2.{n}",
                    "Host": f"127.0.0.1:{PORT}",
                },
                timeout=5,
            ).status_code
            for n in range(FREE + 1)
        ]
    finally:
        server.stop()
    assert answers == [401] * FREE + [429]
