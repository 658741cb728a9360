"""The S3 blob store on a local moto server: multipart for big clips, what the bucket stored checked
before "verified", nothing half-written ever visible, config and start-up errors, through central."""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from litestar.testing import TestClient

from central.core.app import create_app
from central.core.providers import services
from central.core.services import build_services
from central.core.store import CentralStore
from central.uploads.blobstore_s3 import S3BlobStore
from fleet.cli import main
from fleet.config import CentralSettings, settings_from_dict
from fleet.errors import BlobStoreUnavailable, ConfigError
from fleet.protocol import CLIP_STATE_HEADER
from tests.central.apps import central_client
from tests.central.conftest import ADMIN, CAMDEN, TUS, create, make_settings, patch
from tests.central.evidence.test_retention import RULES, T0, _toml, put_clip, state
from tests.support.s3server import blob_settings, s3_settings

MiB = 1 << 20
BIG = 11 * MiB + 7  # three parts of 5 MiB, 5 MiB and the rest


@pytest.fixture
def s3():
    store = S3BlobStore(blob_settings())
    store.check()
    return store


def objects(store: S3BlobStore) -> list[str]:
    return [o["Key"] for o in store.client.list_objects_v2(Bucket=store.bucket).get("Contents", [])]


def unfinished(store: S3BlobStore) -> list[str]:
    return [u["Key"] for u in store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])]


@contextmanager
def on_request(store: S3BlobStore, operation: str, action):
    """Run ``action(params)`` on each ``operation`` request before it is sent (to break or corrupt it)."""
    event = f"before-parameter-build.s3.{operation}"
    handler = lambda params, **_: action(params)  # noqa: E731
    store.client.meta.events.register(event, handler)
    try:
        yield
    finally:
        store.client.meta.events.unregister(event, handler)


def network_down(params):
    raise EndpointConnectionError(endpoint_url="injected")


def network_down_at_part(number: int):
    def action(params):
        if params["PartNumber"] == number:
            network_down(params)

    return action


def flip_first_byte(params):
    params["Body"] = bytes([params["Body"][0] ^ 1]) + params["Body"][1:]


def multipart_etag(data: bytes, part: int = 5 * MiB) -> str:
    """S3's ETag of a multipart object: the MD5 of the parts' MD5s, then ``-<parts>``."""
    md5s = [hashlib.md5(data[at : at + part]).digest() for at in range(0, len(data), part)]
    return f'"{hashlib.md5(b"".join(md5s)).hexdigest()}-{len(md5s)}"'


def source(tmp_path, data: bytes):
    path = tmp_path / "clip.part"
    path.write_bytes(data)
    return path


# -- the store on its own ------------------------------------------------------------------------


def test_a_big_clip_goes_up_in_parts_with_its_sha256_and_checks_out(s3, tmp_path):
    data = os.urandom(BIG)
    s3.put(source(tmp_path, data), "big", hashlib.sha256(data).hexdigest())
    head = s3.client.head_object(Bucket=s3.bucket, Key="big")
    assert head["ETag"] == multipart_etag(data) and head["ETag"].endswith('-3"')
    assert head["Metadata"] == {"sha256": hashlib.sha256(data).hexdigest()}
    assert b"".join(s3.read("big", 5 * MiB - 3, 5 * MiB + 3)) == data[5 * MiB - 3 : 5 * MiB + 3]  # across parts
    assert unfinished(s3) == []


