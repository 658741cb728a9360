"""The role × scope matrix: every route, called by scoped callers on a thing inside and a thing
outside their borough.

``SCOPE`` is the borough-scope policy beside the role matrix's ``POLICY``: a route missing
from it, or declared differently in the app, fails, so no route ships without a decision.
Scoped callers are the Camden station and a supervisor created for Camden; a force-wide
admin makes the same calls last, to show that the refusals are scope, not state. Lists are
checked separately: what a scoped caller is shown never names the other borough's things."""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from dataclasses import dataclass

import pytest

from central.access import scope
from central.core.providers import services
from fleet.clock import to_iso
from fleet.events import ClipIngested
from fleet.protocol import UploadMetadata, encode_upload_metadata
from tests.central.access.test_role_matrix import POLICY, PUBLIC, app_routes
from tests.central.apps import central_client
from tests.central.conftest import ADMIN, BARNET, CAMDEN, TUS, make_settings
from tests.central.fleetdata import at, docked, post

NO_BOROUGH, FORCE_WIDE, TOUCHES, LISTS, FOR_ANYONE = "no borough", "force-wide", "touches", "lists", "public"

SCOPE: dict[str, str] = {
    "GET /healthz": NO_BOROUGH,
    # every borough's counts alike: only the [metrics] token or a force-wide admin (its own guard)
    "GET /metrics": NO_BOROUGH,
    "GET /static/{file_path:path}": NO_BOROUGH,
    "HEAD /static/{file_path:path}": NO_BOROUGH,
    "GET /login": NO_BOROUGH,
    "POST /login": NO_BOROUGH,
    "GET /login/oidc": NO_BOROUGH,
    "GET /login/oidc/callback": NO_BOROUGH,
    "POST /logout": NO_BOROUGH,
    # the public figures: the same for anyone, no borough's records
    "GET /public/figures": FOR_ANYONE,
    "GET /public/figures.csv": FOR_ANYONE,
    "GET /public/figures.json": FOR_ANYONE,
    # dashboard pages: a scoped user sees their borough's figures and records
    "GET /": LISTS,
    "GET /stations": LISTS,
    "GET /devices": LISTS,
    "GET /devices/{serial:str}": TOUCHES,
    "GET /officers": LISTS,
    "GET /officers/conflicts": LISTS,
    "GET /clips": LISTS,
    "GET /rollout": NO_BOROUGH,
    "GET /models": NO_BOROUGH,
    "GET /models/{model:str}": FORCE_WIDE,
    "GET /profiles": NO_BOROUGH,
    "GET /firmware": NO_BOROUGH,
    "GET /deployments": NO_BOROUGH,
    "GET /deployments/{deployment_id:int}": NO_BOROUGH,
    "POST /deployments/{deployment_id:int}/{decision:str}": FORCE_WIDE,
    "POST /rollout/proposals/{proposal_id:int}/{decision:str}": FORCE_WIDE,
    "POST /officers/assign": TOUCHES,
    "POST /officers/unassign": TOUCHES,
    "POST /officers/conflicts/{conflict_id:int}/resolve": TOUCHES,
    "GET /clips/{clip_id:str}": TOUCHES,
    "POST /clips/{clip_id:str}/hold": TOUCHES,
    "POST /clips/{clip_id:str}/release/{hold_id:int}": TOUCHES,
    "POST /clips/{clip_id:str}/categories": TOUCHES,
    "POST /clips/{clip_id:str}/restore": TOUCHES,
    "POST /clips/{clip_id:str}/attribution": TOUCHES,
    "GET /cases": FORCE_WIDE,
    "GET /cases/{case_ref:str}": FORCE_WIDE,
    "POST /cases/{case_ref:str}/disclosure": FORCE_WIDE,
    "POST /cases/{case_ref:str}/shares": FORCE_WIDE,
    "POST /cases/{case_ref:str}/shares/{share_id:int}/withdraw": FORCE_WIDE,
    "GET /shared/{token:str}": NO_BOROUGH,
    "GET /shared/{token:str}/clips/{clip_id:str}": NO_BOROUGH,
    "GET /audit": FORCE_WIDE,
    "POST /audit/verify": FORCE_WIDE,
    # the public's requests to keep footage: the public's pages show no borough's records; the
    # queue lists a borough's requests, and a request is in the borough it names
    "GET /public/keep-footage": NO_BOROUGH,
    "POST /public/keep-footage": NO_BOROUGH,
    "GET /public/keep-footage/received": NO_BOROUGH,
    "GET /public/keep-footage/status": NO_BOROUGH,
    "GET /keep-requests": LISTS,
    "GET /keep-requests/{reference:str}": TOUCHES,
    "POST /keep-requests/{reference:str}/narrow": TOUCHES,
    "POST /keep-requests/{reference:str}/close": TOUCHES,
    "POST /keep-requests/bulk-close": TOUCHES,  # each request it names (tests/central/web/test_keep_pages.py)
    # a station's own uploads and events
    "POST /api/v1/uploads": TOUCHES,
    "HEAD /api/v1/uploads/{upload_id:str}": TOUCHES,
    "PATCH /api/v1/uploads/{upload_id:str}": TOUCHES,
    "DELETE /api/v1/uploads/{upload_id:str}": TOUCHES,
    "POST /api/v1/events": TOUCHES,
    "GET /api/v1/changes": TOUCHES,
    "GET /api/v1/changes/snapshot": TOUCHES,
    # footage and its governance
    "GET /api/v1/clips": LISTS,
    "GET /api/v1/clips/{clip_id:str}": TOUCHES,
    "GET /api/v1/clips/{clip_id:str}/content": TOUCHES,
    "GET /api/v1/clips/{clip_id:str}/attribution": TOUCHES,
    "POST /api/v1/clips/{clip_id:str}/attribution": TOUCHES,
    "GET /api/v1/unattributed": LISTS,
    "GET /api/v1/clips/{clip_id:str}/retention": TOUCHES,
    "POST /api/v1/clips/{clip_id:str}/categories": TOUCHES,
    "GET /api/v1/holds": LISTS,
    "POST /api/v1/holds": TOUCHES,
    "POST /api/v1/holds/{hold_id:int}/release": TOUCHES,
    "POST /api/v1/cases/{case_ref:str}/clips": TOUCHES,
    "GET /api/v1/cases/{case_ref:str}": TOUCHES,
    "POST /api/v1/cases/{case_ref:str}/disclosure": TOUCHES,
    "GET /api/v1/cases/{case_ref:str}/shares": TOUCHES,
    "POST /api/v1/cases/{case_ref:str}/shares": TOUCHES,
    "POST /api/v1/cases/{case_ref:str}/shares/{share_id:int}/withdraw": TOUCHES,
    "GET /api/v1/disclosure/keys": FOR_ANYONE,
    "POST /api/v1/clips/{clip_id:str}/restore": TOUCHES,
    "POST /api/v1/clips/{clip_id:str}/review": TOUCHES,
    "GET /api/v1/retention/reviews": FORCE_WIDE,
    "GET /api/v1/retention/digest": FORCE_WIDE,
    "POST /api/v1/retention/run": FORCE_WIDE,
    "GET /api/v1/clips/{clip_id:str}/custody": TOUCHES,
    "GET /api/v1/clips/{clip_id:str}/custody.csv": TOUCHES,
    "GET /api/v1/clips/{clip_id:str}/custody.html": TOUCHES,
    # fleet data
    "GET /api/v1/devices": LISTS,
    "GET /api/v1/devices/export.csv": LISTS,
    "GET /api/v1/devices/{serial:str}": TOUCHES,
    "GET /api/v1/officers": LISTS,
    "GET /api/v1/officers/export.csv": LISTS,
    "GET /api/v1/officers/{officer_id:str}": TOUCHES,
    "GET /api/v1/assignments": LISTS,
    "GET /api/v1/assignments/export.csv": LISTS,
    "GET /api/v1/stations": LISTS,
    "GET /api/v1/stations/{station_id:str}": TOUCHES,
    "POST /api/v1/devices": FORCE_WIDE,
    "POST /api/v1/devices/import.csv": FORCE_WIDE,
    "POST /api/v1/devices/{serial:str}/lifecycle": FORCE_WIDE,
    "POST /api/v1/officers": TOUCHES,
    "POST /api/v1/officers/import.csv": FORCE_WIDE,
    "POST /api/v1/assignments": TOUCHES,
    "POST /api/v1/assignments/{device_serial:str}/end": TOUCHES,
    "GET /api/v1/conflicts": LISTS,
    "POST /api/v1/conflicts/{conflict_id:int}/resolve": TOUCHES,
    # the roll-out: the plan's figures are no one's records; proposals name officers and cameras
    "GET /api/v1/rollout/plan": NO_BOROUGH,
    "GET /api/v1/rollout/plan.csv": NO_BOROUGH,
    "GET /api/v1/rollout/progress": NO_BOROUGH,
    "GET /api/v1/rollout/progress.csv": NO_BOROUGH,
    "GET /api/v1/rollout/storage": NO_BOROUGH,
    "GET /api/v1/rollout/proposals": NO_BOROUGH,
    "GET /api/v1/rollout/proposals/{proposal_id:int}": FORCE_WIDE,
    "GET /api/v1/rollout/proposals/{proposal_id:int}/items.csv": FORCE_WIDE,
    "POST /api/v1/rollout/proposals": FORCE_WIDE,
    "POST /api/v1/rollout/proposals/import.csv": FORCE_WIDE,
    "POST /api/v1/rollout/proposals/{proposal_id:int}/commit": FORCE_WIDE,
    "POST /api/v1/rollout/proposals/{proposal_id:int}/discard": FORCE_WIDE,
    # firmware releases are the force's, of no borough: any station reads them; only force-wide users
    # change them. Profiles are settings, nobody's records; a camera's effective profile is its borough's.
    "POST /api/v1/firmware/releases": FORCE_WIDE,
    "GET /api/v1/firmware/releases": NO_BOROUGH,
    "GET /api/v1/firmware/releases/{release_id:int}": NO_BOROUGH,
    "GET /api/v1/firmware/releases/{release_id:int}/artifact": NO_BOROUGH,
    "POST /api/v1/firmware/releases/{release_id:int}/withdraw": FORCE_WIDE,
    "GET /api/v1/profiles": NO_BOROUGH,
    "GET /api/v1/profiles/{scope_key:str}": NO_BOROUGH,
    "PUT /api/v1/profiles/{scope_key:str}": FORCE_WIDE,
    "GET /api/v1/devices/{serial:str}/profile": TOUCHES,
    "GET /api/v1/devices/{serial:str}/settings": TOUCHES,
    # camera models and their swap figures by borough are the force's; the cameras' list names holders
    "GET /api/v1/models": NO_BOROUGH,
    "POST /api/v1/models/{model:str}/withdraw": FORCE_WIDE,
    "POST /api/v1/models/{model:str}/replacements": FORCE_WIDE,
    "GET /api/v1/models/{model:str}/swap": NO_BOROUGH,
    "GET /api/v1/models/{model:str}/cameras": FORCE_WIDE,
    # deployments are the force's, as the releases they deliver: read by any fleet manager, decided
    # only force-wide (a pause stops every borough's cameras)
    "POST /api/v1/deployments": FORCE_WIDE,
    "GET /api/v1/deployments": NO_BOROUGH,
    "GET /api/v1/deployments/{deployment_id:int}": NO_BOROUGH,
    "GET /api/v1/deployments/{deployment_id:int}/cameras": NO_BOROUGH,
    "POST /api/v1/deployments/{deployment_id:int}/pause": FORCE_WIDE,
    "POST /api/v1/deployments/{deployment_id:int}/resume": FORCE_WIDE,
    "POST /api/v1/deployments/{deployment_id:int}/abort": FORCE_WIDE,
    "POST /api/v1/deployments/{deployment_id:int}/rollback": FORCE_WIDE,
}
NO_INSIDE = {
    "POST /api/v1/cases/{case_ref:str}/clips",
    "GET /api/v1/cases/{case_ref:str}",
    "POST /api/v1/cases/{case_ref:str}/disclosure",
    "GET /api/v1/cases/{case_ref:str}/shares",
    "POST /api/v1/cases/{case_ref:str}/shares",
    "POST /api/v1/cases/{case_ref:str}/shares/{share_id:int}/withdraw",
}
"""Routes that name a thing of no borough (a case may span boroughs): outside every scope."""
KIND = {
    scope.NoBorough: NO_BOROUGH,
    scope.ForceWide: FORCE_WIDE,
    scope.Touches: TOUCHES,
    scope.Lists: LISTS,
    scope.Public: FOR_ANYONE,
}


