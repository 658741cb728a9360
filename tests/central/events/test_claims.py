"""A station speaks only for its own cameras and clips: what it claims is checked against what central knows.

A refused event is acknowledged (the station's outbox moves on), recorded against the station
and shown as a security alert, and changes nothing: no fleet state, no chain of custody.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import re
import uuid
from datetime import timedelta

import msgspec
import pytest

from central.core.providers import services
from central.events.projection import Applied, merged_runs
from central.evidence import audit
from central.registry import attribution, devices
from central.uploads import records as upload_records
from fleet.clock import from_iso
from fleet.events import BadFolder, ClipDamaged, ClipIngested, ClipVerified, EventBatch, EventEnvelope
from fleet.protocol import UploadMetadata, encode_upload_metadata
from tests.central.apps import central_client
from tests.central.conftest import ADMIN, BARNET, CAMDEN, KENTISH, TUS, checksum, make_settings, patch
from tests.central.evidence.test_clips import upload
from tests.central.fleetdata import at, back, batch, docked, ingested, out, post
from tests.support.s3server import s3_settings


@pytest.fixture(params=["disk", "s3"])
def blob_client(request, tmp_path):
    """A central whose clips go to its own disk, or to an S3 bucket (moto), a new clip's staged there."""
    extra = {"blobs": s3_settings()} if request.param == "s3" else {}
    with central_client(make_settings(tmp_path / "central", **extra), raise_server_exceptions=False) as c:
        yield c


def refusals(client, station: str | None = None) -> list[tuple[str, int, str, str]]:
    """(station, seq, kind, reason) of every refusal, oldest first."""
    with services(client.app).store.writer.read() as db:
        rows = db.execute("SELECT station_id, seq, kind, reason FROM station_refusals ORDER BY id").fetchall()
    return [tuple(r) for r in rows if station is None or r[0] == station]


def custody(client, clip_id: str) -> list[tuple[str, str]]:
    r = client.get(f"/api/v1/clips/{clip_id}/custody", headers=ADMIN)
    return [] if r.status_code == 404 else [(c["action"], c["place"]) for c in r.json()]


def chain_places(client, clip_id: str) -> set[str]:
    with services(client.app).store.writer.read() as db:
        rows = db.execute("SELECT place FROM audit WHERE object_type = 'clip' AND object_id = ?", [clip_id]).fetchall()
    return {r[0] for r in rows}


def chain_intact(client) -> bool:
    return audit.verify_database(services(client.app).store.writer).intact


def upload_metadata(clip, sha256: str | None = None) -> UploadMetadata:
    """The Upload-Metadata of the clip a station reported (its id and recording time); its SHA-256, or
    ``sha256`` (other bytes under its id)."""
    return UploadMetadata(
        clip_id=uuid.UUID(clip.clip_id),
        sha256=sha256 or clip.sha256,
        device_serial=clip.device_serial,
        recorded_at=clip.recorded_at,
        filename="c.mp4",
    )


