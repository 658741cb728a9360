"""Attacks on the station's artifact downloads (docs/firmware.md): a central (or a network) that lies
about ranges and bytes, offers that would fill the station's disk, and kills at every step of a
download. Nothing but the signed bytes is ever kept, and nothing else is left."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil

import httpx
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.events import CameraUpdate, CameraUpdateRelease
from fleet.firmware import TrustedKey, statement_bytes
from station.sync import artifacts as artifacts_module
from station.sync.artifacts import ArtifactFetcher, artifact_path
from station.sync.changes import FeedFollower
from tests.station.conftest import FAST

MODEL = "Axon Body 2"
ARTIFACT = os.urandom(200_000)
SHA = hashlib.sha256(ARTIFACT).hexdigest()


@pytest.fixture
def vendor() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()  # a TEST key, made for this test alone


def signed(vendor, data: bytes = ARTIFACT, model: str = MODEL) -> CameraUpdateRelease:
    sha = hashlib.sha256(data).hexdigest()
    statement = statement_bytes(model=model, version="1.4.3", sha256=sha, size=len(data))
    return CameraUpdateRelease(
        id=7,
        model=model,
        version="1.4.3",
        sha256=sha,
        size=len(data),
        signature=base64.b64encode(vendor.sign(statement)).decode(),
    )


def offer(store, release) -> None:
    store.mirror.apply([CameraUpdate(serial="BWV-000123", deployment_id=12, release=release)], cursor=1)


class Hostile:
    """A central that answers the artifact route as ``answer(range_header)`` says."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.ranges: list[str | None] = []

    def client(self) -> httpx.Client:
        def handle(request: httpx.Request) -> httpx.Response:
            self.ranges.append(request.headers.get("range"))
            return self.answer(request.headers.get("range"))

        return httpx.Client(base_url="http://central.local", transport=httpx.MockTransport(handle))


def ranged(have: int, body: bytes, content_range: str | None = None, status: int = 206) -> httpx.Response:
    headers = {"Fleet-Artifact-Sha256": SHA}
    if content_range is not None:
        headers["Content-Range"] = content_range
    return httpx.Response(status, headers=headers, content=body)


def folder_files(store) -> list[str]:
    folder = store.data_dir / "firmware"
    return sorted(os.listdir(folder)) if folder.exists() else []


def resume_from(store, have: int) -> None:
    folder = store.data_dir / "firmware"
    folder.mkdir(exist_ok=True)
    (folder / f"{SHA}.part").write_bytes(ARTIFACT[:have])


@pytest.mark.parametrize(
    "lie",
    [
        "206 naming another start",
        "206 with the right start, other bytes",
        "206 with more bytes than the release",
        "endless body",
        "another sha256 header",
        "200 with other bytes",
    ],
)
def test_a_central_that_lies_about_ranges_or_bytes_never_gets_them_kept(store, vendor, lie):
    resume_from(store, 50_000)

    def answer(header):
        if lie == "206 naming another start":
            return ranged(0, ARTIFACT, f"bytes 0-{len(ARTIFACT) - 1}/{len(ARTIFACT)}")
        if lie == "206 with the right start, other bytes":
            return ranged(0, os.urandom(150_000), f"bytes 50000-199999/{len(ARTIFACT)}")
        if lie == "206 with more bytes than the release":
            return ranged(0, ARTIFACT[50_000:] + b"tail", f"bytes 50000-199999/{len(ARTIFACT)}")
        if lie == "endless body":

            def forever():
                while True:
                    yield b"\0" * 65536

            return httpx.Response(
                206, headers={"Content-Range": f"bytes 50000-199999/{len(ARTIFACT)}"}, content=forever()
            )
        if lie == "another sha256 header":
            return httpx.Response(200, headers={"Fleet-Artifact-Sha256": "0" * 64}, content=ARTIFACT)
        return httpx.Response(200, content=os.urandom(len(ARTIFACT)))

    offer(store, signed(vendor))
    fetcher = ArtifactFetcher(Hostile(answer).client(), store, FAST, [TrustedKey(vendor.public_key())])
    for _ in range(3):  # pass after pass: never kept, never more than the release's size on disk
        report = fetcher.run_once(force=True)
        assert report.verified == [] and SHA in report.failed, report
        assert not artifact_path(store, SHA).exists()
        for name in folder_files(store):
            assert (store.data_dir / "firmware" / name).stat().st_size <= len(ARTIFACT)
        if lie != "206 naming another start":  # refused bytes are deleted; a range refused keeps its part
            assert folder_files(store) == [], lie
    assert store.updates.artifact(SHA).state == "failed"


