"""The desk's access code attacked: from a web page in the sergeant's browser, from another
address on the station's network, and against the real desk server where uvicorn's behaviour counts."""

from __future__ import annotations

import concurrent.futures
from collections import Counter
from types import SimpleNamespace

import httpx
import pytest
from litestar.connection import ASGIConnection
from litestar.testing import TestClient

from fleet.errors import ConfigError
from station.access_code import BASE_LOCK_S, FREE, AccessCode, client_address
from station.api import create_desk_app
from station.metrics import StationCollector, StationMetrics
from tests.station.test_access_code import CODE
from tests.station.test_api import node
from tests.station.test_desk_page import ACCESS_CODE, DESK, PORT, csrf_of
from tests.station.test_status import settings_for

RIGHT = {"Authorization": f"Bearer {ACCESS_CODE}"}
SCRAPER_TOKEN = "station-metrics-attack-token"  # a test value, not a secret


def sign_in(desk: TestClient, code: str = ACCESS_CODE) -> httpx.Response:
    return desk.post("/desk/sign-in", data={"csrf_token": csrf_of(desk.get("/desk/sign-in")), "token": code})


@pytest.mark.parametrize(
    "sent",
    [
        {},  # an <img src="http://desk/status"> on any page the sergeant opens: no Origin, no code
        {"Authorization": ""},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNz"},  # http://user:pass@desk/... asks the browser for Basic
    ],
)
def test_asking_without_a_code_is_no_guess_and_locks_nobody_out(store, dock_dir, sent):
    """Only a code given is a guess. Counting every request without one let any web page the
    sergeant opened lock the desk's browser out (a few image tags, again every 15 minutes), and a
    scraper without the code lock out its host."""
    app = create_desk_app(node(store, dock_dir, api_port=PORT, api_token=ACCESS_CODE))
    with TestClient(app, base_url=DESK) as desk:
        for path in ["/status", "/checkouts", "/metrics"] * FREE:
            assert desk.get(path, headers=sent).status_code == 401, path
        assert desk.get("/checkouts", headers=RIGHT).status_code == 200
        assert sign_in(desk).url.path == "/desk"


def test_an_empty_sign_in_form_is_no_guess(store, dock_dir):
    app = create_desk_app(node(store, dock_dir, api_port=PORT, api_token=ACCESS_CODE))
    with TestClient(app, base_url=DESK) as desk:
        for _ in range(FREE):
            assert sign_in(desk, "  ").status_code == 401
        assert sign_in(desk).url.path == "/desk"


def test_the_bearer_scheme_is_read_in_any_case(store, dock_dir):
    """RFC 9110 11.1: an authentication scheme is case-insensitive; ``bearer <code>`` is the right code."""
    app = create_desk_app(node(store, dock_dir, api_port=PORT, api_token=ACCESS_CODE))
    with TestClient(app, base_url=DESK) as desk:
        for scheme in ["bearer", "BEARER", "Bearer"]:
            assert desk.get("/checkouts", headers={"Authorization": f"{scheme} {ACCESS_CODE}"}).status_code == 200


def test_a_code_configured_with_spaces_around_it_is_the_code_without_them():
    """The check strips what is typed (and the HTTP header is stripped anyway), and the length check at
    start-up strips the setting: the setting must be stripped too, else the right code never matched."""
    access = AccessCode(f"  {CODE}\n")
    assert access.check(CODE, "10.0.0.9") is True
    assert access.check(f" {CODE} ", "10.0.0.9") is True


def metrics_desk(store, tmp_path) -> TestClient:
    settings = settings_for(store, tmp_path, api_token=ACCESS_CODE, metrics={"token": SCRAPER_TOKEN})
    metrics = StationMetrics()
    metrics.registry.register(StationCollector(settings, store))
    served = SimpleNamespace(settings=settings, store=store, metrics=metrics)
    return TestClient(create_desk_app(served), base_url="http://127.0.0.1")  # type: ignore[arg-type]


