"""Firmware releases: only what a release key signed is kept, once, and nothing of a refusal."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central.core.services import build_services
from central.core.store import CentralStore
from central.evidence import audit
from central.firmware import releases as releases_module
from central.firmware.releases import BLOB_PREFIX
from fleet.errors import BadRequest, ConfigError, Conflict, NotFound, PayloadTooLarge
from fleet.firmware import statement_bytes
from tests.central.apps import central_client
from tests.central.conftest import ADMIN, CAMDEN, make_settings
from tests.central.firmware.conftest import LIMIT, MODEL, audit_actions, firmware_settings, sign

ARTIFACT = os.urandom(5000)


def add(services, tmp_path, data: bytes, signature: str, model: str = MODEL, version: str = "1.0.0"):
    path = tmp_path / f"artifact-{hashlib.sha256(data).hexdigest()[:8]}.bin"
    path.write_bytes(data)
    return services.releases.add(
        services.releases.stage_file(path), model=model, version=version, signature=signature, actor="fm"
    )


def stored(services) -> tuple[int, list[str]]:
    """Release rows, and what is left in the staging folder."""
    with services.store.writer.read() as db:
        rows = db.execute("SELECT COUNT(*) FROM firmware_releases").fetchone()[0]
    staging = services.releases.staging_dir
    return rows, sorted(p.name for p in staging.iterdir()) if staging.exists() else []


def test_a_signed_release_is_kept_with_its_hash_and_read_back(services, vendor, tmp_path):
    release, created = add(services, tmp_path, ARTIFACT, sign(vendor, ARTIFACT))
    assert created and release.model == MODEL and release.version == "1.0.0"
    assert release.sha256 == hashlib.sha256(ARTIFACT).hexdigest() and release.size == len(ARTIFACT)
    assert services.blobs.exists(BLOB_PREFIX + release.sha256)
    assert b"".join(services.releases.artifact(release)) == ARTIFACT
    assert services.releases.releases() == [release] == services.releases.releases(MODEL, withdrawn=False)
    assert services.releases.release(release.id) == release
    assert stored(services) == (1, [])
    assert [a[0] for a in audit_actions(services, "firmware_release")] == ["firmware-add"]


@pytest.mark.parametrize(
    "case",
    ["random signature", "another key", "tampered artifact", "another model", "another version", "truncated"],
)
def test_a_release_that_fails_the_check_is_refused_audited_and_nothing_is_stored(services, vendor, tmp_path, case):
    data, signature, model, version = ARTIFACT, sign(vendor, ARTIFACT), MODEL, "1.0.0"
    if case == "random signature":
        signature = base64.b64encode(os.urandom(64)).decode()
    elif case == "another key":
        signature = sign(Ed25519PrivateKey.generate(), ARTIFACT)
    elif case == "tampered artifact":
        data = bytes([ARTIFACT[0] ^ 1]) + ARTIFACT[1:]
    elif case == "another model":
        model = "Axon Body 3"
    elif case == "another version":
        version = "1.0.1"
    else:
        data = ARTIFACT[:-1]
    with pytest.raises(BadRequest, match="does not verify under any of central's 1 release key"):
        add(services, tmp_path, data, signature, model, version)
    assert stored(services) == (0, [])
    assert not services.blobs.exists(BLOB_PREFIX + hashlib.sha256(data).hexdigest())
    [(action, object_id, detail)] = audit_actions(services, "firmware_release")
    assert action == "firmware-refused" and object_id == f"{model} {version}" and "no release key" in detail


@pytest.mark.parametrize(
    ("signature", "message"),
    [("not base64!", "not base64"), (base64.b64encode(b"short").decode(), "64 bytes; this one is 5")],
)
def test_an_unreadable_signature_is_a_clear_400(services, tmp_path, signature, message):
    with pytest.raises(BadRequest, match=message):
        add(services, tmp_path, ARTIFACT, signature)
    assert stored(services) == (0, [])
    assert audit_actions(services, "firmware_release")[0][0] == "firmware-refused"


@pytest.mark.parametrize(
    ("model", "version", "message"),
    [("", "1", "model '' is not valid"), ("Axon\nBody", "1", "model"), (MODEL, "1.0 beta", "version")],
)
def test_a_model_or_version_out_of_shape_is_refused(services, vendor, tmp_path, model, version, message):
    with pytest.raises(BadRequest, match=message):
        add(services, tmp_path, ARTIFACT, sign(vendor, ARTIFACT), model, version)
    assert stored(services) == (0, [])


def test_without_release_keys_every_release_is_refused(tmp_path, vendor):
    settings = firmware_settings(tmp_path / "central", None)
    store = CentralStore.open(settings)
    try:
        services = build_services(settings, store)
        with pytest.raises(Conflict, match="no \\[firmware\\] release_keys"):
            add(services, tmp_path, ARTIFACT, sign(vendor, ARTIFACT))
        assert stored(services) == (0, [])
    finally:
        store.close()


def test_a_key_bound_to_a_vendors_models_signs_only_for_those(tmp_path, vendor):
    from fleet.firmware import key_fingerprint, public_key_hex

    other = Ed25519PrivateKey.generate()  # another vendor's TEST key, with no limit
    settings = make_settings(
        tmp_path / "central",
        firmware={
            "release_keys": [
                {"key": public_key_hex(vendor.public_key()), "models": [MODEL, "Axon Body 3"]},
                public_key_hex(other.public_key()),
            ],
            "max_artifact_bytes": LIMIT,
        },
    )
    store = CentralStore.open(settings)
    try:
        services = build_services(settings, store)
        release, created = add(services, tmp_path, ARTIFACT, sign(vendor, ARTIFACT))
        assert created and release.signed_by == key_fingerprint(vendor.public_key())
        foreign = ARTIFACT[::-1]
        with pytest.raises(
            BadRequest, match=r"which may sign only for Axon Body 2, Axon Body 3, not for Motorola V300"
        ):
            add(services, tmp_path, foreign, sign(vendor, foreign, model="Motorola V300"), model="Motorola V300")
        assert stored(services) == (1, [])
        assert not services.blobs.exists(BLOB_PREFIX + hashlib.sha256(foreign).hexdigest())
        refused = [a for a in audit_actions(services, "firmware_release") if a[0] == "firmware-refused"]
        assert refused == [
            (
                "firmware-refused",
                "Motorola V300 1.0.0",
                f"signed by release key {key_fingerprint(vendor.public_key())}, not one for Motorola V300; "
                f"sha256 {hashlib.sha256(foreign).hexdigest()}, {len(foreign)} bytes",
            )
        ]
        # A plain key still signs for any model.
        _, created = add(
            services, tmp_path, foreign, sign(other, foreign, model="Motorola V300"), model="Motorola V300"
        )
        assert created
    finally:
        store.close()


def test_an_artifact_over_the_limit_is_refused_and_leaves_nothing(services, vendor, tmp_path):
    big = os.urandom(LIMIT + 1)
    with pytest.raises(PayloadTooLarge, match="max_artifact_bytes"):
        add(services, tmp_path, big, sign(vendor, big))
    assert stored(services) == (0, [])
    with pytest.raises(BadRequest, match="empty"):
        add(services, tmp_path, b"", sign(vendor, b""))


def test_the_same_release_again_is_the_same_release_and_other_bytes_are_a_conflict(services, vendor, tmp_path):
    first, created = add(services, tmp_path, ARTIFACT, sign(vendor, ARTIFACT))
    again, created_again = add(services, tmp_path, ARTIFACT, sign(vendor, ARTIFACT))
    assert created and not created_again and again == first
    other = os.urandom(100)
    with pytest.raises(Conflict, match=r"already Axon Body 2 1\.0\.0, with other bytes"):
        add(services, tmp_path, other, sign(vendor, other))
    assert stored(services) == (1, [])
    # the same bytes for another model are another release, sharing the blob
    shared, created = add(services, tmp_path, ARTIFACT, sign(vendor, ARTIFACT, model="Axon Body 3"), "Axon Body 3")
    assert created and shared.sha256 == first.sha256 and shared.id != first.id


def test_a_crash_between_the_blob_and_the_commit_leaves_an_orphan_the_retry_adopts(
    services, vendor, tmp_path, monkeypatch
):
    def crash(*_args, **_kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr(audit, "record", crash)
    with pytest.raises(RuntimeError):
        add(services, tmp_path, ARTIFACT, sign(vendor, ARTIFACT))
    monkeypatch.undo()
    key = BLOB_PREFIX + hashlib.sha256(ARTIFACT).hexdigest()
    assert stored(services) == (0, []) and services.blobs.exists(key)  # an orphan blob, never a row without one
    release, created = add(services, tmp_path, ARTIFACT, sign(vendor, ARTIFACT))
    assert created and b"".join(services.releases.artifact(release)) == ARTIFACT


def test_withdrawing_marks_audits_and_keeps_the_artifact(services, vendor, tmp_path):
    release, _ = add(services, tmp_path, ARTIFACT, sign(vendor, ARTIFACT))
    withdrawn = services.releases.withdraw(release.id, "bricks cameras on low battery", "fm")
    assert withdrawn.withdrawn_at and withdrawn.withdrawn_by == "fm"
    assert withdrawn.withdrawn_reason == "bricks cameras on low battery"
    with pytest.raises(Conflict, match="withdrawn already"):
        services.releases.withdraw(release.id, "again", "fm")
    with pytest.raises(BadRequest, match="needs a reason"):
        services.releases.withdraw(release.id, " ", "fm")
    with pytest.raises(NotFound):
        services.releases.withdraw(999, "x", "fm")
    assert services.releases.releases(withdrawn=True) == [withdrawn]
    assert services.releases.releases(withdrawn=False) == []
    assert b"".join(services.releases.artifact(withdrawn)) == ARTIFACT
    assert [a[0] for a in audit_actions(services, "firmware_release")] == ["firmware-add", "firmware-withdraw"]


def test_unfinished_uploads_left_by_a_crash_are_swept(services):
    staging = services.releases.stage()
    staging.write(b"half an artifact")
    stale = services.releases.stage()
    stale.finish()  # its process died; the file stays
    os.utime(stale.path, (time.time() - 7200, time.time() - 7200))
    assert services.releases.sweep_staging() == 1
    assert staging.path.exists() and not stale.path.exists()  # one still being written is left alone
    staging.discard()


def test_the_statement_is_the_sorted_keys_json_a_vendor_makes():
    sha = hashlib.sha256(b"x").hexdigest()
    expected = json.dumps(
        {"format": "bwv-firmware-release/1", "model": MODEL, "sha256": sha, "size": 1, "version": "1.4.3"},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    assert statement_bytes(model=MODEL, version="1.4.3", sha256=sha, size=1) == expected


def test_the_release_routes_end_to_end(tmp_path, vendor):
    """One HTTP pass: add (201, then 200 for the same bytes), refusals in the one error shape, a
    station reads and downloads, a withdrawn artifact is 410 to stations."""
    with central_client(firmware_settings(tmp_path / "central", vendor), raise_server_exceptions=False) as c:
        query = {"model": MODEL, "version": "2.0.0", "signature": sign(vendor, ARTIFACT, version="2.0.0")}
        url = "/api/v1/firmware/releases"
        created = c.post(url, params=query, content=ARTIFACT, headers=ADMIN)
        assert created.status_code == 201, created.text
        release = created.json()
        assert c.post(url, params=query, content=ARTIFACT, headers=ADMIN).status_code == 200
        refused = c.post(url, params={**query, "version": "2.0.1"}, content=ARTIFACT, headers=ADMIN)
        assert refused.status_code == 400 and refused.json()["error"] == "bad_request"
        assert "does not verify" in refused.json()["message"]
        too_big = c.post(url, params=query, content=os.urandom(LIMIT + 1), headers=ADMIN)
        assert too_big.status_code == 413 and too_big.json()["error"] == "payload_too_large"
        missing = c.post(url, params={"model": MODEL}, content=ARTIFACT, headers=ADMIN)
        assert missing.status_code == 400, missing.text
        assert c.post(url, params=query, content=ARTIFACT, headers=CAMDEN).status_code == 403

        assert [r["id"] for r in c.get(url, headers=CAMDEN).json()] == [release["id"]]
        assert c.get(f"{url}/{release['id']}", headers=CAMDEN).json() == release
        assert c.get(f"{url}/999", headers=CAMDEN).status_code == 404
        download = c.get(f"{url}/{release['id']}/artifact", headers=CAMDEN)
        assert download.status_code == 200 and download.content == ARTIFACT
        assert download.headers["fleet-artifact-sha256"] == release["sha256"]

        withdraw = c.post(f"{url}/{release['id']}/withdraw", json={"reason": "recalled"}, headers=ADMIN)
        assert withdraw.status_code == 200 and withdraw.json()["withdrawn_reason"] == "recalled"
        assert c.post(f"{url}/{release['id']}/withdraw", json={"reason": "x"}, headers=ADMIN).status_code == 409
        assert c.post(f"{url}/{release['id']}/withdraw", json={}, headers=ADMIN).status_code == 400
        gone = c.get(f"{url}/{release['id']}/artifact", headers=CAMDEN)
        assert gone.status_code == 410 and gone.json()["error"] == "gone"
        assert c.get(f"{url}/{release['id']}/artifact", headers=ADMIN).content == ARTIFACT
        assert [r["id"] for r in c.get(url, params={"withdrawn": "false"}, headers=CAMDEN).json()] == []


def test_the_blob_keys_of_releases_are_never_a_clips():
    """Retention purges the blobs of clips, named by clip id (a UUID): a release's key cannot be one."""
    key = releases_module.BLOB_PREFIX + hashlib.sha256(b"x").hexdigest()
    assert not all(c in "0123456789abcdef-" for c in key)


