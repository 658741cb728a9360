"""tus handlers through Litestar's TestClient (the real app, in process)."""

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from central.core.providers import services
from fleet.protocol import CLIP_STATE_HEADER
from tests.central.conftest import ADMIN, BARNET, CAMDEN, TUS, checksum, create, metadata, patch


def test_options_advertises_tus(client):
    r = client.options("/api/v1/uploads/", headers=CAMDEN)
    assert r.status_code == 204
    assert r.headers["Tus-Version"] == "1.0.0"
    assert set(r.headers["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "checksum",
        "termination",
        "expiration",
    }
    assert set(r.headers["Tus-Checksum-Algorithm"].split(",")) == {"sha1", "sha256", "crc32", "crc32c"}
    assert int(r.headers["Tus-Max-Size"]) > 0


def test_full_upload_in_chunks_is_verified_and_stored(client, blob, settings):
    r = create(client, blob)
    assert r.status_code == 201 and r.headers["Upload-Offset"] == "0" and "Upload-Expires" in r.headers
    location = r.headers["Location"]
    for offset in range(0, len(blob), 100_000):
        r = patch(client, location, offset, blob[offset : offset + 100_000])
        assert r.status_code == 204
        assert int(r.headers["Upload-Offset"]) == min(len(blob), offset + 100_000)
    assert r.headers[CLIP_STATE_HEADER] == "verified"
    head = client.head(location, headers={**CAMDEN, **TUS})
    assert head.headers[CLIP_STATE_HEADER] == "verified" and head.headers["Upload-Offset"] == str(len(blob))
    assert head.headers["Cache-Control"] == "no-store"
    assert head.headers["Upload-Metadata"]  # echoed back, as tus asks
    blobs = [p for p in (Path(settings.data_dir) / "blobs").rglob("*") if p.is_file()]
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in blobs] == [hashlib.sha256(blob).hexdigest()]
    assert list((Path(settings.data_dir) / "uploads").iterdir()) == []


def create_with(client, data: bytes, body: bytes, clip_id: str | None = None, **extra):
    """A creation-with-upload of ``data`` carrying ``body`` (its first bytes, or all of them)."""
    return client.post(
        "/api/v1/uploads/",
        content=body,
        headers={
            **CAMDEN,
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": metadata(data, clip_id),
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": checksum(body),
            **extra,
        },
    )


def test_creation_with_the_whole_clip_is_verified_in_one_request(client, blob, settings):
    r = create_with(client, blob, blob)
    assert r.status_code == 201 and r.headers[CLIP_STATE_HEADER] == "verified"
    assert r.headers["Upload-Offset"] == str(len(blob)) and r.headers["Location"]
    blobs = [p for p in (Path(settings.data_dir) / "blobs").rglob("*") if p.is_file()]
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in blobs] == [hashlib.sha256(blob).hexdigest()]


def test_creation_with_the_first_bytes_then_patch_the_rest(client, blob):
    r = create_with(client, blob, blob[:1000])
    assert r.status_code == 201 and r.headers["Upload-Offset"] == "1000"
    assert r.headers[CLIP_STATE_HEADER] == "receiving"
    r = patch(client, r.headers["Location"], 1000, blob[1000:])
    assert r.status_code == 204 and r.headers[CLIP_STATE_HEADER] == "verified"


def test_a_whole_clip_with_a_bad_checksum_in_its_creation_leaves_nothing(client, blob, settings):
    clip_id = str(uuid.uuid4())
    r = create_with(client, blob, blob, clip_id=clip_id, **{"Upload-Checksum": checksum(b"other bytes")})
    assert r.status_code == 460 and r.json()["error"] == "checksum_mismatch"
    assert not list((Path(settings.data_dir) / "uploads").glob("*.part"))
    again = create_with(client, blob, blob, clip_id=clip_id)  # the station's retry creates it afresh
    assert again.status_code == 201 and again.headers[CLIP_STATE_HEADER] == "verified"


def test_the_first_bytes_with_a_bad_checksum_create_the_upload_but_count_nothing(client, blob):
    clip_id = str(uuid.uuid4())
    r = create_with(client, blob, blob[:1000], clip_id=clip_id, **{"Upload-Checksum": checksum(b"other bytes")})
    assert r.status_code == 460 and r.json()["error"] == "checksum_mismatch"
    again = create_with(client, blob, blob[:1000], clip_id=clip_id)  # the station's retry
    assert again.status_code == 200 and again.headers["Upload-Offset"] == "1000"


