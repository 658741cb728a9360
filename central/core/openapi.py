"""What central's OpenAPI document says beyond what Litestar infers: auth and the errors.

Litestar documents each route's success and, where a route validates input, a 400 in its
own exception shape. Central answers every error in one shape (``fleet.protocol.ErrorBody``,
docs/contracts.md §5) and needs a bearer token on every route but ``/healthz``, so ``describe(app)``
completes each operation once, before the document is first built (lazily, on request):

- a route that takes the caller (``principal``) needs the bearer token: 401 and 403;
- a route with parameters or a body: 400; with a path parameter: 404 (no such thing); with
  a JSON body: 413 (over the request size limit);
- a route admission control may refuse (``central.core.admission.lane_of``: all but ``/healthz``
  and ``/metrics``):
  429 and 503, with Retry-After;
- whatever else a route can answer (409, 415, ...) its decorator declares with ``errors()``,
  and a success without a body (tus) with ``empty()``.
"""

from __future__ import annotations

from http import HTTPStatus

from litestar import Litestar
from litestar.constants import RESERVED_KWARGS
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.routes import HTTPRoute

from central.core.admission import lane_of
from fleet import __version__
from fleet.protocol import ErrorBody

BEARER = "bearer"

_MEANING = {
    400: "Bad input: the message says what; details name the fields",
    401: "No bearer token, or one central does not know",
    403: "The token is known but may not do this",
    404: "No such thing",
    409: "Conflicts with the current state: the message says what",
    410: "Gone: deleted, purged or expired",
    412: "Tus-Resumable is missing or not 1.0.0",
    413: "The body is over the size limit",
    415: "Wrong Content-Type",
    416: "The Range is not within the clip",
    423: "Another request is writing this upload: retry after Retry-After",
    429: "This caller holds its share of central already: retry after Retry-After",
    460: "The chunk does not match Upload-Checksum (tus checksum extension)",
    503: "Unavailable for now (overloaded, a store unreachable, ...): the message says why; retry after "
    "Retry-After when it is given",
    507: "Central's disk is full",
}


def errors(*codes: int) -> dict[int, ResponseSpec]:
    """Error answers for a route's ``responses=``, all in the one shape."""
    return {
        code: ResponseSpec(
            data_container=ErrorBody, generate_examples=False, description=_MEANING.get(code) or HTTPStatus(code).phrase
        )
        for code in codes
    }


def empty(description: str) -> ResponseSpec:
    """A success answered with headers only (tus), documented without a body."""
    return ResponseSpec(data_container=None, description=description)


def config() -> OpenAPIConfig:
    """The document as JSON and YAML, no viewer: Litestar's viewers (Swagger UI, ReDoc, ...)
    load their scripts from public CDNs, which central's pages must never run."""
    return OpenAPIConfig(
        title="Body-worn video fleet: central",
        version=__version__,
        render_plugins=[YamlRenderPlugin(), JsonRenderPlugin()],
        components=Components(
            security_schemes={
                BEARER: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="A station's token, a user's API token, or the admin token",
                )
            }
        ),
    )


def describe(app: Litestar) -> None:
    """Declare auth and the common errors on every documented operation (see the module doc).

    Litestar has no app-wide ``responses`` (and app-wide ``security`` would cover /healthz too),
    so this fills in each registered handler's own: call it on a new app, before anything builds
    the document."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if handler.resolve_include_in_schema():
                _describe(
                    handler,
                    has_path_parameters=bool(route.path_parameters),
                    admitted=any(lane_of(method, route.path) is not None for method in handler.http_methods),
                )


def _describe(handler: HTTPRouteHandler, *, has_path_parameters: bool, admitted: bool) -> None:
    caller = {"principal", "within"}  # dependencies that resolve the caller: the route needs a token
    parameters = set(handler.parsed_fn_signature.parameters)
    # What the request gives (path, query, data): neither dependencies (the caller, services, a
    # form read for the handler) nor the connection and raw body that Litestar hands over as is.
    inputs = parameters - set(handler.resolve_dependencies()) - (RESERVED_KWARGS - {"data"})
    authenticated = bool(caller & parameters)
    codes = (
        [400] * bool(inputs)
        + [401, 403] * authenticated
        + [404] * has_path_parameters
        + [413] * ("data" in inputs)
        + [429, 503] * admitted
    )
    handler.responses = {**errors(*codes), **(handler.responses or {})}
    if authenticated:
        handler.security = [*(handler.security or []), {BEARER: []}]
