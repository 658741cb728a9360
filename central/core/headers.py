"""The security headers on every answer central gives (pages, API, errors, static files).

One ``before_send`` hook on the app, so an answer no route produced (404, 405, an error
before routing) carries them too:

- a Content-Security-Policy that lets pages load script, style, images and forms from
  central only and nothing inline (the templates have no inline script or style: the
  stylesheets are static files), that no other site may frame;
- ``nosniff``, ``no-referrer`` (a URL with a clip id or a case reference stays here);
- ``Cache-Control: no-store`` on everything but the static files and the routes marked
  ``CACHEABLE``: pages and API answers name officers and cameras, and clip content is
  footage; none of it belongs in a browser's or a proxy's cache.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

STATIC_PATH = "/static"
CACHEABLE = "cacheable"
"""A route handler's ``opt`` key: its answers are the same for every caller and may be cached as
it says (its own ``Cache-Control``; no-store when it sets none). Only ``central.access.scope``
sets it, on the routes declared public."""

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


async def add_security_headers(message: Message, scope: Scope) -> None:
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    # The names present, read once: setting a header scans and decodes every other one, and an
    # answer rarely carries one of these already (a small clip's upload paid 1 % of central's loop).
    present = {name.lower() for name, _ in headers.headers}
    for name, value in HEADERS.items():
        put(headers, present, name, value)
    if scope["path"].startswith(STATIC_PATH + "/"):
        return
    handler = scope.get("route_handler")
    if handler is None or not handler.opt.get(CACHEABLE) or b"cache-control" not in present:
        put(headers, present, "Cache-Control", "no-store")


def put(headers: MutableScopeHeaders, present: set[bytes], name: str, value: str) -> None:
    """Set ``name`` to ``value``, replacing any the answer has (``present``: its names, lower case)."""
    if name.lower().encode("latin-1") in present:
        headers[name] = value
    else:
        headers.add(name, value)
