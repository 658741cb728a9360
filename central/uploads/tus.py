"""tus 1.0.0 endpoints under /api/v1/uploads/ (docs/sync-protocol.md): HTTP in, receiver out."""

from __future__ import annotations

from email.utils import format_datetime
from typing import Annotated

from litestar import Controller, Request, Response, delete, head, patch, post, route
from litestar.params import PathParameter

from central.access.auth import Caller, station_or_user_with
from central.access.scope import OWN_RECORDS, in_path, touches
from central.core.directbody import direct_body
from central.core.openapi import empty, errors
from central.core.providers import Injected
from central.uploads.receiver import Checksum, UploadReceiver
from central.uploads.records import Upload
from fleet.config import CentralSettings
from fleet.errors import BadRequest, LengthRequired, PayloadTooLarge, PreconditionFailed, UnsupportedMediaType
from fleet.protocol import (
    CLIP_STATE_HEADER,
    TUS_CHECKSUM_ALGORITHMS,
    TUS_EXTENSIONS,
    TUS_VERSION,
)

CREATION_BODY_MAX_BYTES = 64 << 20
"""The most a creation-with-upload may carry (the station sends small clips whole this way;
larger ones go in PATCH chunks). Streamed to the .part file like a PATCH, never held."""

MAX_HEADER_DIGITS = 20
"""Upload-Length and Upload-Offset: 2**64 has 20 digits; any length is far below."""

STREAMS = "the body streams to the receiver, which writes and commits on threads of its own"
"""Why the creation and PATCH handlers are async (``central.core.providers``)."""

UploadId = Annotated[
    str, PathParameter(pattern=r"^[0-9a-f]{32}$", description="the id in the Location of the creation response")
]


def _require_tus(request: Request) -> None:
    version = request.headers.get("tus-resumable")
    if version != TUS_VERSION:
        raise PreconditionFailed(
            f"Tus-Resumable must be {TUS_VERSION} (got {version!r})", headers={"Tus-Version": TUS_VERSION}
        )


def _int_header(request: Request, name: str) -> int:
    raw = request.headers.get(name)
    if raw is None:
        raise BadRequest(f"{name} header is required")
    text = raw.strip()
    # ASCII digits only: headers are read as Latin-1, and str.isdigit() also takes '²' (b"\xb2"),
    # which int() refuses; and int() refuses more than 4300 digits. Both were 500s.
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_HEADER_DIGITS:
        raise BadRequest(
            f"{name} must be a non-negative integer of at most {MAX_HEADER_DIGITS} digits (got {raw[:40]!r})"
        )
    return int(text)