# -- attack23: findings (failing tests; production code unchanged) ---------------------------------

SMALL_ORDER_KEYS = [
    "0100000000000000000000000000000000000000000000000000000000000000",  # the identity
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
    "0000000000000000000000000000000000000000000000000000000000000080",  # order 4
    "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
]
OFF_CURVE_KEY = (2).to_bytes(32, "little").hex()  # y = 2: no x makes it a point of the curve


def test_finding1_a_small_order_release_key_lets_no_one_forge_a_release(tmp_path):
    try:
        settings = make_settings(
            tmp_path / "central", firmware={"release_keys": [SMALL_ORDER_KEYS[0]], "max_artifact_bytes": LIMIT}
        )
    except ConfigError:
        return  # refused when the config loads: fixed
    forged = base64.b64encode(bytes.fromhex(SMALL_ORDER_KEYS[0]) + bytes(32)).decode()  # no private key needed
    store = CentralStore.open(settings)
    try:
        services = build_services(settings, store)
        for version in ("6.6.6", "6.6.7"):  # the same forged signature, any statement
            with pytest.raises(BadRequest):
                add(services, tmp_path, b"malicious firmware " + version.encode(), forged, MODEL, version)
    finally:
        store.close()


@pytest.mark.parametrize("key", [*SMALL_ORDER_KEYS, OFF_CURVE_KEY])
def test_finding1_a_release_key_of_small_order_or_off_the_curve_stops_the_config(tmp_path, key):
    with pytest.raises(ConfigError, match=r"\[firmware\] release_keys\[0\]"):
        make_settings(tmp_path / "central", firmware={"release_keys": [key]})


