"""Central's OpenAPI document says what central does: auth, the one error shape, bodyless tus answers."""

import pytest
from litestar.testing import TestClient

from central.core.app import create_app
from tests.central.conftest import make_settings


@pytest.fixture(scope="module")
def document(tmp_path_factory):
    app = create_app(make_settings(tmp_path_factory.mktemp("openapi") / "central"))
    return TestClient(app).get("/schema/openapi.json").json()  # no lifespan: the document needs no database


def operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def test_every_route_but_healthz_and_the_public_ones_needs_the_bearer_token(document):
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A station's token, a user's API token, or the admin token",
    }
    for name, operation in operations(document):
        if name in ("GET /healthz", "GET /api/v1/disclosure/keys") or name.startswith("GET /public/"):
            assert "security" not in operation and "401" not in operation["responses"], name
        else:
            assert operation["security"] == [{"bearer": []}], name
            assert {"401", "403"} <= operation["responses"].keys(), name


def test_every_error_is_documented_in_the_one_shape(document):
    """Litestar's own {status_code, detail, extra} shape never reaches the document."""
    for name, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["content"] == {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                }, (name, status)
    assert set(document["components"]["schemas"]["ErrorBody"]["required"]) == {"status", "error", "message"}


def test_inputs_can_be_refused_and_ids_not_found(document):
    clip = dict(operations(document))["GET /api/v1/clips/{clip_id}"]["responses"]
    assert {"400", "404"} <= clip.keys()
    stations = dict(operations(document))["GET /api/v1/stations"]["responses"]
    assert "400" not in stations and "404" not in stations  # no input, nothing to look up


def test_tus_answers_are_headers_only(document):
    ops = dict(operations(document))
    for name, status in (
        ("OPTIONS /api/v1/uploads", "204"),
        ("POST /api/v1/uploads", "201"),
        ("POST /api/v1/uploads", "200"),
        ("HEAD /api/v1/uploads/{upload_id}", "200"),
        ("PATCH /api/v1/uploads/{upload_id}", "204"),
        ("DELETE /api/v1/uploads/{upload_id}", "204"),
    ):
        assert "content" not in ops[name]["responses"][status], name


def test_admission_refusals_are_documented_on_every_route_it_guards(document):
    for name, operation in operations(document):
        assert ({"429", "503"} <= operation["responses"].keys()) is (name not in ("GET /healthz", "GET /metrics")), name