def test_creation_with_bytes_for_an_upload_that_holds_some_ignores_them(client, blob):
    clip_id = str(uuid.uuid4())
    location = create_with(client, blob, blob[:1000], clip_id=clip_id).headers["Location"]
    r = create_with(client, blob, blob[:5000], clip_id=clip_id)
    assert r.status_code == 200 and r.headers["Upload-Offset"] == "1000" and r.headers["Location"] == location
    assert client.head(location, headers={**CAMDEN, **TUS}).headers["Upload-Offset"] == "1000"


def test_creation_with_bytes_of_the_wrong_type_is_415(client, blob):
    r = create_with(client, blob, blob, **{"Content-Type": "application/octet-stream"})
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"


def test_creation_is_idempotent_by_clip_id(client, blob):
    first = create(client, blob, clip_id="6f1c1d3e-8a7b-4c2d-9e0f-1a2b3c4d5e6f")
    again = create(client, blob, clip_id="6f1c1d3e-8a7b-4c2d-9e0f-1a2b3c4d5e6f")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.headers["Location"] == again.headers["Location"]
    patch(client, first.headers["Location"], 0, blob)
    done = create(client, blob, clip_id="6f1c1d3e-8a7b-4c2d-9e0f-1a2b3c4d5e6f")
    assert done.status_code == 200 and done.headers[CLIP_STATE_HEADER] == "verified"
    assert done.headers["Upload-Offset"] == str(len(blob))


def test_contradicting_recreation_is_409(client, blob):
    clip_id = "6f1c1d3e-8a7b-4c2d-9e0f-1a2b3c4d5e6f"
    create(client, blob, clip_id=clip_id)
    r = create(client, blob[:-1], clip_id=clip_id)
    assert r.status_code == 409 and r.json()["error"] == "conflict"


def test_another_station_cannot_take_over_an_upload(client, blob):
    clip_id = "6f1c1d3e-8a7b-4c2d-9e0f-1a2b3c4d5e6f"
    location = create(client, blob, clip_id=clip_id).headers["Location"]
    assert create(client, blob, headers=BARNET, clip_id=clip_id).status_code == 423
    assert patch(client, location, 0, blob, headers=BARNET).status_code == 403
    assert client.head(location, headers={**BARNET, **TUS}).status_code == 403
    assert client.delete(location, headers={**BARNET, **TUS}).status_code == 403


def test_chunk_checksum_mismatch_discards_the_chunk(client, blob):
    location = create(client, blob).headers["Location"]
    r = patch(client, location, 0, blob[:1000], **{"Upload-Checksum": "sha1 " + "A" * 27 + "="})
    assert r.status_code == 460 and r.json()["error"] == "checksum_mismatch"
    assert client.head(location, headers={**CAMDEN, **TUS}).headers["Upload-Offset"] == "0"
    assert patch(client, location, 0, blob[:1000]).headers["Upload-Offset"] == "1000"


@pytest.mark.parametrize("algorithm", ["sha1", "crc32", "crc32c"])
def test_other_checksum_algorithms_are_accepted_and_checked(client, blob, algorithm):
    import base64

    from fleet.hashing import new_checksum

    location = create(client, blob).headers["Location"]
    digest = new_checksum(algorithm)
    digest.update(blob[:1000])
    good = f"{algorithm} {base64.b64encode(digest.digest()).decode()}"
    bad = f"{algorithm} {base64.b64encode(bytes(len(digest.digest()))).decode()}"
    assert patch(client, location, 0, blob[:1000], **{"Upload-Checksum": bad}).status_code == 460
    r = patch(client, location, 0, blob[:1000], **{"Upload-Checksum": good})
    assert r.status_code == 204 and r.headers["Upload-Offset"] == "1000"


def test_whole_file_mismatch_resets_the_upload(client, blob):
    r = client.post(
        "/api/v1/uploads/",
        headers={**CAMDEN, **TUS, "Upload-Length": str(len(blob)), "Upload-Metadata": metadata(b"something else")},
    )
    location = r.headers["Location"]
    half = len(blob) // 2
    assert patch(client, location, 0, blob[:half]).status_code == 204
    r = patch(client, location, half, blob[half:])
    assert r.status_code == 460 and "reset to offset 0" in r.json()["message"]
    assert client.head(location, headers={**CAMDEN, **TUS}).headers["Upload-Offset"] == "0"


