"""Every answer central gives carries the browser-facing security headers; pages run under a
strict Content-Security-Policy (no inline script or style) and load nothing from other origins."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from central.core.providers import services
from tests.central.apps import central_client
from tests.central.conftest import ADMIN
from tests.central.evidence.test_clips import upload
from tests.central.web.test_dashboard import PASSWORD, log_in

TEMPLATES = Path(__file__).parents[3] / "central" / "templates"


def csp_of(response) -> dict[str, str]:
    return {d.split()[0]: d.strip() for d in response.headers["content-security-policy"].split(";") if d.strip()}


def assert_secure(response) -> None:
    csp = csp_of(response)
    assert csp["default-src"] == "default-src 'self'"
    assert csp["script-src"] == "script-src 'self'" and csp["style-src"] == "style-src 'self'"
    assert csp["object-src"] == "object-src 'none'" and csp["base-uri"] == "base-uri 'none'"
    assert csp["frame-ancestors"] == "frame-ancestors 'none'" and csp["form-action"] == "form-action 'self'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


@pytest.fixture
def signed_in(settings):

    with central_client(settings, base_url="https://central.test", raise_server_exceptions=False) as c:
        services(c.app).users.add("f.manager", "admin", "test", password=PASSWORD)
        log_in(c, "f.manager")
        yield c


PAGES = ["/", "/stations", "/devices", "/officers", "/rollout", "/clips", "/audit", "/devices/NOPE"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_has_the_headers_and_is_not_cached(signed_in, path):
    r = signed_in.get(path)
    assert_secure(r)
    assert r.headers["cache-control"] == "no-store"


def test_the_login_page_errors_and_health_have_the_headers(client):
    for r in (
        client.get("/login"),
        client.get("/healthz"),
        client.get("/api/v1/clips"),
        client.get("/no/such/route", headers=ADMIN),
        client.get("/api/v1/devices/", headers=ADMIN),
    ):
        assert_secure(r)
    assert client.get("/api/v1/devices/", headers=ADMIN).headers["cache-control"] == "no-store"
    assert client.get("/login").headers["cache-control"] == "no-store"


def test_clip_content_is_not_cached(client):
    clip_id = upload(client, b"footage" * 100)
    r = client.get(f"/api/v1/clips/{clip_id}/content", headers=ADMIN)
    assert r.status_code == 200
    assert_secure(r)
    assert r.headers["cache-control"] == "no-store"


def test_templates_have_no_inline_script_or_style():
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert "<style" not in text and not re.search(r"\sstyle=", text), template.name
        assert not re.search(r"\son[a-z]+=", text), template.name


def test_rendered_pages_have_no_inline_style_and_their_stylesheet_is_served(signed_in):
    for path in PAGES:
        html = signed_in.get(path).text
        assert not re.search(r"\sstyle=|<style|<script", html), path
        for sheet in re.findall(r'<link rel="stylesheet" href="([^"]+)"', html):
            css = signed_in.get(sheet)
            assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
            assert_secure(css)


def test_api_viewers_are_off_and_no_page_loads_a_script_from_elsewhere(signed_in):
    assert signed_in.get("/schema/openapi.json").status_code == 200
    assert signed_in.get("/schema/openapi.yaml").status_code == 200
    assert "html" not in signed_in.get("/schema").headers["content-type"]  # the document itself, no viewer
    for viewer in ("/schema/swagger", "/schema/redoc", "/schema/elements", "/schema/rapidoc", "/schema/stoplight"):
        r = signed_in.get(viewer)
        assert r.status_code == 404, viewer
    for path in ["/login", *PAGES]:
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", signed_in.get(path).text), path


def test_a_header_an_answer_sets_itself_is_replaced_not_doubled():
    import asyncio

    from central.core.headers import CSP, add_security_headers

    headers = [(b"Content-Security-Policy", b"default-src *"), (b"cache-control", b"max-age=60")]
    message: Any = {"type": "http.response.start", "status": 200, "headers": headers}
    scope: Any = {"path": "/api/v1/x", "route_handler": None}
    asyncio.run(add_security_headers(message, scope))
    names = [name.lower() for name, _ in headers]
    assert sorted(names) == sorted(set(names))  # nothing twice
    values = {name.lower(): value for name, value in headers}
    assert values[b"content-security-policy"] == CSP.encode() and values[b"cache-control"] == b"no-store"
    assert values[b"x-frame-options"] == b"DENY" and values[b"x-content-type-options"] == b"nosniff"
