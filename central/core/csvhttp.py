"""CSV over HTTP, one way for every spreadsheet route: officers, devices, assignments, roll-out."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
from litestar import Request, Response
from litestar.di import Provide

from central.core.openapi import errors
from fleet import csvio
from fleet.errors import BadRequest, UnsupportedMediaType

CSV = "text/csv"
"""The media type of every CSV route (Litestar adds "; charset=utf-8" to a text type itself)."""
IMPORT_ERRORS = errors(400, 413, 415)
"""What an import can refuse: a bad row (the message names its line), too big, not text/csv."""


def csv_body(what: str) -> dict[str, Provide]:
    """A CSV import's ``dependencies``: ``csv``, the request's body as text, read on the event
    loop before the handler runs on its worker thread (where it parses); a wrong type is 415,
    bad UTF-8 400 (``what`` names the rows in the message, e.g. "cameras")."""

    async def provide_csv(request: Request) -> str:
        if "csv" not in (request.headers.get("content-type") or "text/csv"):
            raise UnsupportedMediaType(f"send the {what} as text/csv")
        try:
            return (await request.body()).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BadRequest("the CSV is not UTF-8 text") from None

    return {"csv": Provide(provide_csv)}


def csv_response(rows: Iterable[msgspec.Struct], kind: type[msgspec.Struct], filename: str) -> Response:
    return Response(
        csvio.write_csv(rows, kind),
        media_type=CSV,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
