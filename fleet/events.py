"""Wire types of the two-way sync: the station's event outbox (up) and central's changes feed (down).

Up: every state change that matters at a station is an event written in the same SQLite
transaction as the change, numbered by a per-station sequence. Central stores events by
(station, seq) and acknowledges the highest gap-free seq once durably stored (it applies
them later, in seq order: ``applied_seq``); the station resends from there. Ordering never
relies on clocks: ``at`` is the station's clock, kept as information (and for attribution),
never as an order.

Down: central's changes a station needs (its borough's officers, device registry entries,
personal-issue assignments, config) carry a global cursor. A station applies a page of
changes and the new cursor in one transaction; a cursor older than central's history is
answered 410 ``cursor_expired`` and the station reloads a full snapshot.

Like every wire type, these never forbid unknown fields; new fields go last with defaults.
"""

from __future__ import annotations

import typing
from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from msgspec import Meta, Raw, Struct

from fleet.battery import HealthPolicy
from fleet.firmware import Model, Sha256, Version
from fleet.protocol import AwareDatetime, DeviceInfo, Quantity, Serial, Sha256Hex, Tag

OfficerId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=32,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9/_.-]*$(?!\n)",
        description="shoulder or warrant number",
    ),
]
OfficerRole = Literal["neighbourhood", "response", "armed", "other"]
AssignmentMode = Literal["personal", "pool"]
Seq = Annotated[int, Meta(ge=1, le=2**62)]
"""A station's event number (fits SQLite's 64-bit integers with room to spare)."""
MAX_EVENTS_PER_BATCH = 5000

# -- events: station → central ---------------------------------------------------------------


class CameraDocked(Struct, tag_field="kind", tag="camera_docked", kw_only=True):
    """A camera was docked and its folder ingested: its full ``device.json`` telemetry."""

    device: DeviceInfo
    folder: str
    clip_count: Quantity = 0


ClipId = Annotated[str, Meta(min_length=1, max_length=128)]
"""A clip's id as a station reports it (a UUID from the camera's sidecar, or the station's own);
bounded, as every key central indexes must be."""


class ClipIngested(Struct, tag_field="kind", tag="clip_ingested", kw_only=True):
    clip_id: ClipId
    device_serial: Serial
    recorded_at: AwareDatetime
    size: Quantity
    sha256: Sha256Hex
    evidential: bool = False
    tags: list[Tag] = []
    duration_s: Annotated[float, Meta(ge=0)] = 0.0


class ClipVerified(Struct, tag_field="kind", tag="clip_verified", kw_only=True):
    """Central answered "verified" for this clip (the station may now purge it after grace)."""

    clip_id: ClipId


class CheckedOut(Struct, tag_field="kind", tag="checked_out", kw_only=True):
    """A pool camera handed to an officer for a shift, at this station's desk."""

    device_serial: Serial
    officer_id: OfficerId
    battery_pct: Annotated[float, Meta(ge=0, le=100)] | None = None
    by: str = ""
    """Who handed it out (the station operator), for the audit trail."""
    override: Annotated[str, Meta(max_length=500)] | None = None
    """Why a camera the battery gate refused (won't last a shift, over temperature, due for
    replacement) was handed out anyway: a supervisor's reason, audited at central."""


class CheckedIn(Struct, tag_field="kind", tag="checked_in", kw_only=True):
    device_serial: Serial
    officer_id: OfficerId
    reason: Literal["docked", "manual"] = "manual"
    by: str = ""


class BadFolder(Struct, tag_field="kind", tag="bad_folder", kw_only=True):
    folder: str
    reason: str


class ClipDamaged(Struct, tag_field="kind", tag="clip_damaged", kw_only=True):
    """(Extension) The station's sealed copy of a clip failed authentication: it was not sent and
    is failed at the station. Central records it in the clip's chain of custody."""

    clip_id: ClipId
    reason: Annotated[str, Meta(max_length=500)]


RowId = Annotated[int, Meta(ge=1, le=2**62)]
DeploymentId = RowId
Attempt = Annotated[int, Meta(ge=1, le=1000)]
"""Which attempt at a camera's update: 1 + the camera's failures in the deployment so far."""