def test_a_small_clip_is_one_put(s3, tmp_path):
    data = os.urandom(1000)
    s3.put(source(tmp_path, data), "small")
    assert s3.client.head_object(Bucket=s3.bucket, Key="small")["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'


def test_parts_grow_so_a_clip_never_needs_more_than_s3_allows(s3, tmp_path, monkeypatch):
    monkeypatch.setattr("central.uploads.blobstore_s3.MAX_PARTS", 2)
    data = os.urandom(BIG)
    s3.put(source(tmp_path, data), "few-parts")
    assert s3.client.head_object(Bucket=s3.bucket, Key="few-parts")["ETag"].endswith('-2"')
    assert b"".join(s3.read("few-parts")) == data


@pytest.mark.parametrize("size", [1000, BIG])
def test_a_put_again_of_a_blob_larger_than_s3_copies_at_once_is_refreshed_part_by_part(s3, tmp_path, monkeypatch, size):
    """The same bytes put again refresh the object's time by copying it onto itself; S3 refuses a
    CopyObject of more than 5 GiB (a clip may be 64), so a larger one is copied in parts."""
    data = os.urandom(size)
    sha = hashlib.sha256(data).hexdigest()
    s3.put(source(tmp_path, data), "large", sha)
    monkeypatch.setattr("central.uploads.blobstore_s3.COPY_MAX_BYTES", size - 1)  # this one is "over 5 GiB"
    real_call = s3._call

    def call(operation, key=None, **params):
        if operation == "copy_object":
            raise BlobStoreUnavailable("blob store: copy_object large failed: InvalidRequest: source too large")
        return real_call(operation, key, **params)

    monkeypatch.setattr(s3, "_call", call)
    s3.put(source(tmp_path, data), "large", sha)
    assert b"".join(s3.read("large")) == data and unfinished(s3) == []
    assert s3.client.head_object(Bucket=s3.bucket, Key="large")["Metadata"] == {"sha256": sha}


def test_a_failure_mid_multipart_leaves_nothing_visible_and_a_retry_succeeds(s3, tmp_path):
    data = os.urandom(BIG)
    path = source(tmp_path, data)
    with on_request(s3, "UploadPart", network_down_at_part(2)), pytest.raises(BlobStoreUnavailable):
        s3.put(path, "clip", hashlib.sha256(data).hexdigest())
    assert not s3.exists("clip") and objects(s3) == [] and unfinished(s3) == []  # aborted
    assert path.read_bytes() == data  # the received file is kept for the retry
    s3.put(path, "clip", hashlib.sha256(data).hexdigest())
    assert b"".join(s3.read("clip")) == data and not path.exists()


@pytest.mark.parametrize("size, operation", [(1000, "PutObject"), (BIG, "UploadPart")])
def test_bytes_stored_other_than_those_sent_are_never_kept(s3, tmp_path, size, operation):
    """moto, like a faulty server, stores a damaged body despite its Content-MD5: the ETag tells."""
    data = os.urandom(size)
    path = source(tmp_path, data)
    with on_request(s3, operation, flip_first_byte), pytest.raises(BlobStoreUnavailable, match="ETag"):
        s3.put(path, "damaged", hashlib.sha256(data).hexdigest())
    assert objects(s3) == [] and unfinished(s3) == [] and path.exists()


@pytest.mark.parametrize("size", [1000, BIG])
def test_a_received_file_that_no_longer_matches_its_sha256_is_not_stored(s3, tmp_path, size):
    with pytest.raises(BlobStoreUnavailable, match="not the verified"):
        s3.put(source(tmp_path, os.urandom(size)), "changed", "0" * 64)
    assert objects(s3) == [] and unfinished(s3) == []


def test_delete_many_sends_batches(s3, tmp_path, monkeypatch):
    monkeypatch.setattr("central.uploads.blobstore_s3.DELETE_BATCH", 2)
    keys = [f"k{i}" for i in range(5)]
    for key in keys:
        s3.put(source(tmp_path, key.encode()), key)
    batches = []
    with on_request(s3, "DeleteObjects", lambda params: batches.append(len(params["Delete"]["Objects"]))):
        s3.delete_many(keys)
    assert batches == [2, 2, 1] and objects(s3) == []


def test_a_prefix_keeps_clips_under_it(tmp_path):
    store = S3BlobStore(blob_settings(prefix="bwv/central/"))
    store.check()
    store.put(source(tmp_path, b"abc"), "clip")
    assert objects(store) == ["bwv/central/clip"] and store.exists("clip") and store.size("clip") == 3
    store.delete_many(["clip"])
    assert objects(store) == []


def test_start_up_aborts_the_multipart_uploads_a_crash_left_when_uploads_are_not_staged():
    s3 = S3BlobStore(blob_settings(stage_uploads=False))
    s3.check()
    s3.client.create_multipart_upload(Bucket=s3.bucket, Key="crashed")
    assert unfinished(s3) == ["crashed"]
    s3.check()
    assert unfinished(s3) == []


@pytest.mark.parametrize("store", ["ignores it", "refuses it"])
def test_a_store_without_conditional_writes_is_refused_at_start_up_and_the_check_leaves_nothing(s3, monkeypatch, store):
    """A blob is never replaced only because S3 writes where the key holds nothing (If-None-Match):
    an S3-compatible store that ignores the header would let a second copy replace the first
    silently, one that refuses it would answer every upload 503. Central does not start on either."""
    s3.check()
    assert objects(s3) == []
    real_put = s3.client.put_object

    def put_object(**params):
        if params.pop("IfNoneMatch", None) is not None and store == "refuses it":
            error = {"Error": {"Code": "NotImplemented", "Message": "If-None-Match"}}
            raise ClientError({**error, "ResponseMetadata": {"HTTPStatusCode": 501}}, "PutObject")
        return real_put(**params)

    monkeypatch.setattr(s3.client, "put_object", put_object)
    with pytest.raises(ConfigError, match="If-None-Match"):
        s3.check()
    assert objects(s3) == []


def test_a_store_that_cannot_be_reached_is_unavailable_not_a_crash(s3):
    with on_request(s3, "HeadObject", network_down), pytest.raises(BlobStoreUnavailable, match="head_object"):
        s3.exists("clip")


# -- configuration and start-up -----------------------------------------------------------------


def central_settings(tmp_path, **blobs) -> CentralSettings:
    return settings_from_dict({"data_dir": str(tmp_path), "admin_token": "t", "blobs": blobs}, CentralSettings)


@pytest.mark.parametrize(
    "blobs, message",
    [
        ({"backend": "s3"}, 'backend = "s3" needs bucket'),
        ({"bucket": "clips"}, 'bucket only apply to backend = "s3"'),
        ({"backend": "s3", "bucket": "clips", "access_key_id": "AKIA"}, "give access_key_id and secret_access_key"),
        (
            {"backend": "s3", "bucket": "clips", "secret_access_key_env": "NO_SUCH_VARIABLE_SET"},
            "$NO_SUCH_VARIABLE_SET",
        ),
        ({"backend": "s3", "bucket": "Bad_Bucket"}, "$.blobs.bucket"),
        ({"backend": "s3", "bucket": "clips", "part_bytes": 1 << 20}, "$.blobs.part_bytes"),
        ({"backend": "nfs"}, "$.blobs.backend"),
    ],
)
def test_bad_blob_settings_are_one_clear_error(tmp_path, blobs, message):
    with pytest.raises(ConfigError) as caught:
        central_settings(tmp_path, **blobs)
    assert message in str(caught.value)


def test_the_secret_comes_from_the_environment_and_is_audited_only_as_a_hash(tmp_path, monkeypatch):
    from central.evidence import audit

    monkeypatch.setenv("BWV_S3_SECRET", "s3-secret-value")
    settings = central_settings(
        tmp_path, backend="s3", bucket="clips", access_key_id="AKIA", secret_access_key_env="BWV_S3_SECRET"
    )
    assert settings.blobs.secret_access_key == "s3-secret-value"
    seen = audit._without_secrets(msgspec.to_builtins(settings))
    secret = seen["blobs.secret_access_key"]
    assert isinstance(secret, str) and secret.startswith("sha256:") and "s3-secret-value" not in str(seen)


def test_a_database_url_that_libpq_cannot_read_is_refused_without_repeating_it(tmp_path):
    from fleet.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        settings_from_dict(
            {
                "data_dir": str(tmp_path),
                "admin_token": "t",
                "database": {"url": "postgresql://fleet:Sup3r%zzSecret@db/x"},
            },
            CentralSettings,
        )
    assert "Sup3r" not in str(refused.value) and "percent-encoding" in str(refused.value)


def test_the_database_urls_password_is_never_audited(tmp_path):
    from central.evidence import audit

    url = "postgresql://fleet:pg-secret-value@db.internal:5432/fleet"
    settings = central_settings(tmp_path, backend="filesystem")
    settings.database.url = url
    seen = audit._without_secrets(msgspec.to_builtins(settings))
    assert "pg-secret-value" not in str(seen) and "sha256" not in str(seen["database.url"])
    assert seen["database.url"] == "user=fleet dbname=fleet host=db.internal port=5432"


def write_config(tmp_path, blobs: dict) -> str:
    lines = [f'data_dir = "{tmp_path / "central"}"', 'admin_token = "t"', "[blobs]"]
    lines += [f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}" for k, v in blobs.items()]
    (tmp_path / "central.toml").write_text("\n".join(lines).replace("'", '"') + "\n")
    return str(tmp_path / "central.toml")


@pytest.mark.parametrize(
    "blobs, message",
    [
        ({"backend": "s3"}, 'backend = "s3" needs bucket'),
        (s3_settings(create_bucket=False), "does not exist: create it, or set create_bucket = true"),
    ],
)
def test_central_serve_refuses_to_start_with_one_line_and_exit_2(tmp_path, capsys, blobs, message):
    assert main(["central", "serve", "--config", write_config(tmp_path, blobs)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fleet: error:") and message in err and "Traceback" not in err and err.count("\n") == 1


def test_the_app_does_not_start_without_its_bucket(tmp_path):
    settings = make_settings(tmp_path / "central", blobs=s3_settings(create_bucket=False))
    # the lifespan's failure, as Litestar's TestClient raises it
    with pytest.raises(ExceptionGroup) as caught, TestClient(create_app(settings)):
        pass
    assert caught.group_contains(ConfigError, match="does not exist")


# -- through central ----------------------------------------------------------------------------


@pytest.fixture(params=[True, False], ids=["staged", "in-files"])
def central(tmp_path, request):
    """Central on the bucket, uploads in progress staged in it or in .part files."""
    settings = make_settings(tmp_path / "central", blobs=s3_settings(stage_uploads=request.param))
    with central_client(settings, raise_server_exceptions=False) as client:
        yield client, services(client.app).blobs, settings


def send(client, data: bytes, chunk: int = 4 * MiB):
    location = create(client, data).headers["Location"]
    for offset in range(0, len(data), chunk):
        r = patch(client, location, offset, data[offset : offset + chunk])
    return location, r


def clip_id_of(client, location: str) -> str:
    from fleet.protocol import decode_upload_metadata

    return str(
        decode_upload_metadata(client.head(location, headers={**CAMDEN, **TUS}).headers["Upload-Metadata"]).clip_id
    )


def test_a_clip_sent_over_tus_is_verified_in_the_bucket_and_read_back_with_a_range(central):
    client, blobs, settings = central
    data = os.urandom(BIG)
    location, last = send(client, data)
    assert last.status_code == 204 and last.headers[CLIP_STATE_HEADER] == "verified"
    clip_id = clip_id_of(client, location)
    assert objects(blobs) == [clip_id]
    head = blobs.client.head_object(Bucket=blobs.bucket, Key=clip_id)
    assert head["ETag"] == multipart_etag(data) and head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert not any(p.is_file() for p in (Path(settings.data_dir) / "blobs").rglob("*"))
    assert list((Path(settings.data_dir) / "uploads").iterdir()) == []
    at = 5 * MiB - 10
    r = client.get(f"/api/v1/clips/{clip_id}/content", headers={**ADMIN, "Range": f"bytes={at}-{at + 19}"})
    assert r.status_code == 206 and r.content == data[at : at + 20]
    assert r.headers["Content-Range"] == f"bytes {at}-{at + 19}/{len(data)}"
    whole = client.get(f"/api/v1/clips/{clip_id}/content", headers=ADMIN)
    assert whole.status_code == 200 and hashlib.sha256(whole.content).digest() == hashlib.sha256(data).digest()


def test_a_store_failure_mid_multipart_is_a_503_to_retry_and_never_verified(central):
    client, blobs, settings = central
    data = os.urandom(BIG)
    with on_request(blobs, "UploadPart", network_down_at_part(2)):
        location, last = send(client, data, chunk=len(data))
    assert last.status_code == 503 and last.json()["error"] == "unavailable"
    assert int(last.headers["Retry-After"]) > 0 and CLIP_STATE_HEADER not in last.headers
    head = client.head(location, headers={**CAMDEN, **TUS})
    # In files, every byte was counted before the store failed; staged, none was (no part 2).
    counted = 0 if settings.blobs.stage_uploads else len(data)
    assert head.headers["Upload-Offset"] == str(counted) and head.headers.get(CLIP_STATE_HEADER) != "verified"
    clip_id = clip_id_of(client, location)
    assert client.get(f"/api/v1/clips/{clip_id}", headers=ADMIN).json()["state"] == "receiving"
    assert client.get(f"/api/v1/clips/{clip_id}/content", headers=ADMIN).status_code == 404
    assert objects(blobs) == [] and len(unfinished(blobs)) == (1 if settings.blobs.stage_uploads else 0)
    retry = patch(client, location, counted, data[counted:])  # what a station does next
    assert retry.status_code == 204 and retry.headers[CLIP_STATE_HEADER] == "verified"
    assert client.get(f"/api/v1/clips/{clip_id}/content", headers=ADMIN).content == data


def test_a_clip_stored_just_before_a_crash_is_recorded_at_start_up(tmp_path):
    """Stored in the bucket, then central died before committing: recovery reads it back and records it."""
    settings = make_settings(tmp_path / "central", blobs=s3_settings(stage_uploads=False))
    data = os.urandom(10_000)
    with central_client(settings, raise_server_exceptions=False) as client:
        blobs, receiver = services(client.app).blobs, services(client.app).receiver
        location = create(client, data).headers["Location"]
        upload = receiver.uploads.upload(location.rsplit("/", 1)[-1])
        assert upload is not None and upload.expires_at is not None  # created, still receiving
        part = receiver.part(upload.upload_id)
        part.write_bytes(data)
        receiver.uploads.set_offset(upload.upload_id, len(data), upload.expires_at)
        blobs.put(part, upload.clip_id, upload.sha256)  # the crash: stored, never committed
    with central_client(settings, raise_server_exceptions=False) as client:
        assert client.get(f"/api/v1/clips/{upload.clip_id}", headers=ADMIN).json()["state"] == "verified"
        assert client.get(f"/api/v1/clips/{upload.clip_id}/content", headers=ADMIN).content == data


def test_retention_purges_from_the_bucket(tmp_path):
    (tmp_path / "retention.toml").write_text(_toml(RULES))
    settings = make_settings(
        tmp_path / "central", blobs=s3_settings(), retention={"rules": str(tmp_path / "retention.toml")}
    )
    store = CentralStore.open(settings)
    try:
        blobs = S3BlobStore(settings.blobs)
        blobs.check()
        retention = build_services(settings, store, blobs).retention
        retention.adopt_configured()
        clip = put_clip(store, blobs, T0)
        assert retention.run(T0 + timedelta(days=31, hours=1)).soft_deleted == 1 and blobs.exists(clip)
        assert retention.run(T0 + timedelta(days=38, hours=2)).purged == 1
        assert state(store, clip) == (1, 1) and objects(blobs) == []
    finally:
        store.close()
