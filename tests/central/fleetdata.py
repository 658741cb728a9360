"""Building station event batches for central's tests (what a station's outbox would send)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta

import msgspec

from central.core.providers import services
from fleet.events import CameraDocked, CheckedIn, CheckedOut, ClipIngested, EventBatch, EventEnvelope
from fleet.protocol import Battery, DeviceInfo
from tests.station.conftest import RECORDED

T0 = RECORDED


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def docked(
    serial: str,
    hours: float = 0,
    *,
    clips: int = 0,
    level: float = 90,
    full: int = 2900,
    design: int = 3000,
    temp: float = 30.0,
    cycles: int = 100,
    firmware: str = "1.4.2",
) -> CameraDocked:
    return CameraDocked(
        device=DeviceInfo(
            serial=serial,
            model="Axon Body 2",
            firmware=firmware,
            docked_at=at(hours),
            battery=Battery(
                level_pct=level, temperature_c=temp, cycle_count=cycles, full_charge_mah=full, design_mah=design
            ),
        ),
        folder=f"{serial}-{hours}",
        clip_count=clips,
    )


def ingested(
    serial: str,
    recorded_hours: float,
    clip_id: str | None = None,
    data: bytes | None = None,
) -> ClipIngested:
    """``data``: the clip's bytes, so that the ingest's size and SHA-256 agree with its upload."""
    return ClipIngested(
        clip_id=clip_id or str(uuid.uuid4()),
        device_serial=serial,
        recorded_at=at(recorded_hours),
        size=len(data) if data is not None else 100,
        sha256=hashlib.sha256(data).hexdigest() if data is not None else "0" * 64,
    )


def out(serial: str, officer: str) -> CheckedOut:
    return CheckedOut(device_serial=serial, officer_id=officer, battery_pct=95, by="desk")


def back(serial: str, officer: str) -> CheckedIn:
    return CheckedIn(device_serial=serial, officer_id=officer, reason="manual", by="desk")


def batch(events, first_seq: int = 1, *, hours: list[float] | None = None) -> bytes:
    """Events numbered from ``first_seq``; ``hours`` gives each one's station time (default: T0 + seq h)."""
    envelopes = [
        EventEnvelope(seq=first_seq + i, at=at(hours[i] if hours else first_seq + i), event=e)
        for i, e in enumerate(events)
    ]
    # Sent after its last event happened, as a station does (central measures the clock skew from it).
    return msgspec.json.encode(EventBatch(sent_at=max((e.at for e in envelopes), default=at(0)), events=envelopes))


def post(client, headers, events, first_seq: int = 1, **kw):
    """Send a batch, then apply what was acknowledged (as the projection worker does shortly after)."""
    response = client.post(
        "/api/v1/events/",
        content=batch(events, first_seq, **kw),
        headers={**headers, "Content-Type": "application/json"},
    )
    services(client.app).events.apply_all()
    return response