def test_a_whole_body_answered_to_a_resume_is_taken_from_its_start(store, vendor):
    resume_from(store, 50_000)
    offer(store, signed(vendor))
    hostile = Hostile(lambda header: httpx.Response(200, headers={"Fleet-Artifact-Sha256": SHA}, content=ARTIFACT))
    fetcher = ArtifactFetcher(hostile.client(), store, FAST, [TrustedKey(vendor.public_key())])
    assert fetcher.run_once().verified == [SHA] and hostile.ranges == ["bytes=50000-"]
    assert artifact_path(store, SHA).read_bytes() == ARTIFACT and folder_files(store) == [SHA]


def test_a_release_validly_signed_for_another_model_is_kept_but_only_as_that_models(store, vendor):
    """Central may offer a camera another model's release (its signature holds): the fetcher keeps the
    bytes (they are what was signed), and the dock's model gate keeps them from the camera
    (tests/station/test_updates.py)."""
    release = signed(vendor, model="Axon Body 3")
    offer(store, release)
    hostile = Hostile(lambda header: httpx.Response(200, headers={"Fleet-Artifact-Sha256": SHA}, content=ARTIFACT))
    fetcher = ArtifactFetcher(hostile.client(), store, FAST, [TrustedKey(vendor.public_key())])
    assert fetcher.run_once().verified == [SHA]


@pytest.mark.parametrize(
    "field",
    [{"min_charge_pct": 1000}, {"min_charge_pct": -1}, {"attempt": 0}, {"attempt": 10**6}, {"deployment_id": 0}],
)
def test_an_offer_out_of_range_is_skipped_and_the_feed_goes_on(store, field):
    item = {"kind": "camera_update", "serial": "BWV-000123", "deployment_id": 12, "profile": {"audio": True}, **field}
    page = {"changes": [{"cursor": 5, "item": item}], "cursor": 5}
    client = httpx.Client(
        base_url="http://central.local",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=msgspec.json.encode(page))),
    )
    FeedFollower(client, store.mirror, FAST, wait_s=0).poll_once()
    assert store.updates.offer("BWV-000123") is None and store.mirror.cursor() == 5


def test_offers_that_would_cut_into_the_stations_reserve_are_not_downloaded(store, vendor):
    """Clips are footage: a download that would leave less than ``min_free_bytes`` free waits."""
    offer(store, signed(vendor))
    hostile = Hostile(lambda header: httpx.Response(200, headers={"Fleet-Artifact-Sha256": SHA}, content=ARTIFACT))
    # The disk's whole size: no download can leave that much free, however much other processes free meanwhile.
    whole = shutil.disk_usage(store.data_dir).total
    fetcher = ArtifactFetcher(hostile.client(), store, FAST, [TrustedKey(vendor.public_key())], reserve_bytes=whole)
    report = fetcher.run_once()
    assert "room" in report.failed[SHA] and hostile.ranges == [] and folder_files(store) == []
    fetcher.reserve_bytes = 0
    assert fetcher.run_once(force=True).verified == [SHA]


@pytest.mark.parametrize("kill_at", ["the rename", "the folder's fsync", "the record"])
def test_a_kill_at_each_step_of_a_download_keeps_only_the_checked_artifact_recorded_once(
    store, vendor, monkeypatch, kill_at
):
    offer(store, signed(vendor))
    hostile = Hostile(lambda header: httpx.Response(200, headers={"Fleet-Artifact-Sha256": SHA}, content=ARTIFACT))
    fetcher = ArtifactFetcher(hostile.client(), store, FAST, [TrustedKey(vendor.public_key())])

    def killed(*args, **kwargs):
        raise KeyboardInterrupt(f"killed at {kill_at}")

    target = {
        "the rename": (artifacts_module.os, "replace"),
        "the folder's fsync": (artifacts_module, "fsync_dir"),
        "the record": (store.updates, "artifact_verified"),
    }[kill_at]
    monkeypatch.setattr(*target, killed)
    with pytest.raises(KeyboardInterrupt):
        fetcher.run_once()
    monkeypatch.undo()
    restarted = ArtifactFetcher(hostile.client(), store, FAST, [TrustedKey(vendor.public_key())])
    assert restarted.run_once().verified == [SHA]
    assert folder_files(store) == [SHA] and artifact_path(store, SHA).read_bytes() == ARTIFACT
    assert len(hostile.ranges) == 1  # the bytes that arrived were kept: not fetched again
    assert restarted.run_once().verified == []
