"""The typed wiring and the event-loop rule (central.core.providers), checked when the app is built."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
from litestar import Litestar, Request, get
from litestar._kwargs import kwargs_model
from litestar.di import NamedDependency, Provide
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from central.core.app import create_app
from central.core.providers import Injected, check_handlers, dependencies, resolve_in_turn
from central.core.services import PLAIN_VALUES, AppServices
from central.registry.devices import DeviceService
from central.registry.officers import OfficerService
from tests.central.conftest import make_settings

CENTRAL = Path(__file__).parents[3] / "central"


def built(handler) -> Litestar:
    app = Litestar([handler], dependencies=dependencies())
    check_handlers(app)
    return app


def test_a_handler_that_takes_a_service_on_the_event_loop_is_refused():
    @get("/devices")
    async def on_the_loop(devices: Injected[DeviceService]) -> None:
        return None

    @get("/devices", sync_to_thread=False)
    def blocking_the_loop(devices: Injected[DeviceService]) -> None:
        return None

    for handler in (on_the_loop, blocking_the_loop):
        with pytest.raises(RuntimeError, match=r"GET /devices: takes devices on the event loop"):
            built(handler)


def test_an_async_handler_that_says_why_it_awaits_is_allowed():
    @get("/devices", on_loop="it waits for something")
    async def waits(devices: Injected[DeviceService]) -> None:
        return None

    @get("/devices", sync_to_thread=True)
    def on_a_thread(devices: Injected[DeviceService]) -> None:
        return None

    built(waits)
    built(on_a_thread)


def test_plain_values_may_be_taken_on_the_loop_and_a_stale_reason_is_refused():
    @get("/key")
    async def key(login_csrf_key: Injected[bytes]) -> None:
        return None

    @get("/devices", sync_to_thread=True, on_loop="no longer true")
    def stale(devices: Injected[DeviceService]) -> None:
        return None

    built(key)
    with pytest.raises(RuntimeError, match="runs on a worker thread, yet says on_loop"):
        built(stale)


def test_a_parameter_named_after_a_service_must_have_its_type():
    @get("/devices", sync_to_thread=True)
    def mistyped(devices: Injected[OfficerService]) -> None:
        return None

    with pytest.raises(RuntimeError, match="devices is a DeviceService, not"):
        built(mistyped)


def test_only_streaming_uploads_and_the_long_poll_run_on_the_loop(tmp_path):
    app = create_app(make_settings(tmp_path / "central"))
    on_loop, on_threads = set(), set()
    for route in app.routes:
        for handler in route.route_handlers if isinstance(route, HTTPRoute) else ():
            where = f"{'/'.join(sorted(handler.http_methods))} {route.path}"
            takes = set(handler.parsed_fn_signature.parameters) & {f.name for f in fields(AppServices)}
            if handler.opt.get("on_loop"):
                on_loop.add(where)
            elif takes - PLAIN_VALUES:
                on_threads.add(where)
                assert handler.sync_to_thread, where
    assert on_loop == {
        "POST /api/v1/uploads",
        "PATCH /api/v1/uploads/{upload_id:str}",
        "DELETE /api/v1/uploads/{upload_id:str}",
        "GET /api/v1/changes",
        "POST /api/v1/firmware/releases",  # the artifact streams to its staging file
    }
    assert {"POST /api/v1/events", "HEAD /api/v1/uploads/{upload_id:str}", "GET /", "GET /healthz"} <= on_threads


def test_plain_values_are_fields():
    assert {f.name for f in fields(AppServices)} >= PLAIN_VALUES


def test_nothing_but_the_providers_reads_app_state():
    readers = [
        f"{path.relative_to(CENTRAL)}:{n}"
        for path in sorted(CENTRAL.rglob("*.py"))
        if path.name != "providers.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bapp\.state\b", line)
    ]
    assert readers == [], "reach services through central.core.providers (a dependency, or services(app))"


def test_dependencies_are_resolved_in_turn_without_a_task_group(monkeypatch):
    """Litestar made a task group for every request whose handler has two independent dependencies
    (litestar#4563); in turn, each still gets what it depends on."""

    async def first() -> int:
        return 1

    def second() -> int:
        return 2

    def third(first: NamedDependency[int], second: NamedDependency[int]) -> int:
        return first + second

    @get("/sum")
    async def total(
        first: NamedDependency[int], second: NamedDependency[int], third: NamedDependency[int], request: Request
    ) -> dict:
        return {"sum": first + second + third}

    app = Litestar(
        [total],
        dependencies={
            "first": Provide(first),
            "second": Provide(second, sync_to_thread=False),
            "third": Provide(third, sync_to_thread=False),
        },
    )
    (route,) = [r for r in app.routes if isinstance(r, HTTPRoute) and r.path == "/sum"]
    assert max(len(batch) for _, model in route.route_handler_map.values() for batch in model.dependency_batches) == 2
    resolve_in_turn(app)

    def no_task_group():
        raise AssertionError("a task group was made to resolve dependencies")

    monkeypatch.setattr(kwargs_model, "create_task_group", no_task_group)
    with TestClient(app) as client:
        assert client.get("/sum").json() == {"sum": 6}


def test_every_route_of_central_resolves_its_dependencies_in_turn(tmp_path):
    app = create_app(make_settings(tmp_path / "central"))
    batches = [
        (route.path, len(batch))
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for _, model in route.route_handler_map.values()
        for batch in model.dependency_batches
    ]
    assert batches and all(size == 1 for _, size in batches), [b for b in batches if b[1] > 1]
