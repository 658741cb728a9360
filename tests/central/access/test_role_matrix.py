"""The role matrix: every API route and page, for every role, allowed or 403.

The table below is the access policy. A route missing from it fails the test, so a new
route cannot ship without a decision about who may use it. "Allowed" means neither 401
nor 403 (the sample ids do not exist, so most allowed calls answer 404 or 400)."""

from __future__ import annotations

import re

import pytest

from central.core.providers import services
from tests.central.apps import central_client
from tests.central.conftest import CAMDEN, make_settings

ROLES = ("viewer", "fleet_manager", "planner", "supervisor", "auditor", "information_manager", "admin")
USERS = frozenset(ROLES)
EVERYONE = USERS | {"station"}
FOOTAGE = frozenset({"supervisor", "admin"})
CLIP_RECORDS = FOOTAGE | {"information_manager"}
"""Clips' records (officer, camera, time) and holds: information managers too, never the footage."""
CUSTODY = frozenset({"auditor", "information_manager", "admin"})
ADMIN = frozenset({"admin"})
PUBLIC = "public"

POLICY: dict[str, frozenset[str] | str] = {
    # health, login and the API document need no token
    "GET /healthz": PUBLIC,
    # Prometheus's scrape: the [metrics] token (tests/central/core/test_metrics.py) or an admin
    "GET /metrics": ADMIN,
    "GET /login": PUBLIC,
    "POST /login": PUBLIC,
    # staff sign-in through the force's directory (tests/central/web/test_directory_sign_in.py)
    "GET /login/oidc": PUBLIC,
    "GET /login/oidc/callback": PUBLIC,
    # the dashboard's stylesheets: the login page needs them before anyone has logged in
    "GET /static/{file_path:path}": PUBLIC,
    "HEAD /static/{file_path:path}": PUBLIC,
    # the public figures: for anyone, no login
    "GET /public/figures": PUBLIC,
    "GET /public/figures.csv": PUBLIC,
    "GET /public/figures.json": PUBLIC,
    # the dashboard: every user reads fleet data
    "GET /": USERS,
    "GET /stations": USERS,
    "GET /devices": USERS,
    "GET /devices/{serial:str}": USERS,
    "POST /logout": USERS,
    "GET /officers": USERS,
    "GET /rollout": USERS,
    "GET /models": USERS,
    "GET /models/{model:str}": USERS,
    "GET /profiles": USERS,
    "GET /firmware": frozenset({"fleet_manager", "admin"}),
    "GET /deployments": frozenset({"fleet_manager", "admin"}),
    "GET /deployments/{deployment_id:int}": frozenset({"fleet_manager", "admin"}),
    "POST /deployments/{deployment_id:int}/{decision:str}": frozenset({"fleet_manager", "admin"}),
    "POST /officers/assign": FOOTAGE,
    "POST /officers/unassign": FOOTAGE,
    "POST /rollout/proposals/{proposal_id:int}/{decision:str}": frozenset({"planner", "admin"}),
    "GET /clips": CLIP_RECORDS,
    "GET /clips/{clip_id:str}": CLIP_RECORDS,
    "POST /clips/{clip_id:str}/hold": CLIP_RECORDS,
    "POST /clips/{clip_id:str}/release/{hold_id:int}": FOOTAGE,
    "POST /clips/{clip_id:str}/categories": FOOTAGE,
    "POST /clips/{clip_id:str}/restore": ADMIN,
    "POST /clips/{clip_id:str}/attribution": FOOTAGE,
    "GET /officers/conflicts": FOOTAGE,
    "POST /officers/conflicts/{conflict_id:int}/resolve": FOOTAGE,
    "GET /cases": FOOTAGE,
    "GET /cases/{case_ref:str}": FOOTAGE,
    "POST /cases/{case_ref:str}/disclosure": FOOTAGE,
    "POST /cases/{case_ref:str}/shares": FOOTAGE,
    "POST /cases/{case_ref:str}/shares/{share_id:int}/withdraw": FOOTAGE,
    # a partner's share link: its secret is the key (tests/central/evidence/test_disclosure.py)
    "GET /shared/{token:str}": PUBLIC,
    "GET /shared/{token:str}/clips/{clip_id:str}": PUBLIC,
    "GET /audit": frozenset({"auditor", "admin"}),
    "POST /audit/verify": frozenset({"auditor", "admin"}),
    # the public's requests to keep footage: anyone asks and follows by reference; information
    # managers (and admins) work the queue
    "GET /public/keep-footage": PUBLIC,
    "POST /public/keep-footage": PUBLIC,
    "GET /public/keep-footage/received": PUBLIC,
    "GET /public/keep-footage/status": PUBLIC,
    "GET /keep-requests": frozenset({"information_manager", "admin"}),
    "GET /keep-requests/{reference:str}": frozenset({"information_manager", "admin"}),
    "POST /keep-requests/{reference:str}/narrow": frozenset({"information_manager", "admin"}),
    "POST /keep-requests/{reference:str}/close": frozenset({"information_manager", "admin"}),
    "POST /keep-requests/bulk-close": frozenset({"information_manager", "admin"}),
    # what stations do; of the users only admins upload
    "POST /api/v1/uploads": ADMIN | {"station"},
    "HEAD /api/v1/uploads/{upload_id:str}": ADMIN | {"station"},
    "PATCH /api/v1/uploads/{upload_id:str}": ADMIN | {"station"},
    "DELETE /api/v1/uploads/{upload_id:str}": ADMIN | {"station"},
    "POST /api/v1/events": frozenset({"station"}),
    "GET /api/v1/changes": frozenset({"station", "fleet_manager", "admin"}),
    "GET /api/v1/changes/snapshot": frozenset({"station", "fleet_manager", "admin"}),
    # footage is not fleet data: seeing a camera's battery does not grant seeing its clips
    "GET /api/v1/clips": FOOTAGE,
    "GET /api/v1/clips/{clip_id:str}": FOOTAGE,
    "GET /api/v1/clips/{clip_id:str}/content": FOOTAGE,
    "GET /api/v1/clips/{clip_id:str}/attribution": FOOTAGE,
    "POST /api/v1/clips/{clip_id:str}/attribution": FOOTAGE,
    "GET /api/v1/unattributed": FOOTAGE,
    "GET /api/v1/clips/{clip_id:str}/retention": FOOTAGE,
    "POST /api/v1/clips/{clip_id:str}/categories": FOOTAGE,
    "GET /api/v1/holds": FOOTAGE,
    "POST /api/v1/holds": CLIP_RECORDS,
    "POST /api/v1/holds/{hold_id:int}/release": FOOTAGE,
    "POST /api/v1/cases/{case_ref:str}/clips": FOOTAGE,
    "GET /api/v1/cases/{case_ref:str}": FOOTAGE,
    "POST /api/v1/cases/{case_ref:str}/disclosure": FOOTAGE,
    "GET /api/v1/cases/{case_ref:str}/shares": FOOTAGE,
    "POST /api/v1/cases/{case_ref:str}/shares": FOOTAGE,
    "POST /api/v1/cases/{case_ref:str}/shares/{share_id:int}/withdraw": FOOTAGE,
    # the keys that sign disclosure packages are published for anyone holding one
    "GET /api/v1/disclosure/keys": PUBLIC,
    "POST /api/v1/clips/{clip_id:str}/restore": ADMIN,
    "POST /api/v1/clips/{clip_id:str}/review": ADMIN,
    "GET /api/v1/retention/reviews": ADMIN,
    "GET /api/v1/retention/digest": ADMIN,
    "POST /api/v1/retention/run": ADMIN,
    # a clip's chain of custody: auditors, and information managers who print it for a complaint
    "GET /api/v1/clips/{clip_id:str}/custody": CUSTODY,
    "GET /api/v1/clips/{clip_id:str}/custody.csv": CUSTODY,
    "GET /api/v1/clips/{clip_id:str}/custody.html": CUSTODY,
    # fleet data: every user reads; stations read their own borough's
    "GET /api/v1/devices": EVERYONE,
    "GET /api/v1/devices/export.csv": EVERYONE,
    "GET /api/v1/devices/{serial:str}": EVERYONE,
    "GET /api/v1/officers": EVERYONE,
    "GET /api/v1/officers/export.csv": EVERYONE,
    "GET /api/v1/officers/{officer_id:str}": EVERYONE,
    "GET /api/v1/assignments": EVERYONE,
    "GET /api/v1/assignments/export.csv": EVERYONE,
    "GET /api/v1/stations": USERS,
    "GET /api/v1/stations/{station_id:str}": EVERYONE,
    # device administration: fleet managers
    "POST /api/v1/devices": frozenset({"fleet_manager", "admin"}),
    "POST /api/v1/devices/import.csv": frozenset({"fleet_manager", "admin"}),
    "POST /api/v1/devices/{serial:str}/lifecycle": frozenset({"fleet_manager", "admin"}),
    # officers, assignments and conflicts: supervisors
    "POST /api/v1/officers": FOOTAGE,
    "POST /api/v1/officers/import.csv": FOOTAGE,
    "POST /api/v1/assignments": FOOTAGE,
    "POST /api/v1/assignments/{device_serial:str}/end": FOOTAGE,
    "GET /api/v1/conflicts": FOOTAGE,
    "POST /api/v1/conflicts/{conflict_id:int}/resolve": FOOTAGE,
    # the roll-out: every user reads the plan and progress; planners allocate and commit
    "GET /api/v1/rollout/plan": USERS,
    "GET /api/v1/rollout/plan.csv": USERS,
    "GET /api/v1/rollout/progress": USERS,
    "GET /api/v1/rollout/progress.csv": USERS,
    "GET /api/v1/rollout/storage": USERS,
    "GET /api/v1/rollout/proposals": USERS,
    "GET /api/v1/rollout/proposals/{proposal_id:int}": USERS,
    "GET /api/v1/rollout/proposals/{proposal_id:int}/items.csv": USERS,
    "POST /api/v1/rollout/proposals": frozenset({"planner", "admin"}),
    "POST /api/v1/rollout/proposals/import.csv": frozenset({"planner", "admin"}),
    "POST /api/v1/rollout/proposals/{proposal_id:int}/commit": frozenset({"planner", "admin"}),
    "POST /api/v1/rollout/proposals/{proposal_id:int}/discard": frozenset({"planner", "admin"}),
    # firmware releases: fleet managers add and withdraw; stations fetch them to update cameras
    "POST /api/v1/firmware/releases": frozenset({"fleet_manager", "admin"}),
    "GET /api/v1/firmware/releases": frozenset({"station", "fleet_manager", "admin"}),
    "GET /api/v1/firmware/releases/{release_id:int}": frozenset({"station", "fleet_manager", "admin"}),
    "GET /api/v1/firmware/releases/{release_id:int}/artifact": frozenset({"station", "fleet_manager", "admin"}),
    "POST /api/v1/firmware/releases/{release_id:int}/withdraw": frozenset({"fleet_manager", "admin"}),
    # camera profiles: the force's settings, read by all; fleet managers set them
    "GET /api/v1/profiles": EVERYONE,
    "GET /api/v1/profiles/{scope_key:str}": EVERYONE,
    "PUT /api/v1/profiles/{scope_key:str}": frozenset({"fleet_manager", "admin"}),
    "GET /api/v1/devices/{serial:str}/profile": EVERYONE,
    "GET /api/v1/devices/{serial:str}/settings": USERS,
    # camera models: everyone reads them and a withdrawn one's swap; fleet managers withdraw and
    # propose replacements (planners commit them, as every roll-out proposal)
    "GET /api/v1/models": USERS,
    "POST /api/v1/models/{model:str}/withdraw": frozenset({"fleet_manager", "admin"}),
    "POST /api/v1/models/{model:str}/replacements": frozenset({"fleet_manager", "admin"}),
    "GET /api/v1/models/{model:str}/swap": USERS,
    "GET /api/v1/models/{model:str}/cameras": USERS,
    # deployments: the force's, read and decided by fleet managers; stations learn offers from the feed
    "POST /api/v1/deployments": frozenset({"fleet_manager", "admin"}),
    "GET /api/v1/deployments": frozenset({"fleet_manager", "admin"}),
    "GET /api/v1/deployments/{deployment_id:int}": frozenset({"fleet_manager", "admin"}),
    "GET /api/v1/deployments/{deployment_id:int}/cameras": frozenset({"fleet_manager", "admin"}),
    "POST /api/v1/deployments/{deployment_id:int}/pause": frozenset({"fleet_manager", "admin"}),
    "POST /api/v1/deployments/{deployment_id:int}/resume": frozenset({"fleet_manager", "admin"}),
    "POST /api/v1/deployments/{deployment_id:int}/abort": frozenset({"fleet_manager", "admin"}),
    "POST /api/v1/deployments/{deployment_id:int}/rollback": frozenset({"fleet_manager", "admin"}),
}

