"""Wire types shared by stations and central, and the dock inbox formats (docs/contracts.md §3).

Wire types never forbid unknown fields and new fields go last with defaults, so an older
station keeps talking to a newer central (msgspec's schema-evolution rules).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from fleet.errors import BadRequest

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,checksum,termination,expiration"
TUS_CHECKSUM_ALGORITHMS = "sha1,sha256,crc32,crc32c"
CLIP_STATE_HEADER = "Fleet-Clip-State"
"""Response header on tus requests: ``receiving`` or ``verified`` (central recorded the clip)."""

# Patterns end in `$(?!\n)`: Python's `$` also matches before a final newline; ids must not.
Sha256Hex = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$(?!\n)", description="SHA-256, lowercase hex")]
AwareDatetime = Annotated[datetime, Meta(tz=True, description="RFC 3339 with a time zone")]
Serial = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$(?!\n)")]
_UNPRINTABLE = r"\x00-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2060\u2066-\u2069\ufeff"
"""Control characters, line and paragraph separators (a mail header refuses them as it does a line
feed), bidirectional marks, and the zero-width space, word joiner and BOM (invisible)."""
UNPRINTABLE = re.compile(f"[{_UNPRINTABLE}]")
"""Any one of those, in free text a person types that central keeps and shows (who, why)."""
_PRINTABLE_NAME = rf"^[^\s{_UNPRINTABLE}](?:[^{_UNPRINTABLE}]*[^\s{_UNPRINTABLE}])?$(?!\n)"
BoroughName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        pattern=_PRINTABLE_NAME,
    ),
]
"""A borough's name as config files and the registry give it: printable (a newline in a name
broke every alert digest to its destination), no bidirectional override nor invisible character
(a name shown reversed, or "Camden" and a zero-width space, would read as another borough's), no
space at either end."""
_MEANINGS = {
    _PRINTABLE_NAME: "a printable name (no line break, control character, bidirectional mark or invisible "
    "character; no space at either end)",
}


def readable(message: str) -> str:
    """A validation message with a pattern a person cannot read put in words (msgspec quotes the
    regular expression): "Expected `str` matching regex '^[^\\s…' - at `$.borough`" says
    "Expected a printable name (…) - at `$.borough`"."""
    for pattern, meaning in _MEANINGS.items():
        message = message.replace(f"`str` matching regex {pattern!r}", meaning)
    return message


Tag = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$(?!\n)")]
Quantity = Annotated[int, Meta(ge=0, le=2**62)]
"""A count or size a station reports: central stores it in a 64-bit SQLite integer, so a value past
that (a camera's ``device.json`` is written by whoever holds the camera) is refused where it is
decoded, never acknowledged and then failing every projection transaction that tries to apply it."""
ClipState = Literal["receiving", "verified"]
TransferState = Literal["queued", "uploading", "waiting", "verified", "failed"]


# -- dock inbox (docs/contracts.md §3) --


class Battery(Struct, kw_only=True):
    level_pct: Annotated[float, Meta(ge=0, le=100)]
    voltage_mv: Quantity | None = None
    temperature_c: Annotated[float, Meta(ge=-60, le=150)] | None = None
    cycle_count: Quantity | None = None
    full_charge_mah: Quantity | None = None
    design_mah: Annotated[int, Meta(gt=0, le=2**62)] | None = None


class UpdateReport(Struct, kw_only=True):
    """(Extension) ``device.json``'s ``update``: how the last update the station left in ``update/``
    went. Loosely typed on purpose: a report out of shape is ignored (never sent), it never makes
    the folder bad, since that would keep the camera's clips from being ingested."""

    deployment_id: int
    attempt: int
    ok: bool
    error: str | None = None


class DeviceInfo(Struct, kw_only=True):
    """``device.json``: the camera's identity and telemetry at docking."""

    serial: Serial
    model: str = ""
    firmware: str = ""
    docked_at: AwareDatetime | None = None
    battery: Battery | None = None
    storage_used_bytes: Quantity | None = None
    update: UpdateReport | None = None
    """(Extension) The outcome of the update found in ``update/`` at the last dock (docs/firmware.md)."""
    profile_sha256: str | None = None
    """(Extension) The SHA-256 of the settings the camera carries, as sorted compact JSON."""


class ClipSidecar(Struct, kw_only=True):
    """``clips/<name>.json``: metadata of one recording."""

    clip_id: uuid.UUID
    recorded_at: AwareDatetime
    duration_s: Annotated[float, Meta(ge=0)] = 0.0
    pre_record_s: Annotated[float, Meta(ge=0)] = 0.0
    tags: list[Tag] = []
    evidential: bool = False
    sha256: Sha256Hex | None = None


class IngestedEntry(Struct, kw_only=True):
    clip_id: str
    size: int
    sha256: str
    name: str = ""
    """The clip's file stem in ``clips/`` (fleet extension: lets an interrupted wipe finish)."""


class IngestedFile(Struct, kw_only=True):
    """``INGESTED.json``: written by the station once every clip is durably in its store."""

    station_id: str
    ingested_at: datetime
    clips: list[IngestedEntry]


UPDATE_FORMAT = "bwv-dock-update/1"


class ManifestFirmware(Struct, kw_only=True):
    model: str
    version: str
    sha256: Sha256Hex
    size: Quantity
    signature: str
    """The vendor's Ed25519 signature over the release statement (``fleet.firmware``), base64."""
    file: str = "firmware.bin"


class UpdateManifest(Struct, kw_only=True):
    """(Extension) ``update/manifest.json``: what the station asks a docked camera to apply, written
    last (docs/firmware.md, "The dock inbox: the update folder")."""

    format: str = UPDATE_FORMAT
    deployment_id: int
    serial: Serial
    attempt: int
    firmware: ManifestFirmware | None = None
    profile: dict[str, Any] | None = None


# -- tus Upload-Metadata -------------------------------------------------------------------


class UploadMetadata(Struct, kw_only=True, forbid_unknown_fields=False):
    """What a station declares about a clip when it creates its upload."""

    clip_id: uuid.UUID
    sha256: Sha256Hex
    device_serial: Serial
    recorded_at: AwareDatetime
    filename: Annotated[str, Meta(min_length=1, max_length=255)]
    evidential: bool = False
    tags: list[Tag] = []
    duration_s: Annotated[float, Meta(ge=0)] = 0.0
    pre_record_s: Annotated[float, Meta(ge=0, le=3600)] = 0.0
    """(Extension) The seconds at the clip's start recorded before the officer pressed record (the
    camera's pre-record buffer, from the dock sidecar)."""


_META_TYPES = {"evidential": bool, "duration_s": float, "pre_record_s": float, "tags": list}


def encode_upload_metadata(meta: UploadMetadata) -> str:
    """Encode as the tus ``Upload-Metadata`` header: ``key base64(value)`` pairs."""
    pairs = []
    for key, value in msgspec.to_builtins(meta).items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list):
            text = ",".join(value)
        else:
            text = str(value)
        pairs.append(f"{key} {base64.b64encode(text.encode()).decode()}")
    return ",".join(pairs)


def parse_upload_metadata_header(header: str) -> dict[str, str]:
    """Split a tus ``Upload-Metadata`` header into text values; BadRequest when malformed."""
    values: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, encoded = pair.partition(" ")
        if not key or " " in encoded.strip() or key in values:
            raise BadRequest(f"Upload-Metadata: malformed pair {pair[:40]!r}")
        try:
            values[key] = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, ValueError):  # ValueError: non-ASCII base64
            raise BadRequest(f"Upload-Metadata: value of {key!r} is not base64 UTF-8") from None
    return values


