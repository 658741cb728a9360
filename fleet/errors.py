"""One error hierarchy for the whole system.

FleetError                      anything this system raises on purpose
├── ConfigError                 a config file or setting is wrong (start-up, CLI)
├── DockFolderError             a docked camera folder cannot be ingested (left in place)
├── DamagedCopyError            a station's sealed local copy fails authentication (never sent on)
├── TransferError               talking to central failed
│   ├── TransientTransferError  may succeed later: network, 5xx, 423, 429, 460, 503
│   └── PermanentTransferError  will never succeed as sent: other 4xx
└── ApiError                    a request central refuses; carries its HTTP status
    ├── BadRequest              400 malformed input
    ├── Unauthorized            401 missing or unknown token
    ├── Forbidden               403 known token, not allowed
    ├── NotFound                404 no such resource
    ├── Conflict                409 contradicting re-creation, a refused checkout, ...
    │   ├── OffsetMismatch      409 the client's Upload-Offset is not central's (ask HEAD)
    │   └── BatteryGateRefused  409 a pack unfit for a shift; a supervisor may hand it out with a reason
    ├── Gone                    410 expired or terminated upload
    │   └── CursorExpired       410 a changes cursor older than central's history
    ├── PreconditionFailed      412 unsupported tus version
    ├── PayloadTooLarge         413 over the configured size limits
    ├── UnsupportedMediaType    415 wrong Content-Type on a PATCH
    ├── RangeNotSatisfiable     416 bad Range on a download
    ├── Locked                  423 another PATCH holds the upload
    ├── TooManyRequests         429 come back after Retry-After (a client over its share, a login locked out)
    ├── ChecksumMismatch        460 chunk or whole-file checksum did not match
    ├── ServiceUnavailable      503 a part of central cannot serve now (e.g. its roll-out files are invalid)
    │   └── BlobStoreUnavailable  503 the blob store failed or stored other bytes; nothing counted, retry
    └── InsufficientStorage     507 central's disk is full
"""

from __future__ import annotations


class FleetError(Exception):
    """Base of every error this system raises on purpose."""


class ConfigError(FleetError):
    """A configuration file or value is invalid."""


class DockFolderError(FleetError):
    """A dock folder cannot be ingested; ``reason`` says why, for the status page."""

    def __init__(self, folder: str, reason: str) -> None:
        super().__init__(f"{folder}: {reason}")
        self.folder = folder
        self.reason = reason


class DamagedCopyError(FleetError):
    """A clip's sealed local copy at the station fails authentication: altered, corrupted or cut short."""

    def __init__(self, clip_id: str, reason: str) -> None:
        super().__init__(f"clip {clip_id} is damaged at the station: {reason}")
        self.clip_id = clip_id
        self.reason = reason


class TransferError(FleetError):
    """An exchange with central failed."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class TransientTransferError(TransferError):
    """Worth retrying later: the network, an overloaded or restarting central."""


class PermanentTransferError(TransferError):
    """Central refused the request for a reason a retry cannot fix."""


class ApiError(FleetError):
    """A request refused by central, with the HTTP status it maps to."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ApiError):
    """Malformed input (400)."""


class Unauthorized(ApiError):
    """Missing or unknown credentials (401)."""

    status_code, code = 401, "unauthorized"


class Forbidden(ApiError):
    """Authenticated but not allowed (403)."""

    status_code, code = 403, "forbidden"


class NotFound(ApiError):
    """No such resource (404)."""

    status_code, code = 404, "not_found"


class Conflict(ApiError):
    """The request contradicts the resource's current state (409)."""

    status_code, code = 409, "conflict"


class OffsetMismatch(Conflict):
    """The client's idea of the upload offset is stale; it should ask HEAD and resume (409)."""

    code = "offset_mismatch"


class BatteryGateRefused(Conflict):
    """The desk's battery gate refused a camera that a supervisor may still hand out, with a reason."""


class Gone(ApiError):
    """The upload expired or was terminated (410)."""

    status_code, code = 410, "gone"


class CursorExpired(Gone):
    """A changes cursor older than central's history; reload the snapshot (410)."""

    code = "cursor_expired"


class PreconditionFailed(ApiError):
    """Unsupported protocol version (412)."""

    status_code, code = 412, "precondition_failed"


class LengthRequired(ApiError):
    """A body whose length is not said up front where it must be (411)."""

    status_code, code = 411, "length_required"


class PayloadTooLarge(ApiError):
    """Over a configured size limit (413)."""

    status_code, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    """Wrong Content-Type (415)."""

    status_code, code = 415, "unsupported_media_type"


class RangeNotSatisfiable(ApiError):
    """A Range header outside the file (416)."""

    status_code, code = 416, "range_not_satisfiable"


class Locked(ApiError):
    """Another request is writing this upload (423)."""

    status_code, code = 423, "locked"


class TooManyRequests(ApiError):
    """Come back after ``Retry-After`` (429)."""

    status_code, code = 429, "too_many_requests"


class ChecksumMismatch(ApiError):
    """The bytes received do not match their declared checksum (460, tus checksum extension)."""

    status_code, code = 460, "checksum_mismatch"


class ServiceUnavailable(ApiError):
    """503: this part of central cannot answer until its operators fix something."""

    status_code, code = 503, "unavailable"


class BlobStoreUnavailable(ServiceUnavailable):
    """503: the blob store failed, or what it stored did not check out; nothing counted, so a retry is safe."""

    def __init__(self, message: str, *, retry_after_s: int = 30) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class InsufficientStorage(ApiError):
    """Central has no room to store the bytes (507); the client should retry later."""

    status_code, code = 507, "insufficient_storage"


# Statuses worth retrying: the request may succeed unchanged later.
TRANSIENT_STATUSES = frozenset({408, 423, 425, 429, 460, 500, 502, 503, 504, 507})


def transfer_error_for_status(status: int, message: str, retry_after: float | None = None) -> TransferError:
    """Classify an HTTP failure from central as transient or permanent."""
    cls = TransientTransferError if status in TRANSIENT_STATUSES else PermanentTransferError
    return cls(f"HTTP {status}: {message}", status=status, retry_after=retry_after)