def upload_reported(client, clip, data: bytes, headers=CAMDEN) -> None:
    """Upload the clip a station reported (same id, SHA-256 and recording time)."""
    meta = upload_metadata(clip)
    r = client.post(
        "/api/v1/uploads/",
        headers={**headers, **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": encode_upload_metadata(meta)},
    )
    patch(client, r.headers["Location"], 0, data, headers=headers)


def owner(client, clip_id: str):
    return client.get(f"/api/v1/clips/{clip_id}/attribution", headers=ADMIN).json()["officer_id"]


def holder_intervals(client, serial: str) -> list[tuple[str, str | None]]:
    return [
        (a["officer_id"], a["ended_at"])
        for a in client.get("/api/v1/assignments", params={"device_serial": serial}, headers=ADMIN).json()
    ]


# -- clips: a station reports the ingest of clips it uploads --------------------------------------


def test_a_forged_ingest_of_another_stations_verified_clip_is_refused(client):
    data = os.urandom(3000)
    clip_id = upload(client, data, hours=2)
    post(client, CAMDEN, [docked("BWV-000123", 3, clips=1), ingested("BWV-000123", 2, clip_id, data)], hours=[3, 3])
    assert custody(client, clip_id) == [("upload-verified", "central"), ("ingest", "camden")]
    # Barnet's token claims it copied the clip off a camera: right size and hash, or any.
    post(client, BARNET, [ingested("BWV-000123", 2, clip_id, data), ingested("BWV-000123", 2, clip_id)], hours=[4, 4])
    assert [(s, q, k) for s, q, k, _ in refusals(client)] == [
        ("barnet", 1, "clip_ingested"),
        ("barnet", 2, "clip_ingested"),
    ]
    assert "camden" in refusals(client)[0][3].lower()
    assert custody(client, clip_id) == [("upload-verified", "central"), ("ingest", "camden")]
    assert "barnet" not in chain_places(client, clip_id) and chain_intact(client)
    assert client.get(f"/api/v1/clips/{clip_id}/attribution", headers=ADMIN).json()["station_id"] == "camden"


def test_a_clip_reported_before_then_by_another_station_and_again_by_its_own_in_one_transaction(
    applied_by_the_test,
):
    """Kentish reported the clip; later, in one transaction, Camden claims it (first: the run puts
    stations in order), then Kentish says it again: Camden's claim is refused (the clip is
    Kentish's), Kentish's repeat is nothing new."""
    client = applied_by_the_test
    clip = ingested("BWV-000123", 2)
    post(client, KENTISH, [docked("BWV-000123", 3, clips=1), clip], hours=[3, 3])
    for headers, first_seq in ((CAMDEN, 1), (KENTISH, 3)):
        sent = client.post(
            "/api/v1/events/",
            content=batch([clip], first_seq, hours=[4.0]),
            headers={**headers, "Content-Type": "application/json"},
        )
        assert sent.status_code == 200
    assert services(client.app).events.apply_pending() == 2
    assert [(s, q, k) for s, q, k, _ in refusals(client)] == [("camden", 1, "clip_ingested")]
    assert "reported by station kentish" in refusals(client)[0][3]
    assert client.get(f"/api/v1/clips/{clip.clip_id}/attribution", headers=ADMIN).json()["station_id"] == "kentish"


def test_two_stations_reporting_a_new_clip_in_one_run_the_first_in_the_run_keeps_it(applied_by_the_test):
    client = applied_by_the_test
    clip = ingested("BWV-000123", 2)
    for headers in (CAMDEN, KENTISH):
        sent = client.post(
            "/api/v1/events/",
            content=batch([docked("BWV-000123", 3, clips=1), clip], 1, hours=[3.0, 3.0]),
            headers={**headers, "Content-Type": "application/json"},
        )
        assert sent.status_code == 200
    assert services(client.app).events.apply_pending() == 4
    assert [(s, q, k) for s, q, k, _ in refusals(client)] == [("kentish", 2, "clip_ingested")]
    assert client.get(f"/api/v1/clips/{clip.clip_id}/attribution", headers=ADMIN).json()["station_id"] == "camden"


def test_a_clip_id_with_a_nul_character_is_refused_and_claims_no_other_clip(client):
    """SQLite reads a string of JSON up to a NUL: "X\\x00" was attributed as clip X, past the checks
    against X's upload and reporter (looked up under the whole id, they found nothing), so a
    station of the borough took a clip another uploaded, whose own report was then refused."""
    data = os.urandom(3000)
    clip_id = upload(client, data, hours=2)  # Camden's, verified
    forged = ingested("BWV-000123", 2, clip_id + "\x00", data)
    post(client, KENTISH, [docked("BWV-000123", 1, clips=1), forged], hours=[1, 1])
    post(client, CAMDEN, [docked("BWV-000123", 3, clips=1), ingested("BWV-000123", 2, clip_id, data)], hours=[3, 3])
    assert [(s, q, k) for s, q, k, _ in refusals(client)] == [("kentish", 2, "clip_ingested")]
    assert "NUL" in refusals(client)[0][3]
    assert client.get(f"/api/v1/clips/{clip_id}/attribution", headers=ADMIN).json()["station_id"] == "camden"
    assert custody(client, clip_id) == [("upload-verified", "central"), ("ingest", "camden")]
    with services(client.app).store.writer.read() as db:
        assert db.execute("SELECT count(*) FROM attributions").fetchone()[0] == 1


def test_verified_and_damaged_reports_of_a_clip_id_with_a_nul_are_refused_as_of_no_clip_of_the_station(client):
    """Looked up among the others of their run: PostgreSQL could not take the id, and the whole
    transaction was applied again station by station, then this station's events one at a time."""
    good = ingested("BWV-000123", 2)
    nul = "\x00" + good.clip_id
    post(
        client,
        CAMDEN,
        [docked("BWV-000123", 3, clips=1), good, ClipVerified(clip_id=nul), ClipDamaged(clip_id=nul, reason="x")],
        hours=[3, 3, 3, 3],
    )
    assert [(s, q, k) for s, q, k, _ in refusals(client)] == [
        ("camden", 3, "clip_verified"),
        ("camden", 4, "clip_damaged"),
    ]
    assert not any("could not apply" in reason for *_, reason in refusals(client))
    assert client.get(f"/api/v1/clips/{good.clip_id}/attribution", headers=ADMIN).json()["station_id"] == "camden"


def test_an_ingest_whose_size_or_hash_differs_from_the_upload_is_refused(client):
    data = os.urandom(3000)
    clip_id = upload(client, data, hours=2)
    wrong_size = ingested("BWV-000123", 2, clip_id, data)
    wrong_size.size += 1
    wrong_hash = ingested("BWV-000123", 2, clip_id, data)
    wrong_hash.sha256 = "f" * 64
    post(client, CAMDEN, [docked("BWV-000123", 3, clips=1), wrong_size, wrong_hash], hours=[3, 3, 3])
    assert [(q, k) for _, q, k, _ in refusals(client, "camden")] == [(2, "clip_ingested"), (3, "clip_ingested")]
    assert "size" in refusals(client)[0][3] and "SHA-256" in refusals(client)[1][3]
    assert custody(client, clip_id) == [("upload-verified", "central")]
    post(client, CAMDEN, [ingested("BWV-000123", 2, clip_id, data)], first_seq=4, hours=[3])  # the true one
    assert custody(client, clip_id) == [("upload-verified", "central"), ("ingest", "camden")]
    assert chain_intact(client)


def test_an_ingest_before_its_upload_joins_the_chain_when_the_upload_matches(client):
    data = os.urandom(3000)
    clip = ingested("BWV-000123", 0, data=data)
    post(client, CAMDEN, [docked("BWV-000123", 1, clips=1), clip], hours=[1, 1])
    assert custody(client, clip.clip_id) == []  # reported, not yet uploaded: no link yet
    assert client.get(f"/api/v1/clips/{clip.clip_id}/attribution", headers=ADMIN).status_code == 200
    upload_reported(client, clip, data)
    assert custody(client, clip.clip_id) == [("ingest", "camden"), ("upload-verified", "central")]
    assert refusals(client) == [] and chain_intact(client)


def _forged_upload(client, clip, data: bytes, way: str, headers=KENTISH):
    """Another station's upload of ``clip``'s id with ``data``: created, then a PATCH; or whole in its
    creation request (small: stored in one hop; large: streamed)."""
    meta = upload_metadata(clip, hashlib.sha256(data).hexdigest())
    tus = {**headers, **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": encode_upload_metadata(meta)}
    if way == "created":
        return client.post("/api/v1/uploads/", headers=tus)
    return client.post(
        "/api/v1/uploads/",
        headers={**tus, "Content-Type": "application/offset+octet-stream", "Upload-Checksum": checksum(data)},
        content=data,
    )


@pytest.mark.parametrize(
    ("way", "size"), [("created", 3000), ("whole in its creation", 3000), ("whole in its creation", 300_000)]
)
def test_another_stations_upload_of_other_bytes_than_a_reported_clips_is_refused(client, way, size):
    """Camden reported copying the clip off its camera; before its upload, Kentish (told the id of the
    held clip, say) uploads bytes of its own under that id: refused, nothing stored; Camden's upload
    then goes through, and the clip and its custody are Camden's."""
    data, forged = os.urandom(size), os.urandom(size)
    clip = ingested("BWV-000123", 2, data=data)
    post(client, CAMDEN, [docked("BWV-000123", 3, clips=1), clip], hours=[3, 3])
    refused = _forged_upload(client, clip, forged, way)
    assert refused.status_code == 409, refused.text
    assert "reported copied off its camera by station camden" in refused.text
    serving = services(client.app)
    assert serving.receiver.uploads.upload_for_clip(clip.clip_id) is None
    assert not serving.blobs.exists(clip.clip_id)
    upload_reported(client, clip, data)
    assert custody(client, clip.clip_id) == [("ingest", "camden"), ("upload-verified", "central")]
    assert refusals(client) == [] and chain_intact(client)


@pytest.mark.parametrize(
    ("way", "size"), [("created", 3000), ("whole in its creation", 3000), ("whole in its creation", 300_000)]
)
def test_a_report_applied_while_another_stations_upload_of_other_bytes_is_on_its_way_refuses_it(
    blob_client, monkeypatch, way, size
):
    """Kentish's upload of its own bytes under the id passes the claim check before Camden's report is
    applied; the report is applied before Kentish's upload gets its row (a large whole clip: the whole
    transfer long). The row is not made: refused as if the report had come first, nothing stored, and
    Camden's upload then goes through."""
    client = blob_client
    data, forged = os.urandom(size), os.urandom(size)
    clip = ingested("BWV-000123", 2, data=data)
    post(client, CAMDEN, [docked("BWV-000123", 3, clips=1)], hours=[3])
    uploads = services(client.app).receiver.uploads
    reported: list = []

    def report_first(original):
        def wrapped(*args, **kwargs):
            if not reported:
                reported.append(post(client, CAMDEN, [clip], first_seq=2, hours=[3]))
            return original(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(uploads, "create_upload", report_first(uploads.create_upload))
    monkeypatch.setattr(uploads, "record_stored_upload", report_first(uploads.record_stored_upload))
    refused = _forged_upload(client, clip, forged, way)
    assert reported and reported[0].status_code == 200, reported
    assert refused.status_code == 409, refused.text
    assert "reported copied off its camera by station camden" in refused.text
    serving = services(client.app)
    assert uploads.upload_for_clip(clip.clip_id) is None
    assert not serving.blobs.exists(clip.clip_id)
    assert not list(serving.receiver.dir.glob("*.part"))
    monkeypatch.undo()
    upload_reported(client, clip, data)
    assert custody(client, clip.clip_id) == [("ingest", "camden"), ("upload-verified", "central")]
    assert refusals(client) == [] and chain_intact(client)


@pytest.mark.parametrize(
    "spelling", [str.upper, lambda clip_id: clip_id.replace("-", ""), lambda clip_id: "{" + clip_id + "}"]
)
def test_another_stations_other_bytes_under_a_reported_clips_id_spelt_otherwise_are_refused(client, spelling):
    """The id in Upload-Metadata in capitals, without its hyphens or in braces names the same clip:
    refused all the same, or refused as no id at all."""
    data, forged = os.urandom(3000), os.urandom(3000)
    clip = ingested("BWV-000123", 2, data=data)
    post(client, CAMDEN, [docked("BWV-000123", 3, clips=1), clip], hours=[3, 3])
    meta = upload_metadata(clip, hashlib.sha256(forged).hexdigest())
    header = encode_upload_metadata(meta).replace(
        base64.b64encode(clip.clip_id.encode()).decode(), base64.b64encode(spelling(clip.clip_id).encode()).decode()
    )
    assert header != encode_upload_metadata(meta)
    r = client.post(
        "/api/v1/uploads/",
        headers={
            **KENTISH,
            **TUS,
            "Upload-Length": "3000",
            "Upload-Metadata": header,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": checksum(forged),
        },
        content=forged,
    )
    assert r.status_code in (400, 409), r.text
    assert services(client.app).receiver.uploads.upload_for_clip(clip.clip_id) is None
    upload_reported(client, clip, data)
    assert custody(client, clip.clip_id) == [("ingest", "camden"), ("upload-verified", "central")]


@pytest.mark.parametrize("size", [3000, 300_000])
def test_another_stations_whole_upload_declaring_a_reported_clips_bytes_but_sending_others_stores_nothing(client, size):
    """Upload-Metadata lies: the SHA-256 and length Camden reported, other bytes sent whole: refused
    when they are hashed, nothing kept, and Camden's upload goes through."""
    data = os.urandom(size)
    clip = ingested("BWV-000123", 2, data=data)
    post(client, CAMDEN, [docked("BWV-000123", 3, clips=1), clip], hours=[3, 3])
    meta = upload_metadata(clip)
    forged = os.urandom(size)
    r = client.post(
        "/api/v1/uploads/",
        headers={
            **KENTISH,
            **TUS,
            "Upload-Length": str(size),
            "Upload-Metadata": encode_upload_metadata(meta),
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": checksum(forged),
        },
        content=forged,
    )
    assert r.status_code == 460, r.text
    serving = services(client.app)
    assert serving.receiver.uploads.upload_for_clip(clip.clip_id) is None
    assert not serving.blobs.exists(clip.clip_id) and not list(serving.receiver.dir.glob("*.part"))
    upload_reported(client, clip, data)
    assert custody(client, clip.clip_id) == [("ingest", "camden"), ("upload-verified", "central")]


@pytest.mark.parametrize("other", [KENTISH, BARNET])
@pytest.mark.parametrize("way", ["created", "whole in its creation"])
def test_another_stations_unfinished_upload_declaring_a_reported_clips_bytes_does_not_lock_out_its_reporter(
    blob_client, other, way
):
    """Kentish (or Barnet) read the clip's id and SHA-256 off a custody report and creates an upload
    declaring them, then sends other bytes (refused at the end, back to 0) or none, and keeps it
    alive: Camden, whose report of those very bytes waits, met 423 until that upload expired, for
    ever while it is kept alive. Camden's own upload takes its place; the squatter's is gone."""
    client = blob_client
    data = os.urandom(3000)
    clip = ingested("BWV-000123", 2, data=data)
    post(client, CAMDEN, [docked("BWV-000123", 3, clips=1), clip], hours=[3, 3])
    meta = upload_metadata(clip)
    tus = {**other, **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": encode_upload_metadata(meta)}
    squat = client.post("/api/v1/uploads/", headers=tus)
    assert squat.status_code == 201, squat.text
    lie = patch(client, squat.headers["Location"], 0, os.urandom(3000), headers=other)
    assert lie.status_code == 460, lie.text
    camden = {**CAMDEN, **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": encode_upload_metadata(meta)}
    if way == "created":
        r = client.post("/api/v1/uploads/", headers=camden)
        assert r.status_code == 201, r.text
        assert patch(client, r.headers["Location"], 0, data).status_code == 204
    else:
        r = client.post(
            "/api/v1/uploads/",
            headers={**camden, "Content-Type": "application/offset+octet-stream", "Upload-Checksum": checksum(data)},
            content=data,
        )
        assert r.status_code == 201, r.text
    assert client.head(squat.headers["Location"], headers={**other, **TUS}).status_code == 404
    upload = services(client.app).receiver.uploads.upload_for_clip(clip.clip_id)
    assert upload is not None and upload.verified and upload.station_id == "camden"
    assert custody(client, clip.clip_id) == [("ingest", "camden"), ("upload-verified", "central")]
    assert refusals(client) == [] and chain_intact(client)


def test_another_stations_upload_of_the_very_bytes_a_station_reported_is_taken(client):
    """A camera copied at two docks: the bytes are the camera's whichever station sends them."""
    data = os.urandom(3000)
    clip = ingested("BWV-000123", 2, data=data)
    post(client, KENTISH, [docked("BWV-000123", 3, clips=1), clip], hours=[3, 3])
    upload_reported(client, clip, data, headers=CAMDEN)
    upload = services(client.app).receiver.uploads.upload_for_clip(clip.clip_id)
    assert upload is not None and upload.verified and upload.station_id == "camden"


def test_a_clip_copied_at_two_docks_of_a_borough_stays_attributed_whichever_station_uploads_it(client):
    """Kentish reported the clip first; Camden, where the camera docked too, reported it (the second
    report: refused) and uploads the very same bytes. Kentish's report joins the chain: the clip
    keeps its attribution, and with it the officer holds that cover it."""
    data = os.urandom(3000)
    clip = ingested("BWV-000123", 2, data=data)
    post(client, KENTISH, [docked("BWV-000123", 3, clips=1), clip], hours=[3, 3])
    post(client, CAMDEN, [docked("BWV-000123", 4, clips=1), clip], hours=[4, 4])
    assert [(s, q) for s, q, _, _ in refusals(client)] == [("camden", 2)]
    upload_reported(client, clip, data, headers=CAMDEN)
    assert client.get(f"/api/v1/clips/{clip.clip_id}/attribution", headers=ADMIN).json()["station_id"] == "kentish"
    assert custody(client, clip.clip_id) == [("ingest", "kentish"), ("upload-verified", "central")]
    assert [(s, q) for s, q, _, _ in refusals(client)] == [("camden", 2)] and chain_intact(client)


@pytest.mark.parametrize("way", ["created", "whole in its creation"])
def test_a_crash_while_a_waiting_claim_is_settled_leaves_it_waiting_and_the_upload_is_finished_again(
    client, monkeypatch, way
):
    """Kentish uploads the very bytes Camden reported; the verified commit dies in ``claims.settle``:
    nothing of it stays (the claim waits, no custody record, the clip not verified), and the
    upload's retry (from the offset its HEAD gives; Camden, whose claim lets it adopt the stored blob)
    finishes it with Camden's ingest in the chain once."""
    from central.uploads import service

    data = os.urandom(3000)
    clip = ingested("BWV-000123", 2, data=data)
    post(client, CAMDEN, [docked("BWV-000123", 3, clips=1), clip], hours=[3, 3])
    settle = service.claims.settle

    def crash(*args, **kwargs):
        raise RuntimeError("the machine failed here")

    monkeypatch.setattr(service.claims, "settle", crash)
    failed = _forged_upload(client, clip, data, way)
    if way == "created":
        assert failed.status_code == 201
        failed = patch(client, failed.headers["Location"], 0, data, headers=KENTISH)
    assert failed.status_code == 500
    serving = services(client.app)
    upload = serving.receiver.uploads.upload_for_clip(clip.clip_id)
    assert upload is None or not upload.verified
    with serving.store.writer.read() as db:
        assert attribution.claimant(db, clip.clip_id) == ("camden", 3000, clip.sha256)
    assert custody(client, clip.clip_id) == []
    monkeypatch.setattr(service.claims, "settle", settle)
    if way == "created":
        location = _forged_upload(client, clip, data, way).headers["Location"]
        offset = int(client.head(location, headers={**KENTISH, **TUS}).headers["Upload-Offset"])
        again = patch(client, location, offset, data[offset:], headers=KENTISH)
        assert again.status_code == 204, again.text
    else:
        assert _forged_upload(client, clip, data, way).status_code == 423  # the blob is Camden's to adopt
        upload_reported(client, clip, data)
    assert custody(client, clip.clip_id) == [("ingest", "camden"), ("upload-verified", "central")]
    assert refusals(client) == [] and chain_intact(client)


@pytest.mark.parametrize("uploader", ["barnet", "a person"])
def test_a_clip_its_boroughs_station_reported_stays_its_whoever_uploads_the_very_bytes(client, uploader):
    """Camden's camera docked at Camden (reported) and at Barnet, whose report of another borough's
    camera is refused but whose upload is kept (evidence); or a person sends the footage. Camden's
    report named those bytes before any upload: it joins the chain, and the clip stays attributed."""
    data = os.urandom(3000)
    clip = ingested("BWV-000123", 2, data=data)
    post(client, CAMDEN, [docked("BWV-000123", 3, clips=1), clip], hours=[3, 3])
    upload_reported(client, clip, data, headers=BARNET if uploader == "barnet" else ADMIN)
    assert client.get(f"/api/v1/clips/{clip.clip_id}/attribution", headers=ADMIN).json()["station_id"] == "camden"
    assert custody(client, clip.clip_id) == [("ingest", "camden"), ("upload-verified", "central")]
    assert refusals(client) == [] and chain_intact(client)


def test_a_report_arriving_while_another_station_of_its_borough_uploads_the_very_bytes_stands(client):
    """The same clip and stations as a report made first (``…two_docks…``), in the other order: Kentish's
    upload is under way when Camden's report comes. It stands, and joins the chain at the upload's end."""
    data = os.urandom(3000)
    clip = ingested("BWV-000123", 2, data=data)
    meta = upload_metadata(clip)
    created = client.post(
        "/api/v1/uploads/",
        headers={**KENTISH, **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": encode_upload_metadata(meta)},
    )
    assert created.status_code == 201
    post(client, CAMDEN, [docked("BWV-000123", 3, clips=1), clip], hours=[3, 3])
    assert refusals(client) == []
    assert client.get(f"/api/v1/clips/{clip.clip_id}/attribution", headers=ADMIN).json()["station_id"] == "camden"
    assert patch(client, created.headers["Location"], 0, data, headers=KENTISH).status_code == 204
    assert custody(client, clip.clip_id) == [("ingest", "camden"), ("upload-verified", "central")]
    assert chain_intact(client)


def test_a_report_of_a_clip_another_station_has_verified_needs_its_own_upload_even_with_the_right_bytes(client):
    """Once verified, a clip's SHA-256 is in custody reports: naming it proves nothing."""
    data = os.urandom(3000)
    clip = ingested("BWV-000123", 2, data=data)
    post(client, CAMDEN, [docked("BWV-000123", 3, clips=1)], hours=[3])
    upload_reported(client, clip, data, headers=KENTISH)
    post(client, CAMDEN, [clip], first_seq=2, hours=[3])
    assert [(s, q, k) for s, q, k, _ in refusals(client)] == [("camden", 2, "clip_ingested")]
    assert "uploaded by" in refusals(client)[0][3]


def test_a_claim_on_a_clip_another_station_then_uploads_is_refused_and_undone(client):
    """The claim came first (no upload yet to check it against); the upload settles it."""
    data = os.urandom(3000)
    forged = ingested("BWV-000123", 0, data=data)
    post(client, BARNET, [forged], hours=[1])
    upload_reported(client, forged, data)  # by camden
    assert [(s, q) for s, q, _, _ in refusals(client)] == [("barnet", 1)]
    assert "barnet" not in chain_places(client, forged.clip_id)
    assert client.get(f"/api/v1/clips/{forged.clip_id}/attribution", headers=ADMIN).status_code == 404
    post(client, CAMDEN, [docked("BWV-000123", 1, clips=1), forged], hours=[1, 1])  # the true station's report
    assert custody(client, forged.clip_id) == [("upload-verified", "central"), ("ingest", "camden")]
    assert client.get(f"/api/v1/clips/{forged.clip_id}/attribution", headers=ADMIN).json()["station_id"] == "camden"


# -- cameras: checkouts and check-ins of the station's own borough's pool -------------------------


def test_a_checkout_of_another_boroughs_camera_is_refused(client):
    post(client, CAMDEN, [docked("A")], hours=[0])
    post(client, BARNET, [out("A", "PC9"), back("A", "PC9")], hours=[1, 2])
    assert [(s, q, k) for s, q, k, _ in refusals(client)] == [("barnet", 1, "checked_out"), ("barnet", 2, "checked_in")]
    assert "Camden" in refusals(client)[0][3]
    assert holder_intervals(client, "A") == []
    assert client.get("/api/v1/conflicts", headers=ADMIN).json() == []


def test_a_checkout_of_an_unknown_or_personal_issue_camera_is_refused(client):
    registered = client.post(
        "/api/v1/devices/", headers=ADMIN, json=[{"serial": "P", "borough": "Camden", "assignment_mode": "personal"}]
    )
    assert registered.status_code == 201, registered.text
    post(client, CAMDEN, [docked("P"), out("NEVER-SEEN", "PC1")], hours=[0, 1])
    client.post("/api/v1/officers/", headers=ADMIN, json=[{"officer_id": "PC5", "borough": "Camden"}])
    issued = client.post("/api/v1/assignments", headers=ADMIN, json={"device_serial": "P", "officer_id": "PC5"})
    assert issued.status_code == 201, issued.text
    post(client, CAMDEN, [out("P", "PC1")], first_seq=3, hours=[2])
    assert [(q, k) for _, q, k, _ in refusals(client, "camden")] == [(2, "checked_out"), (3, "checked_out")]
    assert "never" in refusals(client)[0][3] and "personal" in refusals(client)[1][3]
    assert [o for o, _ in holder_intervals(client, "P")] == ["PC5"]


def test_a_back_dated_checkout_does_not_reattribute_a_clip(client):
    clip = ingested("A", 3)
    post(client, CAMDEN, [docked("A"), out("A", "PC1"), docked("A", 6, clips=1), clip], hours=[0, 1, 6, 6])
    assert owner(client, clip.clip_id) == "PC1"
    # The same station, its next event dated hours before what it reported already.
    post(client, CAMDEN, [out("A", "PC2")], first_seq=5, hours=[2])
    # Another borough's station, dated to cover the clip.
    post(client, BARNET, [docked("Z", 7), out("A", "PC3")], hours=[7, 2.5])
    assert [(s, q, k) for s, q, k, _ in refusals(client)] == [
        ("camden", 5, "checked_out"),
        ("barnet", 2, "checked_out"),
    ]
    assert "before" in refusals(client)[0][3]
    assert owner(client, clip.clip_id) == "PC1"
    assert [o for o, _ in holder_intervals(client, "A")] == ["PC1"]


def test_an_event_dated_far_beyond_the_measured_clock_skew_is_flagged(client):
    post(client, CAMDEN, [docked("A")], hours=[0])
    future = EventEnvelope(seq=2, at=at(0) + timedelta(days=2), event=out("A", "PC1"))
    body = msgspec.json.encode(EventBatch(sent_at=at(0), events=[future]))
    assert client.post("/api/v1/events/", content=body, headers=CAMDEN).json()["acked_seq"] == 2
    services(client.app).events.apply_all()
    assert [(q, k) for _, q, k, _ in refusals(client, "camden")] == [(2, "checked_out")]
    assert "clock" in refusals(client)[0][3]
    assert holder_intervals(client, "A") == []


def test_a_camera_first_seen_docking_is_the_stations_borough_and_another_boroughs_is_refused(client):
    post(client, CAMDEN, [docked("A"), out("A", "PC1")], hours=[0, 1])
    post(client, BARNET, [docked("NEW", 2), docked("A", 3)], hours=[2, 3])  # A is Camden's
    assert client.get("/api/v1/devices/NEW", headers=ADMIN).json()["device"]["borough"] == "Barnet"
    assert [(s, q, k) for s, q, k, _ in refusals(client)] == [("barnet", 2, "camera_docked")]
    device = client.get("/api/v1/devices/A", headers=ADMIN).json()["device"]
    assert device["last_station"] == "camden" and device["holder"] == "PC1"  # Barnet's claim closed nothing
    post(client, KENTISH, [docked("A", 4)], hours=[4])  # another station of Camden's: that is a docking
    assert holder_intervals(client, "A")[0][1] is not None and len(refusals(client)) == 1


# -- refusals: recorded, shown, never jamming the outbox -------------------------------------------


def test_a_refused_event_is_acknowledged_and_the_station_keeps_syncing(client):
    post(client, CAMDEN, [docked("A")], hours=[0])
    r = post(client, BARNET, [out("A", "PC9"), docked("B", 2), docked("B", 3)], hours=[1, 2, 3])
    assert r.json()["acked_seq"] == 3
    r = post(client, BARNET, [docked("C", 4)], first_seq=4, hours=[4])
    assert r.json()["acked_seq"] == 4
    station = client.get("/api/v1/stations/barnet", headers=ADMIN).json()
    assert station["applied_seq"] == 4 and station["refused_events"] == 1
    assert client.get("/api/v1/devices/C", headers=ADMIN).status_code == 200
    assert len(client.get("/api/v1/devices/B", headers=ADMIN).json()["battery"]) == 2


def test_refusals_are_a_security_alert_on_the_dashboard_and_the_stations_page(client):
    post(client, CAMDEN, [docked("A")], hours=[0])
    post(client, BARNET, [out("A", "PC9")], hours=[1])
    home = client.get("/", headers=ADMIN)
    assert home.status_code == 200
    card = re.search(r'data-alert="station_refusals".*?</li>', home.text, re.S)
    assert card is not None and ">1<" in card.group(0).replace(" ", "") and "/stations#refusals" in card.group(0)
    page = client.get("/stations", headers=ADMIN)
    assert page.status_code == 200 and 'id="refusals"' in page.text
    table = page.text[page.text.index('id="refusals"') :]
    assert "barnet" in table and "checked_out" in table and "Camden" in table


def test_a_number_past_sqlites_integers_is_refused_at_the_door_and_jams_no_station(client):
    """Every count a station reports is stored in a 64-bit SQLite integer. A docking telling of
    2**63 battery cycles (a camera's device.json is written by whoever holds the camera) was
    acknowledged, then failed the projection's transaction every time it was retried: no
    station's events were applied any more."""
    from fleet.events import CameraDocked
    from fleet.protocol import Battery, DeviceInfo

    for field in ("cycle_count", "full_charge_mah", "design_mah", "voltage_mv"):
        battery = Battery(level_pct=50, **{field: 2**63})
        event = CameraDocked(device=DeviceInfo(serial="CAM-HUGE", battery=battery), folder="f")
        assert post(client, CAMDEN, [event]).status_code == 400, field
    for event in (
        CameraDocked(device=DeviceInfo(serial="CAM-HUGE", storage_used_bytes=2**63), folder="f"),
        CameraDocked(device=DeviceInfo(serial="CAM-HUGE"), folder="f", clip_count=2**63),
    ):
        assert post(client, CAMDEN, [event]).status_code == 400, event
    huge = ingested("CAM-HUGE", 1)
    huge.size = 2**63
    assert post(client, CAMDEN, [huge]).status_code == 400
    assert post(client, BARNET, [docked("BAR-1", 1)]).status_code == 200
    assert client.get("/api/v1/devices/BAR-1", headers=ADMIN).status_code == 200  # the other station's was applied


def test_an_event_central_cannot_apply_is_refused_and_stops_no_other_station(client, monkeypatch):
    """Whatever a future bug lets through: the stations' events are applied again a station at a time,
    then one event at a time, the event that still fails is refused against its station, and every
    other event is applied (both stations' events here are applied in one transaction)."""
    from central.events.projection import Projector

    docked_handler = Projector._handlers[type(docked("X"))]
    assert docked_handler is not None

    def failing(self, db, run):
        if any(a.event.device.serial == "CAM-POISON" for a in run):
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return docked_handler(self, db, run)

    monkeypatch.setitem(Projector._handlers, type(docked("X")), failing)
    client.post(
        "/api/v1/events/",
        headers={**CAMDEN, "Content-Type": "application/json"},
        content=batch([docked("CAM-1", 1), docked("CAM-POISON", 2), docked("CAM-2", 3)]),
    ).raise_for_status()
    assert post(client, BARNET, [docked("BAR-1", 1)]).status_code == 200
    for serial in ("CAM-1", "CAM-2", "BAR-1"):
        assert client.get(f"/api/v1/devices/{serial}", headers=ADMIN).status_code == 200, serial
    assert client.get("/api/v1/devices/CAM-POISON", headers=ADMIN).status_code == 404
    assert [(s, seq, kind) for s, seq, kind, _ in refusals(client)] == [("camden", 2, "camera_docked")]
    assert "could not apply" in refusals(client)[0][3]
    assert services(client.app).events.apply_all() == 0  # nothing left to retry


@pytest.mark.parametrize("then", ["nothing", "a python error"])
def test_a_statement_that_fails_unread_is_refused_like_any_other_failure(client, monkeypatch, then):
    """On PostgreSQL the projection's statements are pipelined: a failing one whose result nobody
    reads raises only later. Its run's savepoint waits for it before it is released (or, when
    Python fails meanwhile, before it is rolled back), so the event is still refused on its own
    and every other is applied."""
    from central.events.projection import Projector

    docked_handler = Projector._handlers[type(docked("X"))]
    assert docked_handler is not None

    def failing(self, db, run):
        docked_handler(self, db, run)
        if any(a.event.device.serial == "CAM-POISON" for a in run):
            db.execute("INSERT INTO stations (station_id, borough) VALUES ('camden', 'Camden')")  # there already
            if then == "a python error":
                raise OverflowError("after a statement that failed unread")

    monkeypatch.setitem(Projector._handlers, type(docked("X")), failing)
    post(client, CAMDEN, [docked("CAM-1", 1), docked("CAM-POISON", 2), docked("CAM-2", 3)]).raise_for_status()
    for serial in ("CAM-1", "CAM-2"):
        assert client.get(f"/api/v1/devices/{serial}", headers=ADMIN).status_code == 200, serial
    assert client.get("/api/v1/devices/CAM-POISON", headers=ADMIN).status_code == 404
    assert [(s, seq, kind) for s, seq, kind, _ in refusals(client)] == [("camden", 2, "camera_docked")]
    assert services(client.app).events.apply_all() == 0


@pytest.mark.parametrize(
    "poison",
    [
        BadFolder(folder="DCIM\x00", reason="unreadable"),
        ClipVerified(clip_id="clip\x00"),
        ClipDamaged(clip_id="clip\x00", reason="bad"),
    ],
    ids=["bad_folder", "clip_verified", "clip_damaged"],
)
def test_an_event_naming_a_nul_character_is_refused_and_stops_no_other_station(client, poison):
    """PostgreSQL's text holds no NUL: such a clip id fails its statements, and its refusal, which
    names it, is stored all the same (else every retry of every station's events failed with it)."""
    post(client, CAMDEN, [docked("CAM-1"), poison, docked("CAM-2", 2)]).raise_for_status()
    post(client, BARNET, [docked("B-1")]).raise_for_status()
    for serial in ("CAM-1", "CAM-2", "B-1"):
        assert client.get(f"/api/v1/devices/{serial}", headers=ADMIN).status_code == 200, serial
    assert client.get("/api/v1/stations/camden", headers=ADMIN).json()["applied_seq"] == 3
    assert client.get("/api/v1/stations/barnet", headers=ADMIN).json()["applied_seq"] == 1
    refused = [] if isinstance(poison, BadFolder) else [("camden", 2)]  # a bad folder is only noted
    assert [(s, seq) for s, seq, _, _ in refusals(client)] == refused
    assert services(client.app).events.apply_all() == 0


def test_an_ingest_of_another_boroughs_camera_is_refused_and_its_clip_kept(client):
    # Camden's station uploads bytes it says came off Barnet's camera: the clip is kept (evidence
    # is never refused), but Camden cannot speak for Barnet's camera: no ingest record, no attribution.
    client.post(
        "/api/v1/devices/", headers=ADMIN, json=[{"serial": "BWV-BAR-9", "borough": "Barnet"}]
    ).raise_for_status()
    data = os.urandom(2000)
    clip = ingested("BWV-BAR-9", 2, str(uuid.uuid4()), data)
    upload_reported(client, clip, data)
    post(client, CAMDEN, [clip], hours=[3])
    [(station, seq, kind, reason)] = refusals(client)
    assert (station, seq, kind) == ("camden", 1, "clip_ingested") and "Barnet" in reason, reason
    assert custody(client, clip.clip_id) == [("upload-verified", "central")] and chain_intact(client)
    assert client.get(f"/api/v1/clips/{clip.clip_id}/attribution", headers=ADMIN).status_code == 404
    assert client.get(f"/api/v1/clips/{clip.clip_id}", headers=ADMIN).json()["state"] == "verified"


def test_every_event_kind_has_a_rule_for_what_a_station_may_claim():
    import typing

    from central.events.projection import Projector
    from fleet.events import Event

    kinds = set(typing.get_args(Event))
    assert set(Projector._admissions) == kinds, "decide what a station may claim with this kind (central.events.claims)"
    assert set(Projector._handlers) == kinds


def test_a_verified_report_about_another_stations_clip_is_refused(client):

    client.post("/api/v1/devices/", headers=ADMIN, json=[{"serial": "BWV-000123", "borough": "Camden"}])
    data = os.urandom(1500)
    clip = ingested("BWV-000123", 2, str(uuid.uuid4()), data)
    upload_reported(client, clip, data)
    post(client, CAMDEN, [docked("BWV-000123", 3, clips=1), clip], hours=[3, 3])
    # Central set the camera's last upload itself when it verified the clip (no report needed):
    # a refused report leaves it as it was; the uploader's own report may only move it later.
    verified_at = from_iso(client.get(f"/api/v1/clips/{clip.clip_id}", headers=ADMIN).json()["verified_at"])
    assert last_upload(client, "BWV-000123") == verified_at
    post(
        client,
        KENTISH,
        [ClipVerified(clip_id=clip.clip_id), ClipVerified(clip_id=str(uuid.uuid4()))],
        hours=[10_000, 10_000],
    )
    assert [(s, q, k) for s, q, k, _ in refusals(client)] == [
        ("kentish", 1, "clip_verified"),
        ("kentish", 2, "clip_verified"),
    ]
    assert last_upload(client, "BWV-000123") == verified_at
    post(client, CAMDEN, [ClipVerified(clip_id=clip.clip_id)], first_seq=3, hours=[6])
    assert last_upload(client, "BWV-000123") == max(verified_at, at(6))


def last_upload(client, serial: str):
    seen = client.get(f"/api/v1/devices/{serial}", headers=ADMIN).json()["device"]["last_upload_at"]
    return from_iso(seen) if seen else None


def test_a_database_that_cannot_be_written_for_a_while_refuses_no_event(client, monkeypatch):
    """A full disk or a busy database is central's condition, not the event's: the events wait and
    are applied once it clears, none refused (a refusal is for good: the outbox never resends)."""
    import sqlite3

    from central.events.projection import Projector

    docked_handler = Projector._handlers[type(docked("X"))]
    assert docked_handler is not None
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL
    failures = [full] * 2

    def full_for_a_while(self, db, run):
        if failures:
            raise failures.pop()
        return docked_handler(self, db, run)

    monkeypatch.setitem(Projector._handlers, type(docked("X")), full_for_a_while)
    client.post(
        "/api/v1/events/",
        headers={**CAMDEN, "Content-Type": "application/json"},
        content=batch([docked("CAM-1", 1), docked("CAM-2", 2)]),
    ).raise_for_status()
    for _ in range(5):  # what the projection worker does: retry later
        try:
            services(client.app).events.apply_all()
            break
        except sqlite3.OperationalError:
            continue
    assert refusals(client) == []
    for serial in ("CAM-1", "CAM-2"):
        assert client.get(f"/api/v1/devices/{serial}", headers=ADMIN).status_code == 200, serial


def test_a_damaged_copy_is_in_the_clips_custody_when_its_own_station_says_so(client):

    client.post("/api/v1/devices/", headers=ADMIN, json=[{"serial": "BWV-000123", "borough": "Camden"}])
    clip = ingested("BWV-000123", 2)
    post(client, CAMDEN, [docked("BWV-000123", 3, clips=1), clip], hours=[3, 3])
    damaged = ClipDamaged(clip_id=clip.clip_id, reason="segment 3 failed authentication")
    post(client, KENTISH, [damaged], hours=[4])  # another station (of the same borough) cannot say so
    assert [(s, q, k) for s, q, k, _ in refusals(client)] == [("kentish", 1, "clip_damaged")]
    post(client, CAMDEN, [damaged], first_seq=3, hours=[4])
    records = client.get(f"/api/v1/clips/{clip.clip_id}/custody", headers=ADMIN).json()
    said = [(r["action"], r["place"], r["detail"]) for r in records if r["action"] == "damaged-at-station"]
    assert len(said) == 1 and said[0][1] == "camden" and "segment 3 failed authentication" in said[0][2]


# -- clip reports judged as the rules always were: every clip looked up first (``_as_before``) -----

_BOROUGH = {"barnet": "Barnet", "camden": "Camden", "kentish": "Camden"}
_TOKENS = {"barnet": BARNET, "camden": CAMDEN, "kentish": KENTISH}


def _as_before(registered, uploads, reported, run):
    """The rules before ``settle_reported`` (``git show 8f47f41:central/events/claims.py``), as a model:
    ``run``'s reports ((station, seq, event), in the run's order) judged one after another against
    the clips' reporters looked up first. (refused {(station, seq)}, {clip: station} attributed,
    {clip: station} whose custody record is written now)."""
    reported = dict(reported)
    refused: set[tuple[str, int]] = set()
    attributed: dict[str, str] = {}
    custody_now: dict[str, str] = {}
    for station, seq, e in run:
        upload = uploads.get(e.clip_id)
        # A rule added since (``claims._copied_too``): a report stands beside another station's upload
        # still under way of the very bytes, when that station is of its borough or the camera is its borough's.
        copied_too = (
            upload is not None
            and upload[3] != "verified"
            and (upload[1], upload[2]) == (e.size, e.sha256)
            and _BOROUGH[station] in (_BOROUGH.get(upload[0]), registered.get(e.device_serial))
        )
        if (
            registered.get(e.device_serial, _BOROUGH[station]) != _BOROUGH[station]
            or (upload is not None and upload[0] != station and not copied_too)
            or (upload is not None and (upload[1] != e.size or upload[2] != e.sha256))
            or reported.get(e.clip_id, station) != station
        ):
            refused.add((station, seq))
            continue
        if e.clip_id in reported:
            continue
        reported[e.clip_id] = attributed[e.clip_id] = station
        if upload is not None and upload[3] == "verified":
            custody_now[e.clip_id] = station
    return refused, attributed, custody_now


def _one_transaction_as_before(client, reports: dict[str, list], seqs: dict[str, int]) -> None:
    """Send each station's reports (one batch each), apply them in one transaction, and check what it
    did against ``_as_before`` run on the state before it: refusals, attributions, custody records."""
    # The reports in the order the projection applies them (``merged_runs``: each station's in seq
    # order, interleaved by the runs other events split them into); other events are the model's to skip.
    stored = [
        Applied(station, _BOROUGH[station], seqs[station] + i, "", e)
        for station in sorted(reports)
        for i, e in enumerate(reports[station])
    ]
    run = [(a.station, a.seq, a.event) for r in merged_runs(stored) for a in r if isinstance(a.event, ClipIngested)]
    clips = list(dict.fromkeys(e.clip_id for _, _, e in run))
    store = services(client.app).store

    def ingest_records(db) -> dict[str, list[str]]:
        rows = db.execute(
            f"SELECT object_id, place FROM audit WHERE action = 'ingest' AND {db.dialect.any_of('object_id')}",
            [db.dialect.many(clips)],
        ).fetchall()
        found: dict[str, list[str]] = {}
        for clip_id, place in rows:
            found.setdefault(clip_id, []).append(place)
        return found

    with store.writer.read() as db:
        registered = devices.registered_to(db, (e.device_serial for _, _, e in run))
        uploads = upload_records.of_clips(db, clips)
        reported = attribution.reporters(db, clips)
        records_before = ingest_records(db)
        refusals_before = len(refusals(client))
    refused, attributed, custody_now = _as_before(registered, uploads, reported, run)
    for station, events in reports.items():
        sent = client.post(
            "/api/v1/events/",
            content=batch(events, seqs[station], hours=[5.0] * len(events)),
            headers={**_TOKENS[station], "Content-Type": "application/json"},
        )
        assert sent.status_code == 200
        seqs[station] += len(events)
    assert services(client.app).events.apply_pending() == len(stored)  # one transaction
    with store.writer.read() as db:
        owners = attribution.reporters(db, clips)
        records = ingest_records(db)
    assert {(s, q) for s, q, k, _ in refusals(client)[refusals_before:]} == refused
    assert owners == {**reported, **attributed}
    for clip_id in clips:
        new_records = records.get(clip_id, [])[len(records_before.get(clip_id, [])) :]
        assert new_records == ([custody_now[clip_id]] if clip_id in custody_now else []), clip_id


@pytest.mark.slow
def test_clip_reports_of_many_stations_in_one_transaction_are_judged_as_they_always_were(applied_by_the_test):
    """Clips uploaded (verified or in progress) by one station or another, or not; reported before by
    one or another; then reported by up to three stations of two boroughs, each once or twice,
    rightly or with another size, all in one transaction (two stations' reports in two runs, a
    docking between); a camera of Camden's or one central never heard of. What was refused,
    attributed and put in custody is what the old rules gave."""
    client = applied_by_the_test
    rng = random.Random(5)
    seqs = {"barnet": 1, "camden": 1, "kentish": 1}
    client.post(
        "/api/v1/events/",
        content=batch([docked("BWV-000123", 0, clips=1)], 1, hours=[0.5]),
        headers={**CAMDEN, "Content-Type": "application/json"},
    )
    seqs["camden"] = 2
    services(client.app).events.apply_pending()
    scenarios = []
    for _ in range(160):
        serial = rng.choice(["BWV-000123", "BWV-NEVER-SEEN"])
        data = os.urandom(rng.randint(50, 400))
        uploaded = rng.choice([None, "camden", "kentish", "barnet"])
        if uploaded is not None:
            finish = rng.random() < 0.6
            clip_id = upload(client, data, headers=_TOKENS[uploaded], hours=2, serial=serial, finish=finish)
        else:
            clip_id = str(uuid.uuid4())
        scenarios.append((ingested(serial, 2, clip_id, data), ingested(serial, 2, clip_id)))  # right, wrong size
    before: dict[str, list] = {}
    for right, _ in scenarios:
        reporter = rng.choice([None, None, "camden", "kentish", "barnet"])
        if reporter is not None:
            before.setdefault(reporter, []).append(right)
    _one_transaction_as_before(client, before, seqs)
    now: dict[str, list] = {}
    for right, wrong in scenarios:
        for station in ("barnet", "camden", "kentish"):
            now.setdefault(station, []).extend(
                rng.choice([[], [], [right], [wrong], [right, right], [wrong, right], [right, wrong]])
            )
    rng.shuffle(now["camden"])  # a station's reports of different clips in any order
    for station in ("camden", "kentish"):  # split into runs by a docking: a clip's reports in two of them
        now[station].insert(len(now[station]) // 2, docked(f"CAM-{station}", 5))
    _one_transaction_as_before(client, now, seqs)
    again: dict[str, list] = {s: [right for right, _ in scenarios if rng.random() < 0.3] for s in seqs}
    _one_transaction_as_before(client, again, seqs)
