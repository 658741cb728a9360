"""Schemathesis against central's own OpenAPI document: no 5xx, nothing the document does not say.

The app is the real one ``create_app(settings)`` builds, called in process through
schemathesis's ASGI transport: no socket and no subprocess, so the suite stays fast and an
unexpected error's traceback is logged in this process. uvicorn's own HTTP parsing is
covered by the real-process tests (tests/e2e, test_tus_interop).

Every generated request is sent as the admin, as a station, as a viewer (the
least-privileged user) and with an unknown token, so the 401 and 403 answers are checked
against the document as well as the successful ones. The database holds a few officers,
cameras, clips, an assignment, a hold and a roll-out proposal, and path parameters are
sometimes drawn from those, so the GET-by-id routes reach real rows too.

Bounded and derandomised in the suite (a few examples per operation, schemathesis's
fuzzing phase); ``FUZZ_EXAMPLES=500`` (``make fuzz``) adds the coverage phase (boundary
and invalid values for every parameter) and many more examples.

What the document does not describe, schemathesis cannot send: the tus headers past
Tus-Resumable and the bodies routes read themselves (a PATCH's byte stream, CSV imports,
event batches) arrive empty here; test_uploads, test_tus_interop, test_error_shape,
test_events and the CSV tests cover those.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import schemathesis
from hypothesis import strategies as st
from litestar.testing import TestClient
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from central.core.app import create_app
from central.core.providers import services
from fleet.protocol import UploadMetadata, encode_upload_metadata
from tests.central.conftest import ADMIN, BARNET, CAMDEN, TUS, checksum, make_settings
from tests.station.conftest import RECORDED

LONG = "FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
"""Not negative_data_rejection: it counts an unknown query parameter or header that central
ignores (as HTTP servers do, and as central's wire types ignore unknown fields) as accepted
bad input. Invalid data is still generated, and answering it with a 5xx still fails."""
CONFIG = Path(__file__).resolve().parents[3] / "config"

CLIPS = (
    "5f0c6a1e-3b7d-4c2a-9e41-0d6f1a2b3c01",
    "5f0c6a1e-3b7d-4c2a-9e41-0d6f1a2b3c02",
    "5f0c6a1e-3b7d-4c2a-9e41-0d6f1a2b3c03",
)
KNOWN: dict[str, list[str | int]] = {
    "clip_id": list(CLIPS),
    "serial": ["BWV-000123", "BWV-000200"],
    "device_serial": ["BWV-000123"],
    "officer_id": ["PC4417", "PC3301"],
    "station_id": ["camden", "barnet"],
    "hold_id": [1],
    "proposal_id": [1],
    "upload_id": [],
}
"""Ids the seeded database holds: path parameters are sometimes drawn from these (the upload
ids are central's own, so seeding adds them)."""


def settings_in(data_dir: Path):
    return make_settings(
        data_dir, rollout={"boroughs": str(CONFIG / "boroughs.toml"), "scenario": str(CONFIG / "rollout.toml")}
    )


def served_document() -> dict:
    """The OpenAPI document as central serves it, fetched without the lifespan (nothing is
    opened or written), so collecting this module needs no database."""
    app = create_app(settings_in(Path(tempfile.gettempdir()) / "bwv-fuzz-never-created"))
    response = TestClient(app).get("/schema/openapi.json")
    response.raise_for_status()
    return response.json()


schema = schemathesis.openapi.from_dict(
    served_document(),
    config=schemathesis.config.SchemathesisConfig.from_dict(
        {
            "seed": 7,
            "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
            "phases": {"coverage": {"enabled": LONG}},
        }
    ),
)


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Now and then an id that exists, so a GET by id reaches a real row."""
    known = {k: KNOWN[k] for k in path_parameters or () if k in KNOWN}
    if not known:
        return st.just(path_parameters)
    return st.one_of(
        st.just(path_parameters),
        st.fixed_dictionaries({k: st.sampled_from(v) for k, v in known.items()}).map(
            lambda real: {**path_parameters, **real}
        ),
    )


def upload(http, headers, clip_id: str, serial: str, hours: int, data: bytes, **meta) -> str:
    metadata = UploadMetadata(
        clip_id=uuid.UUID(clip_id),
        sha256=hashlib.sha256(data).hexdigest(),
        device_serial=serial,
        recorded_at=RECORDED + timedelta(hours=hours),
        filename=f"{hours:03d}.mp4",
        **meta,
    )
    created = http.post(
        "/api/v1/uploads/",
        headers={
            **headers,
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": encode_upload_metadata(metadata),
        },
    )
    assert created.status_code == 201, created.text
    patched = http.patch(
        created.headers["Location"],
        data=data,
        headers={
            **headers,
            **TUS,
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": checksum(data),
        },
    )
    assert patched.status_code == 204, patched.text
    return created.headers["Location"].rsplit("/", 1)[1]


def seed(http, app) -> dict[str, dict[str, str]]:
    """A little realistic data, put in through the API itself; the callers' headers."""

    def ok(response, status=200):
        assert response.status_code == status, response.text
        return response.json()

    ok(
        http.post(
            "/api/v1/officers/",
            headers=ADMIN,
            json=[
                {"officer_id": "PC4417", "borough": "Camden", "team": "Team A", "role": "response", "name": "A. Khan"},
                {"officer_id": "PC2210", "borough": "Camden", "team": "Team B", "role": "neighbourhood"},
                {"officer_id": "PC3301", "borough": "Barnet", "team": "Team A", "role": "response"},
            ],
        )
    )
    ok(
        http.post(
            "/api/v1/devices/",
            headers=ADMIN,
            json=[
                {
                    "serial": "BWV-000123",
                    "model": "Axon Body 2",
                    "borough": "Camden",
                    "home_station": "camden",
                    "assignment_mode": "personal",
                },
                {"serial": "BWV-000124", "model": "Axon Body 2", "borough": "Camden", "home_station": "camden"},
                {"serial": "BWV-000200", "model": "Axon Body 3", "borough": "Barnet", "home_station": "barnet"},
                {"serial": "BWV-000300", "model": "Axon Body 3"},
            ],
        ),
        201,
    )
    ok(
        http.post("/api/v1/assignments", headers=ADMIN, json={"device_serial": "BWV-000123", "officer_id": "PC4417"}),
        201,
    )
    KNOWN["upload_id"][:] = [
        upload(http, CAMDEN, CLIPS[0], "BWV-000123", 0, os.urandom(2000), evidential=True, tags=["stop_and_search"]),
        upload(http, CAMDEN, CLIPS[1], "BWV-000124", 1, os.urandom(2001)),
        upload(http, BARNET, CLIPS[2], "BWV-000200", 2, os.urandom(2002)),
    ]
    assert (
        ok(
            http.post(
                "/api/v1/holds", headers=ADMIN, json={"kind": "clip", "reason": "complaint", "clip_id": CLIPS[0]}
            ),
            201,
        )["id"]
        == 1
    )
    assert (
        ok(http.post("/api/v1/rollout/proposals", headers=ADMIN, json={"boroughs": ["Camden"], "count": 1}), 201)["id"]
        == 1
    )
    services(app).users.add("fuzz.viewer", "viewer", "test")
    viewer = services(app).users.create_token("fuzz.viewer", "fuzz", "test").token
    return {
        "admin": ADMIN,
        "station": CAMDEN,
        "viewer": {"Authorization": f"Bearer {viewer}"},
        "unknown": {"Authorization": "Bearer not-a-token"},
    }


@pytest.fixture(scope="module")
def central(tmp_path_factory):
    app = create_app(settings_in(tmp_path_factory.mktemp("fuzz") / "central"))
    # Litestar is an ASGI app; schemathesis's ASGIApp alias wants plain dicts where Litestar types its scopes.
    with asgi.get_client(app) as http:  # type: ignore[arg-type]  # starts the app's lifespan, which the calls below then reuse
        callers = seed(http, app)
    yield app, callers
    asgi.shutdown_lifespans()


def seconds(value) -> float:
    """A generated ``wait`` as central would read it (a number, or a string of one); 0 if neither."""
    try:
        return float(value) if not isinstance(value, bool) else 0.0
    except (TypeError, ValueError):
        return 0.0


@pytest.mark.slow  # every operation fuzzed: the whole suite and make fuzz, not test-fast
@schema.parametrize()
def test_central_answers_as_its_document_says(case, central):
    app, callers = central
    if case.operation.path == "/api/v1/changes" and 0 < seconds((case.query or {}).get("wait")) <= 30:
        # The changes feed holds a request up to ``wait`` seconds (a long poll, which
        # tests/central/test_changes covers): here it answers at once, so time goes on inputs.
        case.query["wait"] = 0
    # A tus client always says which version it speaks (without it every call is 412, which
    # tests/central/test_uploads covers), so the fuzz gets past that to the upload's own checks.
    tus = TUS if case.operation.path.startswith("/api/v1/uploads") else {}
    for headers in callers.values():
        case.call_and_validate(app=app, headers={**headers, **tus}, checks=CHECKS)  # a copy: schemathesis adds to it
