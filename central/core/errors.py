"""One JSON error shape for every failure central answers (fleet.protocol.ErrorBody).

Domain errors carry their status (fleet.errors.ApiError); Litestar's own exceptions
(validation, unknown route, wrong method, body too large) are mapped to the same shape;
anything unexpected is logged and answered 500 with a generic message.
"""

from __future__ import annotations

import logging
import re
import sqlite3

import msgspec
import psycopg
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from central.core import database
from central.core.providers import services
from fleet.errors import ApiError, InsufficientStorage
from fleet.protocol import TUS_VERSION, ErrorBody, readable

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    431: "request_header_fields_too_large",
    500: "internal_error",
    503: "unavailable",
    507: "insufficient_storage",
}


SECRET_IN_PATH = re.compile(r"^(/shared/)[^/]+")
"""A share link's secret is its path (``central.evidence.shares``): never written to a log."""


def logged_path(request: Request) -> str:
    """The request's path as logs may keep it: a share link's secret masked."""
    return SECRET_IN_PATH.sub(r"\1…", request.url.path)


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = ErrorBody(status=status, error=code, message=message, details=details)
    return Response(
        content=msgspec.json.encode(body),
        status_code=status,
        media_type="application/json",
        headers={"Tus-Resumable": TUS_VERSION, **(headers or {})},
    )


def storage_full_headers(request: Request) -> dict[str, str]:
    """How long a client should wait when central's disk is full: an operator has to act ([limits])."""
    return {"Retry-After": str(services(request.app).settings.limits.storage_full_retry_after_s)}


def handle_api_error(request: Request, exc: ApiError) -> Response:
    headers = exc.headers
    if isinstance(exc, InsufficientStorage) and "Retry-After" not in headers:
        headers = {**headers, **storage_full_headers(request)}
    return error_response(exc.status_code, exc.code, exc.message, headers=headers)


def handle_http_exception(request: Request, exc: HTTPException) -> Response:
    details = None
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        details = [{k: readable(str(v)) for k, v in item.items()} for item in exc.extra if isinstance(item, dict)]
    message = exc.detail or CODES.get(exc.status_code, "error")
    if details:
        message = f"{message}: " + "; ".join(f"{d.get('key', '')} {d.get('message', '')}".strip() for d in details)
    headers = dict(exc.headers or {})
    return error_response(exc.status_code, CODES.get(exc.status_code, "error"), message, details, headers)


def handle_database_error(request: Request, exc: Exception) -> Response:
    """A full disk (507), a database busy past its timeout or out of reach (503) is "later", not a server fault."""
    condition = database.trouble(exc)
    if condition == "full":
        log.error("central's disk is full: %s %s refused with 507", request.method, logged_path(request))
        return error_response(
            507,
            "insufficient_storage",
            "central's storage is full; try again later",
            headers=storage_full_headers(request),
        )
    if condition == "busy":
        log.warning("central's database is busy: %s %s refused with 503", request.method, logged_path(request))
        return error_response(
            503, "unavailable", "central's database is busy; try again later", headers={"Retry-After": "5"}
        )
    if condition == "broken" and not isinstance(exc, sqlite3.Error):  # PostgreSQL out of reach (SQLite's: a fault)
        log.error(
            "central's database is out of reach: %s %s refused with 503 (%s)", request.method, logged_path(request), exc
        )
        return error_response(
            503, "unavailable", "central's database is out of reach; try again later", headers={"Retry-After": "5"}
        )
    return handle_unexpected(request, exc)


def handle_bad_value(request: Request, exc: Exception) -> Response:
    """A value PostgreSQL cannot store or compare (a NUL character, a number past its range): bad
    input, as SQLite would have found nothing (404) or stored it; never a server fault."""
    log.info("%s %s: a value the database refuses: %s", request.method, logged_path(request), exc)
    return error_response(400, "bad_request", "a value in the request cannot be stored or looked up")


def handle_recursion(request: Request, exc: RecursionError) -> Response:
    """msgspec answers JSON nested deeper than the interpreter's recursion limit with a
    RecursionError, not a DecodeError: that is bad input (400), whichever route decoded it."""
    if "while deserializing" in str(exc):
        return error_response(400, "bad_request", "the JSON body is nested too deeply")
    return handle_unexpected(request, exc)


def handle_unexpected(request: Request, exc: Exception) -> Response:
    # Litestar calls exception handlers inside its ``except`` block: the traceback is logged.
    log.exception("unhandled error on %s %s", request.method, logged_path(request))  # noqa: LOG004
    return error_response(500, "internal_error", "internal error; the details are in central's log")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ApiError: handle_api_error,
    HTTPException: handle_http_exception,
    sqlite3.OperationalError: handle_database_error,
    psycopg.OperationalError: handle_database_error,
    psycopg.InterfaceError: handle_database_error,
    psycopg.errors.InternalError_: handle_database_error,
    psycopg.DataError: handle_bad_value,
    RecursionError: handle_recursion,
    Exception: handle_unexpected,
}