def decode_upload_metadata(header: str) -> UploadMetadata:
    """Parse and validate ``Upload-Metadata`` into an UploadMetadata; BadRequest explains why not."""
    raw: dict[str, object] = dict(parse_upload_metadata_header(header))
    for key, kind in _META_TYPES.items():
        if key not in raw:
            continue
        text = str(raw[key])
        if kind is bool:
            if text not in ("true", "false"):
                raise BadRequest(f"Upload-Metadata: {key} must be 'true' or 'false'")
            raw[key] = text == "true"
        elif kind is float:
            try:
                raw[key] = float(text)
            except ValueError:
                raise BadRequest(f"Upload-Metadata: {key} must be a number") from None
        else:
            raw[key] = [t for t in text.split(",") if t]
    try:
        return msgspec.convert(raw, UploadMetadata, strict=False)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"Upload-Metadata: {exc}") from None


# -- central's clip API (docs/contracts.md §5) --


class ClipInfo(Struct, kw_only=True):
    clip_id: str
    sha256: str
    size: int
    state: ClipState
    station_id: str | None
    device_serial: str
    recorded_at: datetime
    filename: str
    evidential: bool = False
    tags: list[str] = []
    duration_s: float = 0.0
    verified_at: datetime | None = None
    pre_record_s: float = 0.0
    """(Extension) The first seconds, recorded before the officer pressed record (the camera's buffer)."""