def test_the_metrics_token_is_locked_out_like_the_access_code_but_counted_apart(store, tmp_path):
    """Without a lockout ``/metrics`` answered every guess at its token; counted with the access
    code, a scraper with a stale token would lock the desk's own browser out."""
    with metrics_desk(store, tmp_path) as desk:
        for _ in range(FREE):
            assert desk.get("/metrics", headers={"Authorization": "Bearer guess"}).status_code == 401
        locked = desk.get("/metrics", headers={"Authorization": f"Bearer {SCRAPER_TOKEN}"})
        assert locked.status_code == 429
        assert desk.get("/status", headers=RIGHT).status_code == 200


def test_the_api_says_when_to_come_back_as_the_page_does(store, dock_dir):
    """The desk API's 429 carries ``Retry-After`` (docs/contracts.md): a client that retries reads it."""
    app = create_desk_app(node(store, dock_dir, api_port=PORT, api_token=ACCESS_CODE))
    with TestClient(app, base_url=DESK) as desk:
        for _ in range(FREE):
            desk.get("/checkouts", headers={"Authorization": "Bearer guess"})
        locked = desk.get("/checkouts", headers=RIGHT)
    assert locked.status_code == 429 and locked.headers.get("retry-after") == str(int(BASE_LOCK_S))


def test_a_signed_in_browser_works_on_while_its_address_is_locked(store, dock_dir):
    """Locking an address (the sergeant's own, by someone sharing it) stops new sign-ins, not a
    browser already signed in: its session is its proof, not the code."""
    app = create_desk_app(node(store, dock_dir, api_port=PORT, api_token=ACCESS_CODE))
    with TestClient(app, base_url=DESK) as desk:
        assert sign_in(desk).url.path == "/desk"
        for _ in range(FREE):
            assert desk.get("/checkouts", headers={"Authorization": "Bearer guess"}).status_code == 401
        assert desk.get("/checkouts", headers=RIGHT).status_code == 429
        assert desk.get("/desk").status_code == 200


@pytest.mark.slow
def test_a_burst_of_guesses_in_parallel_gets_its_free_guesses_and_no_more_from_the_real_server(store, dock_dir):
    """Guesses sent all at once over many connections, by bearer header and by sign-in form alike."""
    from simulation.local_cluster import free_port
    from station.api import DeskServer

    port = free_port()
    server = DeskServer(node(store, dock_dir, api_port=port, api_token=ACCESS_CODE), "127.0.0.1", port)
    server.start()
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as browser:
            csrf = csrf_of(browser.get("/desk/sign-in"))

        def guess(n: int) -> int:
            with httpx.Client(base_url=base, timeout=10) as client:
                if n % 2:
                    return client.post("/desk/sign-in", data={"csrf_token": csrf, "token": f"guess-{n}"}).status_code
                return client.get("/checkouts", headers={"Authorization": f"Bearer guess-{n}"}).status_code

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = Counter(pool.map(guess, range(6 * FREE)))
        right = httpx.get(f"{base}/checkouts", headers=RIGHT, timeout=10).status_code
    finally:
        server.stop()
    assert answers == {401: FREE, 429: 5 * FREE} and right == 429


@pytest.mark.slow
def test_a_local_user_gets_no_fresh_guesses_from_other_loopback_addresses_of_the_real_server(store, dock_dir):
    """Any of 127.0.0.0/8 reaches a desk on 127.0.0.1, with no privilege: counted each apart, a
    local user had five guesses from each of 16 million addresses. Loopback is one place."""
    from simulation.local_cluster import free_port
    from station.api import DeskServer

    port = free_port()
    server = DeskServer(node(store, dock_dir, api_port=port, api_token=ACCESS_CODE), "127.0.0.1", port)
    server.start()

    def guess(source: str) -> int:
        with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=10) as client:
            return client.get(
                f"http://127.0.0.1:{port}/checkouts", headers={"Authorization": "Bearer guess"}
            ).status_code

    try:
        answers = [guess(f"127.0.{n}.{n + 2}") for n in range(FREE + 1)]
    finally:
        server.stop()
    assert answers == [401] * FREE + [429]