class CameraUpdateOffered(Struct, tag_field="kind", tag="camera_update_offered", kw_only=True):
    """(Extension) The station wrote a deployment's update into a docked camera's folder
    (``update/manifest.json``, docs/firmware.md)."""

    serial: Serial
    deployment_id: DeploymentId
    attempt: Attempt
    at: AwareDatetime | None = None
    """When it was written, by the station's clock (None: the envelope's ``at``, which is the same)."""


class CameraUpdateResult(Struct, tag_field="kind", tag="camera_update_result", kw_only=True):
    """(Extension) A camera reported the outcome of an update in its ``device.json``."""

    serial: Serial
    deployment_id: DeploymentId
    attempt: Attempt
    ok: bool
    version: Annotated[str, Meta(max_length=64)] | None = None
    """The firmware the camera reports after the attempt (unchanged when it failed)."""
    error: Annotated[str, Meta(max_length=500)] | None = None
    """The camera's reason for a failure."""
    at: AwareDatetime | None = None
    """When the station read the report, by its clock (None: the envelope's ``at``)."""


Event = (
    CameraDocked
    | ClipIngested
    | ClipVerified
    | CheckedOut
    | CheckedIn
    | BadFolder
    | ClipDamaged
    | CameraUpdateOffered
    | CameraUpdateResult
)


def kind_of(item: Struct) -> str:
    """The ``kind`` an event (or a change item) goes by on the wire: its Struct tag."""
    return _tag(type(item))


def _tag(kind: type[Struct]) -> str:
    return str(kind.__struct_config__.tag)


EVENT_KINDS = tuple(_tag(member) for member in typing.get_args(Event))
"""Every event kind this program knows, read off the union (a kind outside it is a newer station's)."""

EventT = TypeVar("EventT")
"""What an envelope carries: an ``Event`` decoded, or its ``Raw`` bytes (``RawEventBatch``)."""


class EventEnvelope(Struct, Generic[EventT], kw_only=True):
    seq: Seq
    at: AwareDatetime
    """The station's clock when the event happened (information, never the order)."""
    event: EventT


Count = Annotated[int, Meta(ge=0, le=2**62)]


class Backlog(Struct, kw_only=True):
    """What a station still holds, reported with every batch (the dashboard's sync lag)."""

    pending_clips: Count = 0
    pending_bytes: Count = 0
    oldest_pending_recorded_at: AwareDatetime | None = None
    failed_clips: Count = 0
    failed_folders: Count = 0
    checked_out: Count = 0


class EventBatch(Struct, Generic[EventT], kw_only=True):
    """``POST /api/v1/events``: events in seq order (an empty batch is a heartbeat).

    ``EventBatch[Event]`` with each event decoded, ``RawEventBatch`` with each left as its bytes."""

    sent_at: AwareDatetime
    events: Annotated[list[EventEnvelope[EventT]], Meta(max_length=MAX_EVENTS_PER_BATCH)] = []
    backlog: Backlog | None = None


RawEventEnvelope = EventEnvelope[Raw]
RawEventBatch = EventBatch[Raw]
"""The same batch with each event left as its bytes: the station sends its outbox's bytes as
they were written, and a receiver decodes each event on its own, so one event of a kind it
does not know (from a newer station) or cannot decode fails alone, and both sides' logs hold
the same bytes. On the wire it is ``EventBatch[Event]``, byte for byte."""


class EventAck(Struct, kw_only=True):
    acked_seq: int
    """Every event up to here is durably stored (applied later, in seq order); resend from ``acked_seq + 1``."""
    stored: int = 0
    """Events of this batch that were new to central."""
    duplicates: int = 0


# -- changes: central → station --------------------------------------------------------------


class Officer(Struct, kw_only=True, tag_field="kind", tag="officer"):
    """Minimal personal data: an id, where they work, and what kind of duty."""

    officer_id: OfficerId
    borough: Annotated[str, Meta(min_length=1, max_length=64)]
    team: Annotated[str, Meta(max_length=64)] = ""
    role: OfficerRole = "other"
    name: Annotated[str, Meta(max_length=128)] = ""
    active: bool = True


class DeviceEntry(Struct, kw_only=True, tag_field="kind", tag="device"):
    """A camera's registry entry: what a station needs to decide a checkout."""

    serial: Serial
    model: str = ""
    lifecycle: str = "in_stock"
    borough: str | None = None
    home_station: str | None = None
    assignment_mode: AssignmentMode | None = None
    """None: the borough's policy decides."""