def test_finding2_notes_a_database_cannot_keep_are_refused_before_anything_is_stored(tmp_path, vendor):
    with central_client(firmware_settings(tmp_path / "central", vendor), raise_server_exceptions=False) as c:
        query = {"model": MODEL, "version": "3.0.0", "signature": sign(vendor, ARTIFACT, version="3.0.0")}
        query["notes"] = "fixes\x00"
        answer = c.post("/api/v1/firmware/releases", params=query, content=ARTIFACT, headers=ADMIN)
        assert answer.status_code == 400, answer.text
        blobs = tmp_path / "central" / "blobs"
        assert not any(p.name.startswith(BLOB_PREFIX) for p in blobs.rglob("*")), "an orphan blob was left"


@pytest.mark.slow  # 1-2 s: the whole suite runs it, the quick lane stays under 2 minutes
def test_an_upload_that_stalls_is_ended_and_leaves_nothing(tmp_path, vendor):
    """Through a real server: the head and half the artifact, then nothing. Central ends the
    request after ``[limits] body_idle_timeout_s`` (as a tus body), keeps no staging file and
    stores nothing, rather than holding the upload open for as long as the client likes."""
    import socket
    from urllib.parse import urlencode

    from tests.central.serving import serving

    settings = msgspec.structs.replace(
        firmware_settings(tmp_path / "central", vendor),
        limits=msgspec.structs.replace(make_settings(tmp_path / "central").limits, body_idle_timeout_s=0.5),
    )
    query = urlencode({"model": MODEL, "version": "4.0.0", "signature": sign(vendor, ARTIFACT, version="4.0.0")})
    with serving(settings) as port, socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"POST /api/v1/firmware/releases?{query} HTTP/1.1\r\nHost: central\r\n"
            f"Authorization: {ADMIN['Authorization']}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {len(ARTIFACT)}\r\n\r\n".encode()
            + ARTIFACT[: len(ARTIFACT) // 2]
        )
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            more = sock.recv(65536)  # the socket's own timeout is the deadline
            assert more, "central closed the connection before its whole answer"
            answer += more
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"did not arrive whole" in answer and b"nothing was stored" in answer, answer[-300:]
    staging = tmp_path / "central" / releases_module.STAGING
    assert not list(staging.glob("*.part")), "a staging file was left"
    store = CentralStore.open(settings)
    try:
        with store.writer.read() as db:
            assert db.execute("SELECT count(*) FROM firmware_releases").fetchone()[0] == 0
    finally:
        store.close()


