"""Central's app for a test, built once and started again on each test's own folder and database.

Building central's app (its ~280 routes' signatures, dependencies and handler maps) takes most
of a second on these hosts, starting it a fifth: about half the time of the suite's central tests
was building apps. An app's lifespan opens everything central keeps from ``providers.settings_of(app)``
(``central.core.app.create_app``), so an app whose lifespan has ended serves the next test's
settings as a new one would. What ``create_app`` reads of the settings itself, outside the
lifespan, is ``settings.limits`` (its admission's lanes): apps are kept by those. Its metrics
object lives as long as the app, so a test that reads counters from zero builds its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar, overload

import msgspec
from litestar import Litestar
from litestar.testing import TestClient

from central.core.app import create_app
from fleet.config import CentralSettings

ClientT = TypeVar("ClientT", bound=TestClient)

_FREE: dict[bytes, list[Litestar]] = {}
"""Apps not serving a test now, by the limits they were built with."""


def _shape(settings: CentralSettings) -> bytes:
    return msgspec.json.encode(settings.limits)


@contextmanager
def app_for(settings: CentralSettings) -> Iterator[Litestar]:
    """An app of ``settings``' shape, not started, whose lifespan opens ``settings``."""
    free = _FREE.setdefault(_shape(settings), [])
    app = free.pop() if free else _built(settings)
    app.state.settings = settings
    try:
        yield app
    finally:
        if not app.state.serving:  # a server that did not stop keeps its app
            free.append(app)


@overload
def central_client(settings: CentralSettings, **options: Any) -> AbstractContextManager[TestClient]: ...
@overload
def central_client(
    settings: CentralSettings, client: type[ClientT], **options: Any
) -> AbstractContextManager[ClientT]: ...
def central_client(settings: CentralSettings, client: type = TestClient, **options: Any) -> AbstractContextManager:
    """A test client (``client``, with ``options``) started on an app of ``settings`` (``app_for``)."""
    return _started(settings, client, options)


@contextmanager
def _started(settings: CentralSettings, client: type, options: dict[str, Any]) -> Iterator[Any]:
    with app_for(settings) as app, client(app, **options) as started:
        yield started


def _built(settings: CentralSettings) -> Litestar:
    app = create_app(settings)
    app.state.serving = False

    def started() -> None:
        app.state.serving = True

    def stopped() -> None:  # after the lifespan has closed all it opened
        app.state.serving = False

    app.on_startup.append(started)
    app.on_shutdown.append(stopped)
    return app
