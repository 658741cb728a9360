"""A small in-memory tus server for station unit tests (httpx.MockTransport).

It implements just enough of docs/sync-protocol.md to exercise the uploader's decisions;
the real central is exercised in tests/e2e and tests/central.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable

import httpx

from fleet.hashing import new_checksum
from fleet.protocol import CLIP_STATE_HEADER, parse_upload_metadata_header


class FakeTus:
    def __init__(self, *, plain: bool = False, creation_with_upload: bool = False) -> None:
        self.plain = plain
        """Answer like a plain tus server: no Fleet-Clip-State header, ever."""
        self.creation_with_upload = creation_with_upload
        """Offer (OPTIONS) and take bytes in the creation request; else OPTIONS is a 404 as on a bare server."""
        self.uploads: dict[str, dict] = {}
        self.by_clip: dict[str, str] = {}
        self.requests: list[tuple[str, str]] = []
        self.patched_bytes = 0
        self.checksums: list[str] = []
        self.fault: Callable[[httpx.Request], httpx.Response | None] | None = None

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(lambda request: self.handle(request))

    def verified(self) -> dict[str, bytes]:
        return {u["clip_id"]: bytes(u["data"]) for u in self.uploads.values() if u["verified"]}

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        if self.fault and (response := self.fault(request)) is not None:
            return response
        upload_id = request.url.path.rsplit("/", 1)[-1]
        if request.method == "OPTIONS" and self.creation_with_upload:
            return httpx.Response(
                204, headers={"Tus-Version": "1.0.0", "Tus-Extension": "creation,creation-with-upload"}
            )
        if request.method == "POST":
            meta = parse_upload_metadata_header(request.headers["Upload-Metadata"])
            existing = self.by_clip.get(meta["clip_id"])
            if existing:
                return self._state(201 if False else 200, self.uploads[existing], location=existing)
            upload_id = uuid.uuid4().hex
            self.uploads[upload_id] = {
                "clip_id": meta["clip_id"],
                "sha256": meta["sha256"],
                "length": int(request.headers["Upload-Length"]),
                "data": bytearray(),
                "verified": False,
            }
            self.by_clip[meta["clip_id"]] = upload_id
            body = request.read()
            if body and self.creation_with_upload:
                return self._append(request, self.uploads[upload_id], body, 201, location=upload_id)
            return self._state(201, self.uploads[upload_id], location=upload_id)
        upload = self.uploads.get(upload_id)
        if upload is None:
            return httpx.Response(404, json={"status": 404, "error": "not_found", "message": "no such upload"})
        if request.method == "HEAD":
            return self._state(200, upload)
        if int(request.headers["Upload-Offset"]) != len(upload["data"]):
            return httpx.Response(409, json={"status": 409, "error": "offset_mismatch", "message": "offset"})
        return self._append(request, upload, request.read(), 204)

    def _append(
        self, request: httpx.Request, upload: dict, body: bytes, status: int, location: str | None = None
    ) -> httpx.Response:
        header = request.headers.get("Upload-Checksum", "sha256 ")
        self.checksums.append(header)
        algorithm, _, encoded = header.partition(" ")
        digest = new_checksum(algorithm)
        digest.update(body)
        if encoded and base64.b64decode(encoded) != digest.digest():
            return httpx.Response(460, json={"status": 460, "error": "checksum_mismatch", "message": "chunk"})
        upload["data"] += body
        self.patched_bytes += len(body)
        if len(upload["data"]) == upload["length"] and not upload["verified"]:
            if hashlib.sha256(upload["data"]).hexdigest() != upload["sha256"]:
                upload["data"] = bytearray()
                return httpx.Response(460, json={"status": 460, "error": "checksum_mismatch", "message": "whole"})
            upload["verified"] = True
        return self._state(status, upload, location=location)

    def _state(self, status: int, upload: dict, location: str | None = None) -> httpx.Response:
        headers = {"Upload-Offset": str(len(upload["data"])), "Tus-Resumable": "1.0.0"}
        if not self.plain:
            headers[CLIP_STATE_HEADER] = "verified" if upload["verified"] else "receiving"
        if location:
            headers["Location"] = f"/api/v1/uploads/{location}"
        return httpx.Response(status, headers=headers)