def _upload_checksum(request: Request) -> Checksum | None:
    """Check the type of the bytes a PATCH, or a creation-with-upload, carries; parse their Upload-Checksum."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip() != "application/offset+octet-stream":
        raise UnsupportedMediaType("upload bytes need Content-Type: application/offset+octet-stream")
    raw_checksum = request.headers.get("upload-checksum")
    return Checksum.parse(raw_checksum) if raw_checksum is not None else None


def _state_headers(upload: Upload) -> dict[str, str]:
    headers = {
        "Tus-Resumable": TUS_VERSION,
        "Upload-Offset": str(upload.offset),
        "Upload-Length": str(upload.length),
        CLIP_STATE_HEADER: upload.state,
        "Cache-Control": "no-store",
    }
    if not upload.verified and upload.expires_at is not None:
        headers["Upload-Expires"] = format_datetime(upload.expires_at, usegmt=True)
    return headers


class UploadController(Controller):
    """Stations upload their clips; of the users, only admins may (a manual upload of a recovered clip)."""

    path = "/api/v1/uploads"
    tags = ["uploads (tus 1.0.0)"]
    guards = [station_or_user_with("admin")]

    # Litestar registers a controller's handlers in name order and adds its own OPTIONS
    # handler to a path that has none yet: this one must sort before ``create``.
    @route(
        "/",
        http_method=["OPTIONS"],
        status_code=204,
        summary="tus discovery",
        responses={204: empty("Tus-Version, Tus-Extension, Tus-Max-Size and Tus-Checksum-Algorithm")},
        scope=OWN_RECORDS,
    )
    async def capabilities(self, principal: Caller, settings: Injected[CentralSettings]) -> Response[None]:
        return Response(
            content=None,
            status_code=204,
            headers={
                "Tus-Resumable": TUS_VERSION,
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": TUS_EXTENSIONS,
                "Tus-Max-Size": str(settings.max_upload_bytes),
                "Tus-Checksum-Algorithm": TUS_CHECKSUM_ALGORITHMS,
            },
        )

    @post(
        "/",
        status_code=201,
        request_max_body_size=CREATION_BODY_MAX_BYTES,
        summary="Create an upload (idempotent by clip_id), optionally with its first bytes",
        description="tus creation-with-upload: a body (Content-Type: application/offset+octet-stream, "
        "optional Upload-Checksum) is appended at offset 0, as a PATCH would; a small clip is "
        "created and verified in one request. For an upload that already holds bytes the body "
        "is ignored: Upload-Offset says where to PATCH from.",
        responses={
            201: empty("Created: Location names the upload, Upload-Offset counts the bytes taken"),
            200: empty("The clip's upload exists already: Location and Upload-Offset say where it stands"),
            **errors(400, 409, 411, 412, 413, 415, 423, 460, 503, 507),
        },
        scope=OWN_RECORDS,
        on_loop=STREAMS,
    )
    async def create(self, request: Request, principal: Caller, receiver: Injected[UploadReceiver]) -> Response[None]:
        _require_tus(request)
        if request.headers.get("upload-defer-length"):
            raise BadRequest("Upload-Defer-Length is not supported: send Upload-Length")
        length = _int_header(request, "Upload-Length")
        raw_metadata = request.headers.get("upload-metadata")
        if not raw_metadata:
            raise BadRequest("Upload-Metadata is required (clip_id, sha256, device_serial, recorded_at, filename)")
        if request.headers.get("content-length") is None and request.headers.get("transfer-encoding"):
            # A creation is all or nothing: its body's length must be known before anything is made.
            raise LengthRequired("a creation-with-upload needs Content-Length (or PATCH the bytes after creating)")
        body_bytes = int(request.headers.get("content-length") or 0)
        if body_bytes > length:  # refused before anything is made: a creation is all or nothing
            raise PayloadTooLarge(f"a body of {body_bytes} bytes is more than Upload-Length {length}")
        checksum = _upload_checksum(request) if body_bytes else None
        upload, created = await receiver.create_with_body(
            principal,
            length,
            raw_metadata,
            checksum,
            request.stream() if body_bytes else None,
            whole=body_bytes == length,
        )
        return Response(
            content=None,
            status_code=201 if created else 200,
            headers={
                **_state_headers(upload),
                "Location": f"/api/v1/uploads/{upload.upload_id}",
            },
        )

    @head(
        "/{upload_id:str}",
        summary="Where an upload stands",
        responses={200: empty("Upload-Offset, Upload-Length and Upload-Metadata"), **errors(412)},
        scope=touches(in_path("upload", "upload_id")),
        sync_to_thread=True,
    )
    def status(
        self, request: Request, principal: Caller, receiver: Injected[UploadReceiver], upload_id: UploadId
    ) -> Response[None]:
        _require_tus(request)
        upload = receiver.get(upload_id)
        return Response(
            content=None, status_code=200, headers={**_state_headers(upload), "Upload-Metadata": upload.metadata}
        )

    @patch(
        "/{upload_id:str}",
        status_code=204,
        request_max_body_size=None,
        summary="Append bytes at Upload-Offset, optionally with Upload-Checksum",
        responses={
            204: empty("Appended: Upload-Offset is the new offset"),
            **errors(400, 409, 410, 412, 413, 415, 423, 460, 503, 507),
        },
        scope=touches(in_path("upload", "upload_id")),
        on_loop=STREAMS,
    )
    async def append(
        self, request: Request, principal: Caller, receiver: Injected[UploadReceiver], upload_id: UploadId
    ) -> Response[None]:
        _require_tus(request)
        checksum = _upload_checksum(request)
        offset = _int_header(request, "Upload-Offset")
        upload = await receiver.append(
            principal, upload_id, offset, checksum, request.stream(), direct=direct_body(request.scope)
        )
        return Response(content=None, status_code=204, headers=_state_headers(upload))

    @delete(
        "/{upload_id:str}",
        status_code=204,
        summary="Terminate an unfinished upload",
        responses={204: empty("Terminated"), **errors(409, 412, 423)},
        scope=touches(in_path("upload", "upload_id")),
        on_loop="it holds the upload's lock (an asyncio lock) while the upload is forgotten on a worker thread",
    )
    async def terminate(
        self, request: Request, principal: Caller, receiver: Injected[UploadReceiver], upload_id: UploadId
    ) -> Response[None]:
        _require_tus(request)
        await receiver.terminate(principal, upload_id)
        return Response(content=None, status_code=204, headers={"Tus-Resumable": TUS_VERSION})