def test_wrong_offset_is_409_offset_mismatch(client, blob):
    location = create(client, blob).headers["Location"]
    r = patch(client, location, 5, blob[:10])
    assert r.status_code == 409 and r.json()["error"] == "offset_mismatch"


def test_bytes_past_upload_length_are_refused(client, blob):
    location = create(client, blob[:100]).headers["Location"]
    r = patch(client, location, 0, blob[:200], with_checksum=False)
    assert r.status_code == 413
    assert client.head(location, headers={**CAMDEN, **TUS}).headers["Upload-Offset"] == "0"


def test_unchecksummed_chunks_are_accepted(client, blob):
    location = create(client, blob).headers["Location"]
    r = patch(client, location, 0, blob, with_checksum=False)
    assert r.status_code == 204 and r.headers[CLIP_STATE_HEADER] == "verified"


@pytest.mark.parametrize(
    "headers, status",
    [
        ({"Tus-Resumable": "0.2.2"}, 412),
        ({"Content-Type": "application/json"}, 415),
        ({"Upload-Offset": "-1"}, 400),
        ({"Upload-Offset": "abc"}, 400),
        ({"Upload-Checksum": "md5 AAAA"}, 400),
        ({"Upload-Checksum": "sha256 !!!"}, 400),
        ({"Upload-Checksum": "sha256 AAAA"}, 400),
    ],
)
def test_malformed_patch_headers_are_4xx(client, blob, headers, status):
    location = create(client, blob).headers["Location"]
    r = patch(client, location, 0, blob[:10], **headers)
    assert r.status_code == status, r.text
    assert r.json()["message"]


@pytest.mark.parametrize(
    "headers, status",
    [
        ({"Upload-Length": "x"}, 400),
        ({"Upload-Length": "-5"}, 400),
        ({"Upload-Length": str(1 << 60)}, 413),
        ({"Upload-Metadata": "clip_id bm9wZQ=="}, 400),
        ({"Upload-Metadata": ""}, 400),
        ({"Upload-Defer-Length": "1"}, 400),
        ({"Tus-Resumable": ""}, 412),
    ],
)
def test_malformed_creation_headers_are_4xx(client, blob, headers, status):
    h = {**CAMDEN, **TUS, "Upload-Length": str(len(blob)), "Upload-Metadata": metadata(blob), **headers}
    r = client.post("/api/v1/uploads/", headers=h)
    assert r.status_code == status, r.text


def test_unknown_upload_is_404(client):
    assert client.head("/api/v1/uploads/" + "0" * 32, headers={**CAMDEN, **TUS}).status_code == 404
    assert client.head("/api/v1/uploads/not-an-id", headers={**CAMDEN, **TUS}).status_code in (400, 404)


def test_termination(client, blob):
    location = create(client, blob).headers["Location"]
    patch(client, location, 0, blob[:100])
    assert client.delete(location, headers={**CAMDEN, **TUS}).status_code == 204
    assert client.head(location, headers={**CAMDEN, **TUS}).status_code == 404
    done = create(client, blob).headers["Location"]
    patch(client, done, 0, blob)
    r = client.delete(done, headers={**ADMIN, **TUS})
    assert r.status_code == 409 and "evidence" in r.json()["message"]


def test_empty_patch_at_the_end_is_idempotent_for_verified(client, blob):
    location = create(client, blob).headers["Location"]
    patch(client, location, 0, blob)
    r = patch(client, location, len(blob), b"")
    assert r.status_code == 204 and r.headers[CLIP_STATE_HEADER] == "verified"


def test_admin_may_upload_without_a_station(client):
    data = os.urandom(1000)
    location = create(client, data, headers=ADMIN).headers["Location"]
    assert patch(client, location, 0, data, headers=ADMIN).headers[CLIP_STATE_HEADER] == "verified"


def test_a_clip_stored_before_its_commit_failed_is_recorded_by_the_next_patch(client, blob, settings, tmp_path):
    """The blob store took the file, then the commit that records it failed (a full database)."""
    clip_id = str(uuid.uuid4())
    location = create(client, blob, clip_id=clip_id).headers["Location"]
    half = len(blob) // 2
    assert patch(client, location, 0, blob[:half]).status_code == 204
    whole = tmp_path / "whole"
    whole.write_bytes(blob)
    services(client.app).blobs.put(whole, clip_id)
    (Path(settings.data_dir) / "uploads" / f"{location.rsplit('/', 1)[1]}.part").unlink()
    r = patch(client, location, half, blob[half:])  # the station's retry of the last chunk
    assert r.status_code == 204 and r.headers[CLIP_STATE_HEADER] == "verified"
    assert client.get(f"/api/v1/clips/{clip_id}", headers=ADMIN).json()["state"] == "verified"


