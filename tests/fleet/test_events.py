"""The events batch: one wire type, decoded or left as bytes, and the kinds read off its union."""

import typing
from datetime import UTC, datetime, timedelta

import msgspec

from fleet.events import (
    EVENT_KINDS,
    BadFolder,
    CameraUpdate,
    CameraUpdateOffered,
    CameraUpdateResult,
    ChangeItem,
    CheckedOut,
    ClipVerified,
    Event,
    EventBatch,
    EventEnvelope,
    RawEventBatch,
    RawEventEnvelope,
    Snapshot,
    kind_of,
)

AT = datetime(2026, 11, 20, 14, 0, 0, 123456, tzinfo=UTC)
EVENTS = [
    ClipVerified(clip_id="c1"),
    CheckedOut(device_serial="BWV-1", officer_id="PC1", battery_pct=91.5, by="sgt"),
    BadFolder(folder="cam 2", reason="no DOCKED"),
]


def test_the_kinds_on_the_wire_stay_the_same():
    """Stored events are told apart by these names on both sides: renaming one orphans them."""
    assert EVENT_KINDS == (
        "camera_docked",
        "clip_ingested",
        "clip_verified",
        "checked_out",
        "checked_in",
        "bad_folder",
        "clip_damaged",
        "camera_update_offered",
        "camera_update_result",
    )
    assert len(set(EVENT_KINDS)) == len(typing.get_args(Event))
    assert [kind_of(e) for e in EVENTS] == ["clip_verified", "checked_out", "bad_folder"]


def test_a_batch_of_raw_events_is_the_decoded_batch_byte_for_byte():
    """The station sends each event's bytes as its outbox holds them; central may decode either form."""
    typed = EventBatch(
        sent_at=AT,
        events=[EventEnvelope(seq=n, at=AT + timedelta(seconds=n), event=e) for n, e in enumerate(EVENTS, start=1)],
    )
    raw = RawEventBatch(
        sent_at=AT,
        events=[
            RawEventEnvelope(seq=n, at=AT + timedelta(seconds=n), event=msgspec.Raw(msgspec.json.encode(e)))
            for n, e in enumerate(EVENTS, start=1)
        ],
    )
    body = msgspec.json.encode(raw)
    assert body == msgspec.json.encode(typed)
    assert msgspec.json.decode(body, type=EventBatch[Event]) == typed
    assert msgspec.json.encode(msgspec.json.decode(body, type=RawEventBatch)) == body


def test_the_deployments_wire_shapes_are_the_contracts():
    """docs/firmware.md's examples decode as written, and encode back to the same keys."""
    item = msgspec.json.decode(
        b'{"kind": "camera_update", "serial": "BWV-000123", "deployment_id": 12, "active": true,'
        b' "release": {"id": 7, "model": "Axon Body 2", "version": "1.4.3", "sha256": "' + b"a" * 64 + b'",'
        b' "size": 1048576, "signature": "c2ln"}, "profile": null,'
        b' "min_charge_pct": 50.0, "max_temperature_c": 40.0, "attempt": 1}',
        type=ChangeItem,
    )
    assert isinstance(item, CameraUpdate) and item.release is not None and item.release.version == "1.4.3"
    assert set(msgspec.to_builtins(item)) == {
        "kind", "serial", "deployment_id", "active", "release", "profile", "min_charge_pct",
        "max_temperature_c", "attempt",
    }  # fmt: skip
    profile = msgspec.json.decode(
        b'{"kind": "camera_update", "serial": "BWV-1", "deployment_id": 3, "active": false, "release": null,'
        b' "profile": {"pre_record_s": 60, "mount": "head", "audio": true}, "attempt": 2}',
        type=ChangeItem,
    )
    assert isinstance(profile, CameraUpdate) and profile.profile == {"pre_record_s": 60, "mount": "head", "audio": True}
    offered, result = msgspec.json.decode(
        b'[{"kind": "camera_update_offered", "serial": "BWV-1", "deployment_id": 3, "attempt": 1,'
        b' "at": "2026-11-20T14:00:00Z"},'
        b' {"kind": "camera_update_result", "serial": "BWV-1", "deployment_id": 3, "attempt": 1, "ok": false,'
        b' "version": "1.4.2", "error": "flash verify failed", "at": "2026-11-20T18:00:00Z"}]',
        type=list[Event],
    )
    assert isinstance(offered, CameraUpdateOffered) and offered.attempt == 1
    assert isinstance(result, CameraUpdateResult) and not result.ok and result.error == "flash verify failed"
    assert msgspec.json.decode(b'{"cursor": 1, "officers": [], "devices": [], "personal_issues": [], "policy": {}}',
                               type=Snapshot).camera_updates == []  # fmt: skip