@dataclass
class Side:
    """One borough's things: everything a route can name."""

    borough: str
    station_id: str
    serial: str
    officer_id: str
    clip_id: str = ""
    upload_id: str = ""
    hold_id: int = 0
    officer_hold_id: int = 0
    conflict_id: int = 0


def _upload(client, headers, serial: str, data: bytes, whole: bool) -> tuple[str, str]:
    clip_id = str(uuid.uuid4())
    meta = encode_upload_metadata(
        UploadMetadata(
            clip_id=uuid.UUID(clip_id),
            sha256=hashlib.sha256(data).hexdigest(),
            device_serial=serial,
            recorded_at=at(1),
            filename="c.mp4",
        )
    )
    extra = {"Content-Type": "application/offset+octet-stream"} if whole else {}
    response = client.post(
        "/api/v1/uploads/",
        headers={**headers, **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": meta, **extra},
        content=data if whole else None,
    )
    assert response.status_code == 201, response.text
    return clip_id, response.headers["location"].rsplit("/", 1)[1]


def _build(client) -> tuple[Side, Side]:
    """Camden's and Barnet's cameras, officers, a verified clip each (docked and ingested at
    its own station), an unfinished upload, a clip hold, an officer hold and an open conflict."""
    sides = (Side("Camden", "camden", "BWV-CAM-0001", "PCCAM1"), Side("Barnet", "barnet", "BWV-BAR-0001", "PCBAR1"))
    client.post(
        "/api/v1/officers/", headers=ADMIN, json=[{"officer_id": s.officer_id, "borough": s.borough} for s in sides]
    ).raise_for_status()
    client.post(
        "/api/v1/devices/",
        headers=ADMIN,
        json=[{"serial": s.serial, "borough": s.borough, "assignment_mode": "personal"} for s in sides],
    ).raise_for_status()
    for side, headers in zip(sides, (CAMDEN, BARNET), strict=True):
        data = os.urandom(1000)
        side.clip_id, _ = _upload(client, headers, side.serial, data, whole=True)
        _, side.upload_id = _upload(client, headers, side.serial, b"x" * 10, whole=False)
        post(
            client,
            headers,
            [
                docked(side.serial, 2, clips=1),
                ClipIngested(
                    clip_id=side.clip_id,
                    device_serial=side.serial,
                    recorded_at=at(1),
                    size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                ),
            ],
            hours=[2, 2],
        )
        side.hold_id = client.post(
            "/api/v1/holds",
            headers=ADMIN,
            json={"kind": "clip", "clip_id": side.clip_id, "reason": f"hold-of-{side.borough}"},
        ).json()["id"]
        side.officer_hold_id = client.post(
            "/api/v1/holds",
            headers=ADMIN,
            json={
                "kind": "officer",
                "officer_id": side.officer_id,
                "window_from": to_iso(at(0)),
                "window_to": to_iso(at(9)),
                "reason": f"officer-hold-of-{side.borough}",
            },
        ).json()["id"]
        with services(
            client.app
        ).store.writer.write() as db:  # conflicts come from offline checkouts; the row is what matters
            conflict_id = db.execute(
                "INSERT INTO conflicts (kind, borough, device_serial, officer_id, detail, detected_at) "
                "VALUES ('officer_two_cameras', ?, ?, ?, 'conflict-of-' || ?, ?) RETURNING id",
                [side.borough, side.serial, side.officer_id, side.borough, to_iso(at(3))],
            ).fetchone()[0]
            side.conflict_id = conflict_id
    for side in sides:  # issued now: the clips, recorded before, stay unattributed
        client.post(
            "/api/v1/assignments", headers=ADMIN, json={"device_serial": side.serial, "officer_id": side.officer_id}
        ).raise_for_status()
    client.post(
        "/api/v1/cases/CASE-1/clips", headers=ADMIN, json={"clip_ids": [sides[0].clip_id], "reason": "x"}
    ).raise_for_status()
    return sides


def _identifiers(side: Side) -> list[str]:
    return [side.serial, side.officer_id, side.clip_id, side.station_id, f"conflict-of-{side.borough}"]


@pytest.fixture
def world(tmp_path):
    with central_client(make_settings(tmp_path / "central"), raise_server_exceptions=False) as client:
        inside, outside = _build(client)
        users = services(client.app).users
        users.add("s.camden", "supervisor", "test", borough="Camden")
        callers = {
            "station": ("station", CAMDEN),
            "supervisor@Camden": (
                "supervisor",
                {"Authorization": f"Bearer {users.create_token('s.camden', 'matrix', 'test').token}"},
            ),
            "admin": ("admin", ADMIN),
        }
        yield client, inside, outside, callers


def _request(route: str, side: Side) -> tuple[str, str, dict]:
    """The method, the path and the body a route takes, naming ``side``'s things."""
    method, template = route.split(" ", 1)
    values = {
        "clip_id": side.clip_id,
        "serial": side.serial,
        "device_serial": side.serial,
        "officer_id": side.officer_id,
        "hold_id": str(side.hold_id),
        "conflict_id": str(side.conflict_id),
        "station_id": side.station_id,
        "upload_id": side.upload_id,
        "case_ref": "CASE-1",
        "share_id": "1",
        "token": "no-such-share-link-secret-at-all",
        "proposal_id": "1",
        "decision": "commit",
        "file_path": "fleet.css",
        "reference": "KF-0000-0000-0000",
        "release_id": "1",
        "deployment_id": "1",
        "scope_key": "default",
        "model": "AB2",
    }
    path = re.sub(r"\{(\w+):\w+\}", lambda m: values[m.group(1)], template)
    query = {
        "/api/v1/changes": f"?borough={side.borough}",
        "/api/v1/changes/snapshot": f"?borough={side.borough}",
        "/stations": f"?station={side.station_id}",
    }.get(template, "")
    json_body = {
        "POST /api/v1/holds": {"kind": "clip", "clip_id": side.clip_id, "reason": "matrix"},
        "POST /api/v1/assignments": {"device_serial": side.serial, "officer_id": side.officer_id},
        "POST /api/v1/officers": [{"officer_id": side.officer_id, "borough": side.borough}],
        "POST /api/v1/clips/{clip_id:str}/attribution": {"officer_id": side.officer_id, "reason": "matrix"},
        "POST /api/v1/cases/{case_ref:str}/clips": {"clip_ids": [side.clip_id], "reason": "matrix"},
    }.get(route)
    form = {
        "POST /officers/assign": {"device_serial": side.serial, "officer_id": side.officer_id},
        "POST /officers/unassign": {"device_serial": side.serial},
        "POST /clips/{clip_id:str}/attribution": {"officer_id": side.officer_id, "reason": "matrix"},
        "POST /keep-requests/bulk-close": {"reference": values["reference"], "outcome": "withdrawn", "note": "matrix"},
    }.get(route)
    if form is not None:
        return method, path + query, {"data": form}
    if json_body is None and method in ("POST", "PATCH"):
        json_body = {}
    return method, path + query, {"json": json_body} if json_body is not None else {}


def _expected(route: str, role: str, scoped: bool, where: str, names_things: bool) -> str:
    allowed = POLICY[route]
    if allowed == PUBLIC:
        return "not 403"
    if role not in allowed:
        return "403"
    declared = SCOPE[route]
    if not scoped or declared == NO_BOROUGH:
        return "allowed"
    if declared == FORCE_WIDE or route in NO_INSIDE:
        return "403"
    return "allowed" if where == "inside" or not names_things else "403"


def _declared(app) -> dict[str, scope.Declaration]:
    return {
        f"{method} {route.path}": handler.opt["scope"]
        for route in app.routes
        if not route.path.startswith("/schema")
        for handler in route.route_handlers
        for method in handler.http_methods - {"OPTIONS"}
    }


def test_every_route_has_a_scope_decision_and_the_app_declares_it(client):
    routes = app_routes(client.app)
    assert [r for r in routes if r not in SCOPE] == [], "decide these routes' borough scope (SCOPE above)"
    assert [r for r in SCOPE if r not in routes] == [], "these routes are gone: drop them from SCOPE"
    declared = _declared(client.app)
    assert {r: KIND[type(declared[r])] for r in SCOPE} == SCOPE


def test_an_app_with_an_undecided_route_is_refused(settings):
    from litestar import Litestar, get

    @get("/undecided")
    async def undecided() -> str:
        return "nobody decided who may see this"

    with pytest.raises(RuntimeError, match="GET /undecided: no scope= declaration"):
        scope.check_declarations(Litestar(route_handlers=[undecided]), "/schema")


READS = sorted(r for r in SCOPE if r.split(" ", 1)[0] in ("GET", "HEAD"))
WRITES = sorted(r for r in SCOPE if r not in READS)
LIST_READS = sorted(r for r in READS if SCOPE[r] == LISTS)


def _wrong_answers(world, route: str) -> list[tuple]:
    """The route called by each caller on the thing outside their borough, then inside; the
    answers that are not the ones the policy expects (the force-wide admin's last: its actions
    change state)."""
    client, inside, outside, callers = world
    names_things = bool(getattr(_declared(client.app)[route], "targets", ()))
    wrong = []
    for who in ("station", "supervisor@Camden", "admin"):
        for where in ("outside", "inside"):
            role, headers = callers[who]
            method, path, body = _request(route, inside if where == "inside" else outside)
            response = client.request(method, path, headers=headers, follow_redirects=False, **body)
            expected = _expected(route, role, who != "admin", where, names_things)
            status = response.status_code
            if (
                (expected == "403" and status != 403)
                or (expected == "allowed" and status in (401, 403))
                or (expected == "not 403" and status == 403)
            ):
                wrong.append((route, who, where, f"expected {expected}", status, response.text[:300]))
    return wrong


def test_the_role_by_scope_matrix_of_reads(world):
    """A read changes nothing a later read's answer depends on: every read route in one world."""
    assert [w for route in READS for w in _wrong_answers(world, route)] == []


@pytest.mark.slow  # a world per route (the admin's calls change it): the whole suite, not test-fast
@pytest.mark.parametrize("route", WRITES)
def test_the_role_by_scope_matrix_of_writes(world, route):
    assert _wrong_answers(world, route) == []


def test_lists_show_a_scoped_caller_nothing_of_another_borough(world):
    """Every list read by the scoped callers in one world (reads change nothing the next shows)."""
    client, inside, outside, callers = world
    problems: list[tuple] = []
    for route in LIST_READS:
        for who in ("station", "supervisor@Camden"):
            role, headers = callers[who]
            if POLICY[route] != PUBLIC and role not in POLICY[route]:
                continue
            _method, path, _ = _request(route, inside)
            response = client.get(path, headers=headers)
            if response.status_code != 200:
                problems.append((who, route, response.status_code, response.text[:300]))
                continue
            leaked = [i for i in _identifiers(outside) if i in response.text]
            if leaked:
                problems.append((who, route, "shows the other borough's", leaked))
            # the overview counts; every other list names its rows
            if route != "GET /" and not any(i in response.text for i in _identifiers(inside)):
                problems.append((who, route, "shows nothing of its own borough either", response.text[:300]))
        admin = client.get(_request(route, inside)[1], headers=ADMIN).text
        # (the queue of requests to keep footage lists requests, none in this world: test_keep_pages.py)
        if route not in ("GET /", "GET /stations", "GET /api/v1/stations", "GET /keep-requests") and not any(
            i in admin for i in _identifiers(outside)
        ):
            problems.append(("admin", route, "a force-wide caller sees every borough"))
    assert problems == []


def test_a_request_naming_one_thing_inside_and_one_outside_is_refused(world):
    client, inside, outside, callers = world
    _, supervisor = callers["supervisor@Camden"]
    for route, body in [
        ("/api/v1/assignments", {"device_serial": inside.serial, "officer_id": outside.officer_id}),
        ("/api/v1/assignments", {"device_serial": outside.serial, "officer_id": inside.officer_id}),
        (f"/api/v1/clips/{inside.clip_id}/attribution", {"officer_id": outside.officer_id, "reason": "x"}),
        ("/api/v1/cases/CASE-2/clips", {"clip_ids": [inside.clip_id, outside.clip_id], "reason": "x"}),
        (
            "/api/v1/officers/",
            [
                {"officer_id": inside.officer_id, "borough": inside.borough},
                {"officer_id": outside.officer_id, "borough": inside.borough},
            ],
        ),
        ("/api/v1/officers/", [{"officer_id": inside.officer_id, "borough": outside.borough}]),  # moving one out
        ("/api/v1/officers/", [{"officer_id": "PCNEW1", "borough": outside.borough}]),  # creating one elsewhere
    ]:
        response = client.post(route, headers=supervisor, json=body)
        assert response.status_code == 403, (route, body, response.text)
    response = client.post(
        "/officers/unassign", headers=supervisor, data={"device_serial": [inside.serial, outside.serial]}
    )
    assert response.status_code == 403, response.text
    assert (
        client.post(
            f"/clips/{inside.clip_id}/release/{outside.hold_id}", headers=supervisor, data={"reason": "x"}
        ).status_code
        == 403
    )


def test_holds_of_no_borough_are_outside_every_scope(world):
    client, inside, outside, callers = world
    _, supervisor = callers["supervisor@Camden"]
    case_hold = client.post(
        "/api/v1/holds", headers=ADMIN, json={"kind": "case", "case_ref": "CASE-9", "reason": "force-wide"}
    ).json()["id"]
    assert (
        client.post(f"/api/v1/holds/{case_hold}/release", headers=supervisor, json={"reason": "x"}).status_code == 403
    )
    assert (
        client.post(
            f"/api/v1/holds/{inside.officer_hold_id}/release", headers=supervisor, json={"reason": "x"}
        ).status_code
        == 200
    )
    assert (
        client.post(
            f"/api/v1/holds/{outside.officer_hold_id}/release", headers=supervisor, json={"reason": "x"}
        ).status_code
        == 403
    )
    listed = {h["id"] for h in client.get("/api/v1/holds", headers=supervisor).json()}
    assert listed == {inside.hold_id}, listed  # not Barnet's, not the case hold; the released one is not active


def test_a_clip_of_a_camera_in_no_borough_is_outside_every_scope(world):
    client, _inside, _outside, callers = world
    _, supervisor = callers["supervisor@Camden"]
    stray, _ = _upload(client, CAMDEN, "BWV-UNREGISTERED-1", b"stray", whole=True)
    assert client.get(f"/api/v1/clips/{stray}", headers=ADMIN).status_code == 200
    assert client.get(f"/api/v1/clips/{stray}", headers=supervisor).status_code == 403
    assert (
        client.post(
            "/api/v1/holds", headers=supervisor, json={"kind": "clip", "clip_id": stray, "reason": "x"}
        ).status_code
        == 403
    )


def test_a_padded_form_field_names_the_same_thing_to_the_guard_and_the_handler(world):
    """The dashboard's handlers trim what a form posts: the guard must resolve the trimmed text, or
    " PCBAR1" passes as an officer that does not exist and is then acted on, trimmed, as Barnet's."""
    client, inside, outside, callers = world
    _, supervisor = callers["supervisor@Camden"]
    client.post(f"/api/v1/assignments/{outside.serial}/end", headers=ADMIN, json={"reason": "x"}).raise_for_status()
    for padded in (f" {outside.serial}", f"{outside.serial} ", f"\t{outside.serial}\n"):
        response = client.post(
            "/officers/assign",
            headers=supervisor,
            follow_redirects=False,
            data={"device_serial": padded, "officer_id": f" {outside.officer_id} "},
        )
        assert response.status_code == 403, (padded, response.status_code, response.text[:300])
    response = client.post(
        f"/clips/{inside.clip_id}/attribution",
        headers=supervisor,
        follow_redirects=False,
        data={"officer_id": f"{outside.officer_id} ", "reason": "x"},
    )
    assert response.status_code == 403, response.text[:300]
    response = client.post(
        "/officers/unassign", headers=supervisor, follow_redirects=False, data={"device_serial": f" {inside.serial} "}
    )
    assert response.status_code == 303, response.text[:300]  # and its own camera, padded, is still its own
    assert client.get(f"/api/v1/clips/{inside.clip_id}/attribution", headers=ADMIN).json()["officer_id"] is None
    active = client.get("/api/v1/assignments", headers=ADMIN, params={"active": True}).json()
    assert [a["device_serial"] for a in active] == [], active


@pytest.mark.parametrize("bad", ["99999999999999999999", "9223372036854775808"])
def test_an_id_past_sqlites_integers_is_refused_not_a_server_error(world, bad):
    """A path's ``{hold_id:int}`` is bounded (le=2**62) only after the guards ran: the scope guard's
    lookup must not hand SQLite an integer it cannot hold."""
    client, inside, _outside, callers = world
    for who in ("supervisor@Camden", "station"):
        _, headers = callers[who]
        for method, path, body in [
            ("POST", f"/api/v1/holds/{bad}/release", {"json": {"reason": "x"}}),
            ("POST", f"/api/v1/conflicts/{bad}/resolve", {"json": {"resolution": "x"}}),
            ("POST", f"/officers/conflicts/{bad}/resolve", {"data": {"resolution": "x"}}),
            ("POST", f"/clips/{inside.clip_id}/release/{bad}", {"data": {"reason": "x"}}),
        ]:
            response = client.request(method, path, headers=headers, follow_redirects=False, **body)
            assert response.status_code in (400, 403, 404), (who, path, response.status_code, response.text[:200])


def test_row_ids_the_guard_resolves():
    assert [scope.row_id(k) for k in ("7", "0", "²", "١٢", "-1", " 7", "9" * 19, str(2**63 - 1), str(2**63))] == [
        7,
        0,
        None,
        None,
        None,
        None,
        None,
        2**63 - 1,
        None,
    ]
