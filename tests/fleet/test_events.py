"""The events batch: one wire type, decoded or left as bytes, and the kinds read off its union."""

import typing
from datetime import UTC, datetime, timedelta

import msgspec

from fleet.events import (
    EVENT_KINDS,
    BadFolder,
    CheckedOut,
    ClipVerified,
    Event,
    EventBatch,
    EventEnvelope,
    RawEventBatch,
    RawEventEnvelope,
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
