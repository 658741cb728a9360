"""The desk page: the desk's rules in a browser's forms, and the desk's protections kept for them."""

import re

import msgspec
import pytest
from litestar.testing import TestClient

from fleet.events import CheckedOut
from station.api import create_desk_app
from station.web.sessions import COOKIE
from tests.station.test_api import node
from tests.station.test_desk import dock, dock_pack, outbox_events

PORT = 8099
"""The desk's configured port (nothing listens on it: the client runs the app)."""
DESK = f"http://127.0.0.1:{PORT}"
ACCESS_CODE = "desk-page-test-token"  # a test value, not a secret


@pytest.fixture
def desk(store, dock_dir):
    with TestClient(create_desk_app(node(store, dock_dir, api_port=PORT)), base_url=DESK) as client:
        yield client


def csrf_of(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def line(page, kind: str) -> str:
    """The page's one line of outcome: ``done`` or ``failed``."""
    found = re.search(rf'<p class="[a-z]+" role="[a-z]+" id="{kind}">(.*?)</p>', page.text)
    assert found, page.text
    return found.group(1).replace("&#39;", "'")


def post_form(desk, path: str, fields: dict, **headers):
    return desk.post(path, data={"csrf_token": csrf_of(desk.get("/desk")), **fields}, headers=headers)


def checked_out(store) -> list[CheckedOut]:
    return [e for e in outbox_events(store) if isinstance(e, CheckedOut)]


def checkout(desk, serial="BWV-1", officer="PC1", **more):
    return post_form(desk, "/desk/checkouts", {"device_serial": serial, "officer_id": officer, **more})


def test_a_camera_checked_out_and_back_in_through_the_forms(desk, store, dock_dir):
    dock(store, dock_dir, "BWV-1")
    sent = checkout(desk)
    assert sent.status_code == 200 and sent.url.path == "/desk" and sent.url.params["checked_out"] == "BWV-1"
    assert line(sent, "done").startswith("BWV-1 checked out to PC1 at ")
    assert [(c["device_serial"], c["officer_id"]) for c in desk.get("/checkouts").json()] == [("BWV-1", "PC1")]
    out_row = re.search(r'<table id="out">.*?</table>', sent.text, re.S).group(0)
    assert "<td>BWV-1</td><td>PC1</td>" in out_row and 'aria-label="Check in BWV-1 from PC1"' in out_row
    back = post_form(desk, "/desk/checkins", {"device_serial": "BWV-1"})
    assert line(back, "done").startswith("BWV-1 checked in from PC1 at ")
    assert desk.get("/checkouts").json() == [] and 'id="none-out"' in back.text


def test_the_rack_shows_each_pool_camera_as_the_desk_sees_it(desk, store, dock_dir):
    dock(store, dock_dir, "BWV-OUT")
    checkout(desk, "BWV-OUT")
    dock(store, dock_dir, "BWV-LOW", battery_pct=30)
    dock_pack(store, dock_dir, "BWV-WORN", full=2300)
    dock(store, dock_dir, "BWV-FIT")
    rows = re.findall(
        r'<td>(BWV-[A-Z]+)</td>\s*<td><span class="tag [a-z]*">([^<]+)</span></td>\s*<td>(.*?)</td>',
        desk.get("/desk").text,
        re.S,
    )
    standing = {serial: (state, re.sub(r"<[^>]+>", "", why)) for serial, state, why in rows}
    assert standing["BWV-FIT"] == ("available", "charged to about 95%")
    assert standing["BWV-LOW"] == ("charging", "charged to about 30%; needs 80%")
    assert standing["BWV-WORN"][0] == "refused by the battery gate"
    assert "due for replacement (77% of design capacity, below 80%)" in standing["BWV-WORN"][1]
    assert re.fullmatch(r"with officer PC1 since \d\d:\d\d, .+", standing["BWV-OUT"][1])
    assert standing["BWV-OUT"][0] == "out"


@pytest.mark.parametrize(
    "serial, officer, status, says",
    [
        ("BWV-404", "PC1", 409, "camera BWV-404 has not been docked here since it was last out: dock it first"),
        ("not a serial!", "PC1", 400, "'not a serial!' is not a valid camera serial"),
        ("BWV-1", "PC999", 404, "officer PC999 is not on this station's list"),
    ],
)
def test_a_refusal_is_one_line_on_the_page_with_the_form_as_sent(desk, store, dock_dir, serial, officer, status, says):
    dock(store, dock_dir, "BWV-1")
    refused = checkout(desk, serial, officer)
    assert refused.status_code == status and refused.headers["content-type"].startswith("text/html")
    assert line(refused, "failed").startswith(says)
    assert f'name="device_serial" value="{serial}"' in refused.text.replace("&#39;", "'").replace("&amp;", "&")
    assert "Traceback" not in refused.text and desk.get("/checkouts").json() == []


def test_a_camera_already_out_is_refused_in_one_line(desk, store, dock_dir):
    dock(store, dock_dir, "BWV-1")
    checkout(desk)
    again = checkout(desk, officer="PC1")
    assert again.status_code == 409 and line(again, "failed") == "camera BWV-1 is already checked out to officer PC1"


def test_the_battery_gate_asks_for_a_supervisor_and_a_reason_then_hands_the_camera_out(desk, store, dock_dir):
    dock_pack(store, dock_dir, "BWV-READY")
    dock_pack(store, dock_dir, "BWV-WORN", full=2300)
    refused = checkout(desk, "BWV-WORN")
    assert refused.status_code == 409 and 'id="override"' in refused.text
    assert "take another camera instead (ready now: BWV-READY)" in line(refused, "failed")
    assert 'id="override"' not in desk.get("/desk").text  # only for the camera the gate refused
    nameless = checkout(desk, "BWV-WORN", override_reason="no other camera fits this officer's kit")
    assert line(nameless, "failed") == "a camera handed out against the battery gate needs the supervisor's name"
    handed = checkout(desk, "BWV-WORN", by="PS Khan", override_reason="no other camera fits this officer's kit")
    assert line(handed, "done").startswith("BWV-WORN checked out to PC1")
    [sent] = checked_out(store)
    assert (sent.by, sent.override) == ("PS Khan", "no other camera fits this officer's kit")


@pytest.mark.parametrize("by, reason", [("PS\x00Khan", ""), ("PS Khan", "no other\x00camera"), ("PS\u202eKhan", "")])
def test_a_name_or_reason_central_cannot_keep_is_refused_at_the_desk(desk, store, dock_dir, by, reason):
    """A NUL in who handed a camera out (or why) made central, on PostgreSQL, refuse the checkout as
    an event it could not apply: the camera was out at the desk and not at central. A control
    character or bidirectional mark is refused as a clear 400, by the page and the API alike."""
    dock(store, dock_dir, "BWV-1")
    refused = checkout(desk, by=by, override_reason=reason)
    assert refused.status_code == 400 and "control character" in line(refused, "failed")
    api = desk.post(
        "/checkouts", json={"device_serial": "BWV-1", "officer_id": "PC1", "by": by, "override_reason": reason}
    )
    assert api.status_code == 400 and "control character" in api.json()["message"]
    assert desk.get("/checkouts").json() == [] and not checked_out(store)
    checkout(desk)
    back = desk.post("/checkins", json={"device_serial": "BWV-1", "by": "PS\x00Khan"})
    assert back.status_code == 400 and len(desk.get("/checkouts").json()) == 1


# -- the desk's protections, kept for the page ------------------------------------------------


@pytest.mark.parametrize(
    "headers, token, status, says",
    [
        ({"Origin": "https://evil.example"}, "page", 403, "another site"),
        ({"Origin": "null"}, "page", 403, "another site"),
        ({"Host": f"evil.example:{PORT}"}, "page", 403, "only to its own address"),
        ({}, None, 403, "did not come from this desk's own page"),
        ({}, "guessed", 403, "did not come from this desk's own page"),
    ],
)
def test_a_form_from_another_site_cannot_check_a_camera_out(desk, store, dock_dir, headers, token, status, says):
    """A page of another site can post a form (no Origin from an old browser, or a foreign one),
    or reach the desk under a DNS-rebound name; without the page's token it changes nothing."""
    dock(store, dock_dir, "BWV-1")
    fields = {"device_serial": "BWV-1", "officer_id": "PC1"}
    if token is not None:
        fields["csrf_token"] = csrf_of(desk.get("/desk")) if token == "page" else token
    refused = desk.post("/desk/checkouts", data=fields, headers=headers)
    assert refused.status_code == status and says in line(refused, "failed")
    assert desk.get("/checkouts").json() == [] and not checked_out(store)


def test_a_rebound_name_cannot_read_the_page_or_its_token(desk):
    refused = desk.get("/desk", headers={"Host": f"evil.example:{PORT}"})
    assert refused.status_code == 403 and 'name="csrf_token"' not in refused.text


def test_the_json_api_still_takes_no_form(desk, store, dock_dir):
    dock(store, dock_dir, "BWV-1")
    sent = post_form(desk, "/checkouts", {"device_serial": "BWV-1", "officer_id": "PC1"})
    assert sent.status_code == 415 and sent.json()["error"] == "unsupported_media_type"


@pytest.mark.parametrize("path", ["/desk/checkouts", "/desk/checkins", "/desk/sign-in", "/desk/sign-out"])
@pytest.mark.parametrize("media_type", ["application/json", "application/json; charset=utf-8"])
def test_the_pages_forms_take_no_json_so_none_escapes_the_check_token(desk, store, dock_dir, path, media_type):
    """The check token is compared on form posts only: a page path that took JSON (or a form body
    labelled JSON, which the form parser reads all the same) would act with no token at all."""
    dock(store, dock_dir, "BWV-1")
    fields = b"device_serial=BWV-1&officer_id=PC1"
    for body in (fields, b'{"device_serial": "BWV-1", "officer_id": "PC1"}'):
        refused = desk.post(path, content=body, headers={"Content-Type": media_type})
        assert refused.status_code == 415 and "form" in line(refused, "failed"), refused.text
    assert desk.get("/checkouts").json() == [] and not checked_out(store)


def test_a_form_too_large_is_refused(desk):
    assert desk.post("/desk/checkins", data={"csrf_token": "x" * 20_000}).status_code == 413
    many = desk.post("/desk/checkins", data={f"field{i}": "x" for i in range(50)})
    assert many.status_code == 400 and line(many, "failed") == "a desk form has at most 20 fields"


def test_the_page_has_no_script_and_a_policy_that_allows_none(desk, store, dock_dir):
    dock_pack(store, dock_dir, "BWV-WORN", full=2300)
    pages = [desk.get("/desk"), checkout(desk, "BWV-WORN"), desk.get("/desk/no-such-page")]
    for page in pages:
        assert "<script" not in page.text.lower() and "javascript:" not in page.text.lower()
        assert not re.search(r"\son[a-z]+\s*=", page.text) and " style=" not in page.text
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy and "script-src" not in policy
        assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
    assert desk.get("/checkouts").headers["content-security-policy"] == pages[0].headers["content-security-policy"]
    css = desk.get("/desk/desk.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "cache-control" not in css.headers


def test_what_a_sergeant_types_comes_back_as_text_never_as_markup(desk, store, dock_dir):
    """The form refilled after the battery gate's refusal, and the cameras out with who handed them."""
    dock_pack(store, dock_dir, "BWV-WORN", full=2300)
    hostile = "\"><img src=x alt='PS"
    refilled = checkout(desk, "BWV-WORN", by=hostile)
    assert refilled.status_code == 409 and 'value="&#34;&gt;&lt;img src=x alt=&#39;PS"' in refilled.text
    handed = checkout(desk, "BWV-WORN", by=hostile, override_reason="<b>no other</b>")
    assert "<td>&#34;&gt;&lt;img src=x alt=&#39;PS</td>" in handed.text and "<img" not in handed.text


def test_a_wrong_query_is_a_line_on_a_page(desk):
    wrong = desk.get("/desk", params={"checked_out": "B" * 200})
    assert wrong.status_code == 400 and wrong.headers["content-type"].startswith("text/html")
    assert "Traceback" not in wrong.text


# -- a desk beyond loopback: signed in once per browser ---------------------------------------


@pytest.fixture
def remote_desk(store, dock_dir):
    app = create_desk_app(node(store, dock_dir, api_port=PORT, api_token=ACCESS_CODE))
    with TestClient(app, base_url=DESK) as client:
        yield client


def test_a_desk_with_a_token_asks_for_it_once_and_keeps_it_out_of_urls(remote_desk, store, dock_dir):
    dock(store, dock_dir, "BWV-1")
    first = remote_desk.get("/desk", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/desk/sign-in"
    form = remote_desk.get("/desk/sign-in")
    assert 'type="password"' in form.text and ACCESS_CODE not in form.text
    wrong = remote_desk.post("/desk/sign-in", data={"csrf_token": csrf_of(form), "token": "guess"})
    assert wrong.status_code == 401 and line(wrong, "failed") == "that is not this desk's access code"
    assert COOKIE not in remote_desk.cookies
    signed = remote_desk.post(
        "/desk/sign-in", data={"csrf_token": csrf_of(form), "token": ACCESS_CODE}, follow_redirects=False
    )
    cookie = signed.headers["set-cookie"]
    assert signed.status_code == 303 and ACCESS_CODE not in cookie and ACCESS_CODE not in signed.headers["location"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert line(checkout(remote_desk), "done").startswith("BWV-1 checked out to PC1")
    assert remote_desk.get("/checkouts").status_code == 401  # the session is the page's, not the API's
    remote_desk.post("/desk/sign-out", data={"csrf_token": csrf_of(remote_desk.get("/desk"))})
    assert remote_desk.get("/desk", follow_redirects=False).status_code == 303


def test_a_form_post_without_a_session_changes_nothing(remote_desk, store, dock_dir):
    dock(store, dock_dir, "BWV-1")
    token = csrf_of(remote_desk.get("/desk/sign-in"))
    sent = remote_desk.post(
        "/desk/checkouts", data={"csrf_token": token, "device_serial": "BWV-1", "officer_id": "PC1"}
    )
    assert sent.url.path == "/desk/sign-in" and not checked_out(store)
    api = remote_desk.get("/checkouts", headers={"Authorization": f"Bearer {ACCESS_CODE}"})
    assert msgspec.json.decode(api.content) == []


def test_the_token_the_sign_in_page_shows_anyone_opens_no_signed_in_browsers_forms(remote_desk, store, dock_dir):
    """Beyond loopback anyone who reaches the desk reads its sign-in page. Its check token must not
    pass for a sergeant's signed-in browser: a form another page makes it post would then act with
    only SameSite and Origin in the way. Each session's forms carry a token of their own."""
    dock(store, dock_dir, "BWV-1")
    anyones = csrf_of(remote_desk.get("/desk/sign-in"))  # what a browser with no session is shown
    signed_in = remote_desk.post("/desk/sign-in", data={"csrf_token": anyones, "token": ACCESS_CODE})
    own = csrf_of(signed_in)
    assert own != anyones
    fields = {"device_serial": "BWV-1", "officer_id": "PC1"}
    refused = remote_desk.post("/desk/checkouts", data={"csrf_token": anyones, **fields})
    assert refused.status_code == 403 and not checked_out(store)
    assert remote_desk.post("/desk/sign-out", data={"csrf_token": anyones}).status_code == 403
    assert line(remote_desk.post("/desk/checkouts", data={"csrf_token": own, **fields}), "done").startswith("BWV-1")


OPEN_PAGE_ROUTES = {"/", "/desk/sign-in", "/desk/sign-out", "/desk/desk.css"}
"""The page's routes a browser reaches before signing in: the way in, the way out, the look."""


def test_every_other_page_route_needs_a_signed_in_browser(store, dock_dir):
    from station.web.page import DeskPage, owns

    app = create_desk_app(node(store, dock_dir, api_token=ACCESS_CODE))
    decided = {
        route.path: any(
            getattr(g, "__func__", None) is DeskPage.guard for h in route.route_handlers for g in h.guards or ()
        )
        for route in app.routes
        if owns(route.path)
    }
    assert {path for path, guarded in decided.items() if not guarded} == OPEN_PAGE_ROUTES
    assert {"/desk", "/desk/checkouts", "/desk/checkins"} <= set(decided)