def _length(answer: bytes) -> int:
    """The Content-Length of an answer's head (0 until the head is in)."""
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
    found = re.search(r"^content-length: *(\d+)", head, re.M)
    return int(found.group(1)) if found else 0


def test_an_artifact_is_served_in_ranges_so_a_station_resumes_a_cut_download(tmp_path, vendor):
    """206 with Content-Range for one range (from an offset, a span, a suffix); 416 naming the size for a
    range outside the artifact or one this server does not read; the whole artifact without Range."""
    with central_client(firmware_settings(tmp_path / "central", vendor), raise_server_exceptions=False) as c:
        query = {"model": MODEL, "version": "2.0.0", "signature": sign(vendor, ARTIFACT, version="2.0.0")}
        release = c.post("/api/v1/firmware/releases", params=query, content=ARTIFACT, headers=ADMIN).json()
        url = f"/api/v1/firmware/releases/{release['id']}/artifact"
        size = len(ARTIFACT)

        whole = c.get(url, headers=CAMDEN)
        assert whole.status_code == 200 and whole.content == ARTIFACT
        assert whole.headers["accept-ranges"] == "bytes" and "content-range" not in whole.headers
        for header, (start, end) in {
            "bytes=1234-": (1234, size),
            "bytes=10-19": (10, 20),
            "bytes=-100": (size - 100, size),
            f"bytes=4990-{size + 50}": (4990, size),
        }.items():
            part = c.get(url, headers={**CAMDEN, "Range": header})
            assert part.status_code == 206, (header, part.text)
            assert part.content == ARTIFACT[start:end], header
            assert part.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"
            assert part.headers["content-length"] == str(end - start)
            assert part.headers["fleet-artifact-sha256"] == release["sha256"]
        for header in (f"bytes={size}-", "bytes=20-10", "bytes=0-1, 5-6", "items=0-1"):
            refused = c.get(url, headers={**CAMDEN, "Range": header})
            assert refused.status_code == 416, (header, refused.text)
            assert refused.json()["error"] == "range_not_satisfiable"
            assert refused.headers["content-range"] == f"bytes */{size}"