@pytest.mark.parametrize(
    ("one", "other"),
    [("127.0.0.1", "::1"), ("127.0.0.1", "127.8.9.10"), ("::ffff:127.0.0.1", "::1"), ("::ffff:10.0.0.9", "10.0.0.9")],
)
def test_one_host_is_one_address_however_its_socket_spells_it(one, other):
    def connection(host: str) -> ASGIConnection:
        return ASGIConnection({"type": "http", "client": (host, 50000), "headers": []})  # type: ignore[arg-type]

    assert client_address(connection(one)) == client_address(connection(other))
    assert client_address(connection("10.0.0.9")) != client_address(connection("10.0.0.10"))


@pytest.mark.slow
def test_an_oversized_header_is_refused_unread_by_the_real_server(store, dock_dir):
    """Headers are held in memory until they end: uvicorn's httptools parser has no limit, and eight
    unfinished 40 MiB Authorization headers grew the station by 375 MiB, from anyone on the network.
    The desk speaks h11, which refuses a head over 16 KiB."""
    from simulation.local_cluster import free_port
    from station.api import DeskServer

    port = free_port()
    server = DeskServer(node(store, dock_dir, api_port=port, api_token=ACCESS_CODE), "127.0.0.1", port)
    server.start()
    try:
        huge = {"Authorization": "Bearer " + "a" * (1 << 20)}
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}/status", headers=huge, timeout=10).status_code
        except httpx.TransportError:  # reset before its answer was read: refused as well
            answer = None
        works = httpx.get(f"http://127.0.0.1:{port}/status", headers=RIGHT, timeout=10).status_code
    finally:
        server.stop()
    assert answer in (None, 400, 431) and works == 200


def test_a_body_beyond_any_desk_request_is_refused_before_it_is_read(store, dock_dir):
    """The desk's requests are a few short fields: not Litestar's 10 MB default held in memory per request,
    before the access code is even asked for."""
    app = create_desk_app(node(store, dock_dir, api_port=PORT, api_token=ACCESS_CODE))
    with TestClient(app, base_url=DESK) as desk:
        sent = desk.post(
            "/checkouts", content=b'{"by": "' + b"a" * (1 << 20) + b'"}', headers={"Content-Type": "application/json"}
        )
    assert sent.status_code == 413


@pytest.mark.parametrize("code", ["dësk-cödé-ünïcode-1234", "desk-code-with\ttab-inside"])
def test_an_access_code_no_header_can_carry_is_refused_at_start_up(store, dock_dir, code):
    """A header is read as Latin-1: a code of other characters worked in the page's form, never in the API."""
    with pytest.raises(ConfigError, match="api_token has a character that is not printable ASCII"):
        node(store, dock_dir, api_port=PORT, api_token=code)


@pytest.mark.slow
def test_a_request_that_never_arrives_whole_is_closed_and_whole_ones_are_answered(store, dock_dir, monkeypatch):
    """Half a request, then nothing: uvicorn waited for ever, a file handle held each, and about a
    thousand such connections left the station without handles for its sync as for its desk. The
    desk closes a connection whose request has not arrived whole in ``DeskHttp.REQUEST_S``."""
    import socket
    import time

    from simulation.local_cluster import free_port
    from station.api import DeskHttp, DeskServer

    monkeypatch.setattr(DeskHttp, "REQUEST_S", 0.5)
    port = free_port()
    server = DeskServer(node(store, dock_dir, api_port=port, api_token=ACCESS_CODE), "127.0.0.1", port)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(f"GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer ".encode())
            deadline = time.monotonic() + 10
            closed = False
            slow.settimeout(0.2)
            while not closed and time.monotonic() < deadline:
                try:
                    closed = slow.recv(4096) == b""
                except TimeoutError:
                    continue  # still open: wait on, to the deadline
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=RIGHT, timeout=10) as kept:
            answers = [kept.get("/status").status_code for _ in range(3)]  # one kept-alive connection, re-armed
    finally:
        server.stop()
    assert closed, "the half-sent request's connection was still open"
    assert answers == [200, 200, 200]