class ClipPage(Struct, kw_only=True):
    items: list[ClipInfo]
    next_cursor: str | None = None
    """Pass as ``cursor`` to get the next page; ``null`` on the last page."""


class ErrorBody(Struct, kw_only=True):
    """The one JSON shape of every error central answers."""

    status: int
    error: str
    message: str
    details: list[dict[str, str]] | None = None


class Load(Struct, kw_only=True):
    """What central is carrying now, and how often it said "later" since it started."""

    in_flight: dict[str, int]
    """Requests being served, per lane (uploads, events, other)."""
    refused_503: int
    """Turned away because a lane was full."""
    refused_429: int
    """Turned away because one client held its share of a lane."""


class Health(Struct, kw_only=True):
    status: Literal["ok"]
    version: str
    load: Load | None = None
    leading: bool | None = None
    """This central process runs the jobs that run once (one replica at a time: docs/deployment.md)."""


# -- station status (docs/contracts.md §4) --


class FailedFolder(Struct, kw_only=True):
    folder: str
    reason: str
    first_seen_at: datetime
    last_seen_at: datetime


class ClipTransfer(Struct, kw_only=True):
    clip_id: str
    state: TransferState
    size: int
    evidential: bool
    recorded_at: datetime
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    uploaded_bytes: int = 0


class OfferStatus(Struct, kw_only=True):
    """A deployment's offer to one of the station's cameras, not handed over yet, and why."""

    serial: str
    deployment_id: int
    attempt: int
    update: str
    """What it brings: ``firmware <model> <version>`` or ``profile``."""
    waiting: str


class ArtifactStatus(Struct, kw_only=True):
    sha256: str
    release_id: int
    size: int
    state: Literal["verified", "failed"]
    verified_at: datetime | None = None
    failures: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    unused_since: datetime | None = None
    """No offer names it since then: deleted a day later."""


class FirmwareStatus(Struct, kw_only=True):
    """(Extension) Deployments at the station (docs/firmware.md)."""

    offers: list[OfferStatus] = []
    artifacts: list[ArtifactStatus] = []
    """Artifacts kept (verified) or failing (nothing kept but a resumable part)."""
    last_failure: str | None = None
    last_failure_at: datetime | None = None


class StationStatus(Struct, kw_only=True):
    station_id: str
    borough: str
    pending_clips: int
    pending_bytes: int
    verified_clips: int
    failed_folders: list[FailedFolder]
    last_sync_ok_at: datetime | None
    clips_by_state: dict[str, int] = {}
    failed_clips: list[ClipTransfer] = []
    waiting_clips: list[ClipTransfer] = []
    local_copies: int = 0
    local_bytes: int = 0
    oldest_pending_recorded_at: datetime | None = None
    pending_events: int = 0
    """Events in the outbox central has not acknowledged yet."""
    acked_event_seq: int = 0
    checked_out: int = 0
    feed_cursor: int = 0
    mirrored: dict[str, int] = {}
    """Officers, devices and personal issues mirrored from central for the desk."""
    problems: list[str] = []
    """What keeps this station from ingesting now, one line each: a disk below its reserve, a
    database it cannot write, folders waiting for room."""
    upload_window: str | None = None
    """When routine clips may use the link (e.g. ``19:00-07:00 Europe/London``); None: any time."""
    upload_window_open: bool = True
    bandwidth_limit_mbps: float = 0.0
    """The station's upload cap; 0: none."""
    firmware: FirmwareStatus = msgspec.field(default_factory=FirmwareStatus)