def test_counted_bytes_that_are_gone_restart_the_upload_at_zero(client, blob, settings):
    """A power cut took the .part file back after its bytes were counted: resend, never refuse."""
    location = create(client, blob).headers["Location"]
    half = len(blob) // 2
    assert patch(client, location, 0, blob[:half]).status_code == 204
    (Path(settings.data_dir) / "uploads" / f"{location.rsplit('/', 1)[1]}.part").unlink()
    r = patch(client, location, half, blob[half:])
    assert r.status_code == 409 and r.json()["error"] == "offset_mismatch"
    assert client.head(location, headers={**CAMDEN, **TUS}).headers["Upload-Offset"] == "0"
    r = patch(client, location, 0, blob)
    assert r.status_code == 204 and r.headers[CLIP_STATE_HEADER] == "verified"


def test_a_zero_byte_clip_is_created_and_verified_in_its_creation(client, settings):
    r = create(client, b"")  # Upload-Length: 0, no body: the whole clip
    assert r.status_code == 201 and r.headers[CLIP_STATE_HEADER] == "verified"
    assert r.headers["Upload-Offset"] == "0"
    head = client.head(r.headers["Location"], headers={**CAMDEN, **TUS})
    assert head.headers[CLIP_STATE_HEADER] == "verified" and head.headers["Upload-Length"] == "0"
    blobs = [p for p in (Path(settings.data_dir) / "blobs").rglob("*") if p.is_file()]
    assert [p.read_bytes() for p in blobs] == [b""]
    again = create(client, b"")  # another empty clip: its own upload
    assert again.status_code == 201 and again.headers[CLIP_STATE_HEADER] == "verified"


def test_a_zero_byte_clip_with_an_empty_creation_body_is_verified(client):
    r = create_with(client, b"", b"")
    assert r.status_code == 201 and r.headers[CLIP_STATE_HEADER] == "verified"
    assert patch(client, r.headers["Location"], 0, b"").status_code == 204  # the empty PATCH at the end: idempotent


@pytest.mark.parametrize("whole", [False, True])
def test_verifying_a_clip_records_the_cameras_last_upload_at_once(client, whole):
    """Central's own verification time, in the verifying commit: the station's later report of
    the upload (``clip_verified``) is not needed for it."""
    client.post("/api/v1/devices/", headers=ADMIN, json=[{"serial": "BWV-000123", "borough": "Camden"}])
    data, clip_id = os.urandom(5000), str(uuid.uuid4())
    if whole:
        assert create_with(client, data, data, clip_id).headers[CLIP_STATE_HEADER] == "verified"
    else:
        location = create(client, data, clip_id=clip_id).headers["Location"]
        assert patch(client, location, 0, data).headers[CLIP_STATE_HEADER] == "verified"
    verified_at = client.get(f"/api/v1/clips/{clip_id}", headers=ADMIN).json()["verified_at"]
    device = client.get("/api/v1/devices/BWV-000123", headers=ADMIN).json()["device"]
    assert verified_at is not None and device["last_upload_at"] == verified_at


@pytest.mark.parametrize("whole", [False, True])
def test_a_stations_upload_of_another_boroughs_camera_leaves_that_cameras_last_upload(client, whole):
    """Evidence is kept whoever's camera it is, but a Camden station's upload naming a Barnet
    camera writes nothing to Barnet's fleet data (a stolen token cannot freshen another
    borough's cameras)."""
    client.post("/api/v1/devices/", headers=ADMIN, json=[{"serial": "BWV-000123", "borough": "Barnet"}])
    data, clip_id = os.urandom(5000), str(uuid.uuid4())
    if whole:
        assert create_with(client, data, data, clip_id).headers[CLIP_STATE_HEADER] == "verified"
    else:
        location = create(client, data, clip_id=clip_id).headers["Location"]
        assert patch(client, location, 0, data).headers[CLIP_STATE_HEADER] == "verified"
    assert client.get(f"/api/v1/clips/{clip_id}", headers=ADMIN).json()["verified_at"] is not None
    assert client.get("/api/v1/devices/BWV-000123", headers=ADMIN).json()["device"]["last_upload_at"] is None
