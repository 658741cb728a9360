"""A blob central holds without a record (a restore, a crash before the commit) is taken back only
for the station that reported the clip's ingest: another station's token that knows the clip's id
and SHA-256 (disclosure packages, custody reports) neither claims nor replaces it."""

import hashlib
import logging
import os
import uuid

from central.core.providers import services
from fleet.protocol import CLIP_STATE_HEADER
from tests.central.conftest import ADMIN, BARNET, CAMDEN, KENTISH, TUS, create, metadata
from tests.central.fleetdata import ingested, post


def orphan(client, tmp_path, data: bytes) -> str:
    """A clip's bytes in the blob store, with no upload or clip record (as after a restore)."""
    clip_id = str(uuid.uuid4())
    source = tmp_path / "orphan"
    source.write_bytes(data)
    services(client.app).blobs.put(source, clip_id, hashlib.sha256(data).hexdigest())
    return clip_id


def stored(client, clip_id: str) -> bytes:
    return b"".join(services(client.app).blobs.read(clip_id))


def whole(client, data: bytes, clip_id: str, headers, declared: bytes | None = None):
    """A creation carrying the whole clip (``declared``: the bytes its metadata names)."""
    return client.post(
        "/api/v1/uploads/",
        content=data,
        headers={
            **headers,
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": metadata(declared if declared is not None else data, clip_id),
            "Content-Type": "application/offset+octet-stream",
        },
    )


def test_another_boroughs_station_neither_claims_nor_replaces_a_blob_without_a_record(client, blob, tmp_path):
    clip_id = orphan(client, tmp_path, blob)
    r = create(client, blob, headers=BARNET, clip_id=clip_id)  # its id, SHA-256 and size, as published
    assert r.status_code == 423 and r.json()["error"] == "locked"
    r = whole(client, bytes(len(blob)), clip_id, BARNET)  # its own bytes under the clip's id
    assert r.status_code == 423
    r = whole(client, b"shorter", clip_id, BARNET)
    assert r.status_code == 409
    assert stored(client, clip_id) == blob  # the evidence is as it was
    assert client.get(f"/api/v1/clips/{clip_id}", headers=ADMIN).status_code == 404  # no record for Barnet

    # Camden reports the ingest (its outbox resends it after the restore), then asks: taken back.
    post(client, CAMDEN, [ingested("BWV-000123", 1, clip_id=clip_id, data=blob)])
    r = create(client, blob, headers=CAMDEN, clip_id=clip_id)
    assert r.status_code == 201 and r.headers[CLIP_STATE_HEADER] == "verified"
    clip = client.get(f"/api/v1/clips/{clip_id}", headers=ADMIN).json()
    assert clip["station_id"] == "camden"
    custody = client.get(f"/api/v1/clips/{clip_id}/custody", headers=ADMIN).json()
    assert [c["action"] for c in custody][:2] == ["ingest", "upload-verified"]


def test_a_station_reporting_other_bytes_for_a_blob_gets_it_hashed_once(client, blob, tmp_path, caplog):
    clip_id = orphan(client, tmp_path, blob)
    lie = bytes(len(blob))
    post(client, BARNET, [ingested("BWV-900001", 1, clip_id=clip_id, data=lie)])
    with caplog.at_level(logging.WARNING, logger="central.uploads.receiver"):
        for _ in range(3):
            r = create(client, lie, headers=BARNET, clip_id=clip_id)
            assert r.status_code == 409 and r.json()["error"] == "conflict"
    hashed = [m for m in caplog.messages if "holds other bytes" in m]
    assert len(hashed) == 1
    assert stored(client, clip_id) == blob


def test_a_held_clip_whose_commit_fails_after_its_blob_is_stored_is_taken_back_for_its_station(
    client, tmp_path, monkeypatch
):
    """The database refuses the one commit of a small clip whole in its creation, after its blob is
    stored: the answer is a 5xx with nothing left in the uploads folder and no record; once the
    station has reported the clip's ingest, its retry takes the blob back."""
    import sqlite3

    data = os.urandom(20_000)
    clip_id = str(uuid.uuid4())
    receiver = services(client.app).receiver

    def refused(*args, **kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(receiver.uploads, "record_stored_upload", refused)
    r = whole(client, data, clip_id, CAMDEN)
    assert 500 <= r.status_code < 600 and r.headers.get("content-type", "").startswith("application/json")
    assert stored(client, clip_id) == data and not list(receiver.dir.glob("*.part"))
    assert client.get(f"/api/v1/clips/{clip_id}", headers=ADMIN).status_code == 404
    monkeypatch.undo()

    assert whole(client, data, clip_id, CAMDEN).status_code == 423  # no ingest reported yet
    post(client, CAMDEN, [ingested("BWV-000123", 1, clip_id=clip_id, data=data)])
    r = whole(client, data, clip_id, CAMDEN)
    assert r.status_code == 201 and r.headers[CLIP_STATE_HEADER] == "verified"
    assert client.get(f"/api/v1/clips/{clip_id}", headers=ADMIN).json()["station_id"] == "camden"


def test_a_station_whose_report_is_acknowledged_but_not_yet_applied_is_asked_again_in_seconds(
    client, blob, tmp_path, monkeypatch
):
    """A replica killed between storing a whole clip and its commit: the station's retry meets the
    blob before its report of the clip is applied (the projection's leader replaced, say). It is
    told to come back in 5 s, not 60; a station with nothing on its way, in a minute."""
    clip_id = orphan(client, tmp_path, blob)
    events = services(client.app).events
    apply_pending = events.apply_pending
    monkeypatch.setattr(events, "apply_pending", lambda limit=2000: 0)  # acknowledged, not applied
    post(client, CAMDEN, [ingested("BWV-000123", 1, clip_id=clip_id, data=blob)])
    r = whole(client, blob, clip_id, CAMDEN)
    assert r.status_code == 423 and r.headers["Retry-After"] == "5", r.text
    assert "this station's latest reports are being applied" in r.json()["message"]
    r = whole(client, blob, clip_id, KENTISH)  # nothing of Kentish's on its way
    assert r.status_code == 423 and r.headers["Retry-After"] == "60"
    monkeypatch.setattr(events, "apply_pending", apply_pending)
    events.apply_all()
    r = whole(client, blob, clip_id, CAMDEN)
    assert r.status_code == 201 and r.headers[CLIP_STATE_HEADER] == "verified"