SAMPLE = {
    "upload_id": "u1",
    "clip_id": "c1",
    "serial": "BWV-1",
    "officer_id": "PC1",
    "device_serial": "BWV-1",
    "conflict_id": "1",
    "station_id": "camden",
    "proposal_id": "1",
    "case_ref": "CASE-1",
    "hold_id": "1",
    "share_id": "1",
    "token": "no-such-share-link-secret-at-all",
    "decision": "commit",
    "file_path": "fleet.css",
    "reference": "KF-0000-0000-0000",
    "release_id": "1",
    "deployment_id": "1",
    "scope_key": "default",
    "model": "AB2",
}
QUERY = {"/api/v1/changes": "?borough=Camden", "/api/v1/changes/snapshot": "?borough=Camden"}


def app_routes(app) -> list[str]:
    found = []
    for route in app.routes:
        if route.path.startswith("/schema"):
            continue  # the OpenAPI document and its viewers: public by design
        for handler in route.route_handlers:
            found += [f"{method} {route.path}" for method in handler.http_methods if method != "OPTIONS"]
    return sorted(found)


def test_every_route_has_a_policy(client):
    routes = app_routes(client.app)
    assert [r for r in routes if r not in POLICY] == [], "decide who may use these routes (POLICY above)"
    assert [r for r in POLICY if r not in routes] == [], "these routes are gone: drop them from POLICY"


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    """One central for every route: the sample ids do not exist, so the calls change nothing that matters."""
    with central_client(
        make_settings(tmp_path_factory.mktemp("matrix") / "central"), raise_server_exceptions=False
    ) as client:
        users = services(client.app).users
        headers = {"station": CAMDEN}
        for role in ROLES:
            users.add(f"u.{role}", role, "test")
            headers[role] = {"Authorization": f"Bearer {users.create_token(f'u.{role}', 'matrix', 'test').token}"}
        yield client, headers


@pytest.mark.parametrize("route", sorted(POLICY))
def test_the_role_matrix(matrix, route):
    client, callers = matrix
    method, template = route.split(" ", 1)
    path = re.sub(r"\{(\w+):\w+\}", lambda m: SAMPLE[m.group(1)], template) + QUERY.get(template, "")
    allowed = POLICY[route]
    for who, headers in callers.items():
        response = client.request(
            method, path, headers=headers, json={} if method in ("POST", "PATCH") else None, follow_redirects=False
        )
        if allowed == PUBLIC:  # no token needed (a login with no password is a 401 of its own)
            assert response.status_code != 403, (who, route, response.text[:200])
        elif who in allowed:
            assert response.status_code not in (401, 403), (who, route, response.text[:200])
        else:
            assert response.status_code == 403, (who, route, response.status_code, response.text[:200])
