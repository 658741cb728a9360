"""The station's link to central: one HTTP client, its TLS checked (``fleet.tls``), and a
refused certificate turned into one line of the station's status.

Every worker (uploads, events, the changes feed) goes through ``CentralTransport``: a
handshake that fails on central's certificate is recorded in the station's database, so
``fleet station status`` says why nothing moves, and cleared by the next answer central gives.
"""

from __future__ import annotations

import ipaddress
import logging
import sqlite3
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from fleet import tls
from fleet.config import StationSettings

log = logging.getLogger(__name__)

Report = Callable[[str | None], None]


class CentralTransport(httpx.HTTPTransport):
    """httpx's transport with the station's TLS context; a refusal of central's certificate
    is reported (once per change) and raised as a ConnectError saying why in words."""

    def __init__(self, settings: StationSettings, report: Report | None = None, **kwargs) -> None:
        super().__init__(verify=tls.client_context(settings.tls), **kwargs)
        self._url = settings.central_url
        self._tls = settings.tls
        self._report = report
        self._last: object = object()  # nothing said yet: the first outcome is always reported

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = super().handle_request(request)
        except httpx.ConnectError as exc:
            why = tls.refusal(exc, self._url, self._tls)
            if why is None:
                raise
            self._say(why)
            raise httpx.ConnectError(why, request=request) from exc
        self._say(None)
        return response

    def _say(self, problem: str | None) -> None:
        if problem == self._last or self._report is None:
            return
        self._last = problem
        if problem is not None:
            log.error("%s", problem)
        try:
            self._report(problem)
        except sqlite3.Error as exc:  # the status line is lost, not the request
            log.warning("could not record the link's state: %s", exc)


def build_client(settings: StationSettings, report: Report | None = None) -> httpx.Client:
    """The one HTTP client to central: bearer token, timeouts, connection pool per upload slot."""
    return httpx.Client(
        base_url=settings.central_url,
        headers={"Authorization": f"Bearer {settings.token}", "User-Agent": f"fleet-station/{settings.station_id}"},
        timeout=httpx.Timeout(settings.request_timeout_s),
        transport=CentralTransport(
            settings, report, limits=httpx.Limits(max_connections=settings.concurrent_uploads + 2)
        ),
    )


def plain_http_problem(central_url: str) -> str | None:
    """A warning when footage and tokens would cross a network in clear (loopback is this machine)."""
    parts = urlsplit(central_url)
    if parts.scheme != "http":
        return None
    host = parts.hostname or ""
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return (
        f"central_url {central_url} is plain http:// to another machine: footage and the station's "
        "token cross the network in clear; use https:// and [tls] (SECURITY.md)"
    )
