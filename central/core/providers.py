"""How handlers reach central's services, and the one rule for the event loop.

Typed dependencies
    The lifespan keeps one ``AppServices`` (``central.core.services``) on the app, and
    ``services(app)`` is the one place that reads it. Each of its fields is a Litestar
    dependency of the same name: a handler declares what it uses, with its type
    (``devices: Injected[DeviceService]``), and receives it. Guards, exception handlers and tests, which
    Litestar does not inject, call ``services(app)``.

Off the event loop
    - A handler that touches the database (or the blob store) is a plain ``def`` declared with
      ``sync_to_thread=True``: Litestar calls it on a worker thread (anyio's pool), so no query,
      fsync or wait for the writer's lock ever stalls the loop, and it calls its services
      directly. SQLite allows it: the writer is one connection behind a lock and every thread
      reads on its own connection (``fleet.sqlite.Writer``).
    - What such a handler needs awaited from the request arrives as a dependency, read on the
      loop before the handler runs: the raw body (``body: RawBody``), a dashboard form (``form``,
      its CSRF token checked), a CSV upload (``central.core.csvhttp.csv_body``).
    - ``async def`` only where the handler has to await while it works: an upload's body
      streaming to disk (tus), a long poll (the changes feed), or the upload receiver's
      per-upload locks, which live on the loop. Such a handler names its reason in its
      decorator (``on_loop="..."``), and the service it calls does its own thread hops
      (``UploadReceiver``, ``ChangeLog.wait_page``).
    - Guards run on the loop for every request, so they stay ``async`` and take a worker
      thread only for what they read from the database (a session, a user's API token, the
      borough of what a request names).

``check_handlers`` makes ``create_app`` refuse a handler that takes a service on the event
loop without saying why, or a parameter named after a service with another type.

Dependencies in turn
    Litestar resolves a handler's independent dependencies (``principal`` and a service) together
    in an anyio task group, made and joined on every request (litestar issue #4563). Ours are a
    getattr each and the principal, which awaits at most one thread hop: nothing gains from
    running at once, and the task group was ~7 % of central's event loop on small uploads.
    ``resolve_in_turn`` has them resolved one after the other, in the same dependency order.
"""

from __future__ import annotations

import typing
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from litestar import Litestar, Request
from litestar.di import NamedDependency, Provide
from litestar.params import SkipValidation
from litestar.routes import HTTPRoute

if TYPE_CHECKING:
    from central.core.services import AppServices
    from fleet.config import CentralSettings

T = TypeVar("T")

Injected: TypeAlias = NamedDependency[SkipValidation[T]]
"""A handler's parameter ``devices: Injected[DeviceService]`` receives the dependency of its
name. Litestar does not check it on every request: ``check_handlers`` checks the type once."""


def settings_of(app: Litestar) -> CentralSettings:
    """The settings the app's lifespan opens (``create_app`` sets them; a test may set others of
    the same shape before a start: ``tests/central/apps.py``)."""
    return app.state.settings


def services(app: Litestar) -> AppServices:
    """The app's services (once its lifespan has opened them)."""
    return app.state.services


def keep(app: Litestar, opened: AppServices) -> None:
    """The lifespan hands over what it opened."""
    app.state.services = opened


def started(app: Litestar) -> AppServices | None:
    """The services while the app is serving, else None (e.g. a signal before start-up finished)."""
    return app.state.get("services")


def dependencies() -> dict[str, Provide]:
    """Every field of ``AppServices`` as the dependency of its name."""
    from central.core.services import AppServices

    return {f.name: Provide(_provider(f.name), sync_to_thread=False) for f in fields(AppServices)}


def _provider(name: str):
    def provide(request: Request) -> Any:
        return getattr(services(request.app), name)

    provide.__name__ = provide.__qualname__ = f"provide_{name}"
    return provide


def resolve_in_turn(app: Litestar) -> None:
    """Every route's dependencies resolved one after the other (see "Dependencies in turn").

    Litestar orders a handler's dependencies in batches, each needing only those of the batches
    before it; one dependency to a batch, in that order, keeps every need met. Litestar runs a
    batch of one without a task group."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for _handler, model in route.route_handler_map.values():
            model.dependency_batches = [{dependency} for batch in model.dependency_batches for dependency in batch]


def check_handlers(app: Litestar) -> None:
    """Refuse to build an app whose handlers break the typed wiring or the event-loop rule."""
    from central.core.services import PLAIN_VALUES, AppServices

    types = typing.get_type_hints(AppServices)
    problems = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            where = f"{'/'.join(sorted(handler.http_methods))} {route.path}"
            parameters = handler.parsed_fn_signature.parameters
            taken = [name for name in parameters if name in types]
            problems += [
                f"{where}: {name} is a {types[name].__name__}, not {parameters[name].annotation!r}"
                for name in taken
                if parameters[name].annotation is not types[name]
            ]
            blocking = [name for name in taken if name not in PLAIN_VALUES]
            on_loop = handler.opt.get("on_loop")
            if handler.sync_to_thread and on_loop:
                problems.append(f"{where}: runs on a worker thread, yet says on_loop={on_loop!r}")
            elif blocking and not handler.sync_to_thread and not on_loop:
                problems.append(
                    f"{where}: takes {', '.join(blocking)} on the event loop: make it a def with "
                    "sync_to_thread=True, or say why it must be async with on_loop="
                )
    if problems:
        raise RuntimeError("handlers against the wiring rules (central.core.providers):\n  " + "\n  ".join(problems))
