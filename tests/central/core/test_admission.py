"""Admission control: a saturated central answers 503/429 with Retry-After and keeps serving."""

import asyncio
import time

import httpx
import pytest
from litestar.testing import AsyncTestClient

from central.core.admission import lane_of
from central.core.app import create_app
from central.core.providers import services
from fleet.retry import parse_retry_after
from tests.central.conftest import ADMIN, BARNET, CAMDEN, TUS, checksum, make_settings, metadata


async def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


class HeldUpload:
    """A PATCH whose body arrives only when the test says so: it stays in flight until then."""

    def __init__(self, client, headers, data: bytes) -> None:
        self.client, self.headers, self.data = client, headers, data
        self.release = asyncio.Event()

    async def body(self):
        await self.release.wait()
        yield self.data

    async def start(self) -> asyncio.Task:
        """Create the upload, then send its PATCH through httpx's ASGI transport, which reads bodies lazily."""
        created = await self.client.post(
            "/api/v1/uploads/",
            headers={
                **self.headers,
                **TUS,
                "Upload-Length": str(len(self.data)),
                "Upload-Metadata": metadata(self.data),
            },
        )
        assert created.status_code == 201
        raw = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.client.app), base_url="http://testserver")

        async def send():
            async with raw:
                return await raw.patch(
                    created.headers["Location"],
                    content=self.body(),
                    headers={
                        **self.headers,
                        **TUS,
                        "Upload-Offset": "0",
                        "Content-Type": "application/offset+octet-stream",
                        "Upload-Checksum": checksum(self.data),
                    },
                )

        return asyncio.create_task(send())


async def create(client, headers, data: bytes):
    return await client.post(
        "/api/v1/uploads/",
        headers={**headers, **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": metadata(data)},
    )


@pytest.fixture
def app_with(tmp_path):
    return lambda **limits: create_app(make_settings(tmp_path / "central", limits=limits))


@pytest.mark.asyncio
async def test_a_full_lane_is_503_with_retry_after_and_health_still_answers(app_with):
    app = app_with(uploads_in_flight=1, retry_after_s=3)
    async with AsyncTestClient(app) as client:
        held = HeldUpload(client, CAMDEN, b"x" * 1000)
        first = await held.start()
        await wait_for(lambda: services(app).admission.in_flight["uploads"] == 1)
        refused = await create(client, BARNET, b"y" * 10)
        assert refused.status_code == 503
        assert refused.json()["error"] == "overloaded" and "limit" in refused.json()["message"]
        retry_after = parse_retry_after(refused.headers["Retry-After"])
        assert retry_after is not None and 3 <= retry_after <= 6
        health = await client.get("/healthz")
        assert health.status_code == 200
        assert health.json()["load"] == {
            "in_flight": {"uploads": 1, "events": 0, "other": 0},
            "refused_503": 1,
            "refused_429": 0,
        }
        assert (await client.get("/api/v1/clips", headers=ADMIN)).status_code == 200  # other lanes unaffected
        held.release.set()
        assert (await first).status_code == 204
        assert services(app).admission.in_flight["uploads"] == 0
        again = await create(client, BARNET, b"y" * 10)
        assert again.status_code == 201


@pytest.mark.asyncio
async def test_one_client_past_its_share_is_429_while_others_are_served(app_with):
    app = app_with(uploads_in_flight=10, per_client_in_flight=1)
    async with AsyncTestClient(app) as client:
        held = HeldUpload(client, CAMDEN, b"x" * 1000)
        first = await held.start()
        await wait_for(lambda: services(app).admission.in_flight["uploads"] == 1)
        mine = await create(client, CAMDEN, b"y" * 10)
        assert mine.status_code == 429 and mine.json()["error"] == "too_many_requests"
        retry_after = parse_retry_after(mine.headers["Retry-After"])
        assert retry_after is not None and retry_after >= 1
        theirs = await create(client, BARNET, b"y" * 10)
        assert theirs.status_code == 201
        held.release.set()
        assert (await first).status_code == 204


@pytest.mark.asyncio
async def test_a_failing_request_gives_its_place_back(app_with):
    app = app_with(events_in_flight=1)
    async with AsyncTestClient(app) as client:
        for _ in range(3):
            bad = await client.post("/api/v1/events/", headers=CAMDEN, content=b"not json")
            assert bad.status_code == 400
        assert services(app).admission.in_flight["events"] == 0 and services(app).admission.refused.total() == 0


def test_lanes():
    assert lane_of("PATCH", "/api/v1/uploads/abc") == "uploads"
    assert lane_of("POST", "/api/v1/uploads/") == "uploads"
    assert lane_of("HEAD", "/api/v1/uploads/abc") == "other"
    assert lane_of("POST", "/api/v1/events/") == "events"
    assert lane_of("GET", "/healthz") is None
    assert lane_of("GET", "/devices") == "other"