class PersonalIssue(Struct, kw_only=True, tag_field="kind", tag="personal_issue"):
    """A camera personally issued to an officer (``officer_id`` None: no longer issued)."""

    device_serial: Serial
    officer_id: OfficerId | None
    since: datetime


class StationPolicy(Struct, kw_only=True, tag_field="kind", tag="policy"):
    """Central's settings for the stations of a borough."""

    assignment_mode: AssignmentMode = "pool"
    min_checkout_pct: Annotated[float, Meta(ge=0, le=100)] = 80.0
    recharge_hours: Annotated[float, Meta(gt=0)] = 9.0
    shift_hours: Annotated[float, Meta(gt=0)] = 10.0
    rated_runtime_hours: Annotated[float, Meta(gt=0)] = 12.0
    replace_below_soh_pct: Annotated[float, Meta(gt=0, le=100)] = 80.0
    over_temperature_c: float = 45.0
    """The battery gate's thresholds (``fleet.battery``), as central's ``[fleet]`` sets them."""

    def health(self) -> HealthPolicy:
        return HealthPolicy(
            replace_below_soh_pct=self.replace_below_soh_pct,
            shift_hours=self.shift_hours,
            rated_runtime_hours=self.rated_runtime_hours,
            over_temperature_c=self.over_temperature_c,
        )


class ClipHold(Struct, kw_only=True, tag_field="kind", tag="clip_hold"):
    """A clip that must not be deleted anywhere (``held`` False: no hold applies any more)."""

    clip_id: Annotated[str, Meta(min_length=1, max_length=64)]
    held: bool = True


class CameraUpdateRelease(Struct, kw_only=True):
    """The firmware a ``camera_update`` offers: what the station downloads
    (``GET /api/v1/firmware/releases/{id}/artifact``) and checks before a camera is given it."""

    id: RowId
    model: Model
    version: Version
    sha256: Sha256
    size: Quantity
    signature: Annotated[str, Meta(max_length=200)]
    """The vendor's Ed25519 signature over the release statement, base64 (``fleet.firmware``)."""


ProfileValue = int | float | str | bool
Percent = Annotated[float, Meta(ge=0, le=100)]


class CameraUpdate(Struct, kw_only=True, tag_field="kind", tag="camera_update"):
    """A deployment's offer to one camera: firmware (``release``) or settings (``profile``).

    ``active`` False withdraws the offer (the deployment paused or was aborted; the camera was
    updated, gave up or left the target). A station keeps at most one offer per camera: a newer
    deployment's item replaces an older one's (docs/firmware.md)."""

    serial: Serial
    deployment_id: DeploymentId
    active: bool = True
    release: CameraUpdateRelease | None = None
    """None: a profile deployment."""
    profile: Annotated[dict[str, ProfileValue], Meta(max_length=64)] | None = None
    """The camera's whole effective profile (``fleet.profiles.CameraSettings``'s fields), for a
    profile deployment; kept as a mapping so a station passes a newer central's settings on unchanged."""
    min_charge_pct: Percent = 50.0
    max_temperature_c: Annotated[float, Meta(ge=-50, le=150)] = 40.0
    attempt: Attempt = 1
    """The attempt the station should make next."""


ChangeItem = Officer | DeviceEntry | PersonalIssue | StationPolicy | ClipHold | CameraUpdate


class Change(Struct, kw_only=True):
    cursor: int
    item: ChangeItem


class ChangePage(Struct, kw_only=True):
    """``GET /api/v1/changes?since=N``: changes after N, oldest first."""

    changes: list[Change]
    cursor: int
    """Pass as ``since`` next time; apply it in the same transaction as the changes."""
    more: bool = False


class Snapshot(Struct, kw_only=True):
    """``GET /api/v1/changes/snapshot``: everything a station mirrors, as of ``cursor``."""

    cursor: int
    officers: list[Officer]
    devices: list[DeviceEntry]
    personal_issues: list[PersonalIssue]
    policy: StationPolicy
    held_clips: list[str] = []
    """Clips of the borough's stations that a hold protects."""
    camera_updates: list[CameraUpdate] = []
    """The offers now active for the borough's cameras (``active`` True each)."""
