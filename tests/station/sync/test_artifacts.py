"""Firmware artifacts down, against the real central app: fetched once, resumed after a cut, kept only
when the station's own release keys and the bytes agree with the release."""

from __future__ import annotations

import base64
import os
from datetime import timedelta

import httpx
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central.core.providers import services
from fleet.config import StationSettings, settings_from_dict
from fleet.errors import ConfigError
from fleet.events import CameraUpdate, CameraUpdateRelease, Snapshot, StationPolicy
from fleet.firmware import TrustedKey, public_key_hex, trusted_keys
from fleet.retry import RetryPolicy
from simulation.camera import SimCamera
from station.node import StationNode
from station.sync import artifacts as artifacts_module
from station.sync.artifacts import ArtifactFetcher, artifact_path
from station.sync.changes import FeedFollower
from tests.central.apps import central_client
from tests.central.conftest import ADMIN
from tests.central.firmware.conftest import MODEL, firmware_settings, sign
from tests.station.conftest import FAST, key_file
from tests.station.sync.conftest import STATION, station_client
from tests.station.test_updates import Station, charged, events

ARTIFACT = os.urandom(300_000)


@pytest.fixture
def vendor() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()  # a TEST key, made for this test alone


@pytest.fixture
def central(tmp_path, vendor):
    """The real central app, holding the vendor's key and one release of ``ARTIFACT``."""
    with central_client(firmware_settings(tmp_path / "central", vendor, max_artifact_bytes=1 << 20)) as c:
        query = {"model": MODEL, "version": "1.4.3", "signature": sign(vendor, ARTIFACT, version="1.4.3")}
        created = c.post("/api/v1/firmware/releases", params=query, content=ARTIFACT, headers=ADMIN)
        assert created.status_code == 201, created.text
        c.release = created.json()  # type: ignore[attr-defined]
        yield c


def release_of(central, **changes) -> CameraUpdateRelease:
    r = central.release
    fields = {k: r[k] for k in ("id", "model", "version", "sha256", "size", "signature")}
    return CameraUpdateRelease(**{**fields, **changes})


def offer(store, release: CameraUpdateRelease, serial: str = "BWV-000123", deployment_id: int = 12) -> None:
    store.mirror.apply([CameraUpdate(serial=serial, deployment_id=deployment_id, release=release)], cursor=1)


class Recording(httpx.BaseTransport):
    """The real app's transport, recording each request's Range; ``cut_after`` ends every body after
    that many bytes with a read error (a link that drops), until it is set back to None."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.ranges: list[str | None] = []
        self.statuses: list[int] = []
        self.cut_after: int | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.ranges.append(request.headers.get("range"))
        response = self.inner.handle_request(request)
        self.statuses.append(response.status_code)
        if self.cut_after is None:
            return response
        body, cut = response.read(), self.cut_after

        class Cut(httpx.SyncByteStream):
            def __iter__(self):
                yield body[:cut]
                raise httpx.ReadError("connection reset by peer")

        return httpx.Response(response.status_code, headers=response.headers, stream=Cut(), request=request)


def fetcher_for(central, store, keys, policy: RetryPolicy = FAST) -> tuple[ArtifactFetcher, Recording]:
    transport = Recording(central._transport)
    client = httpx.Client(base_url="http://central.local", transport=transport, headers=STATION)
    trusted = [k if isinstance(k, TrustedKey) else TrustedKey(k) for k in keys]
    return ArtifactFetcher(client, store, policy, trusted), transport


class _MinuteBackoff(RetryPolicy):
    """Backoff of a minute between passes: the policy's own is fully jittered, and may be a millisecond."""

    def backoff_delay(self, attempt_number: int, exc: BaseException) -> float:
        return 60.0


def test_an_offered_artifact_is_downloaded_once_checked_and_kept(central, store, vendor):
    offer(store, release_of(central))
    offer(store, release_of(central), serial="BWV-000124", deployment_id=12)  # two cameras, one artifact
    fetcher, transport = fetcher_for(central, store, [vendor.public_key()])
    report = fetcher.run_once()
    assert report.verified == [central.release["sha256"]] and not report.failed
    assert artifact_path(store, central.release["sha256"]).read_bytes() == ARTIFACT
    assert store.updates.artifact(central.release["sha256"]).state == "verified"
    assert fetcher.run_once().verified == [] and transport.ranges == [None]  # kept: never fetched again
    assert sorted(p.name for p in fetcher.folder.iterdir()) == [central.release["sha256"]]


def test_a_cut_download_resumes_from_its_part_with_range(central, store, vendor):
    offer(store, release_of(central))
    fetcher, transport = fetcher_for(central, store, [vendor.public_key()])
    transport.cut_after = 50_000  # every answer cut after 50 kB: each quick retry resumes where it stopped
    report = fetcher.run_once()
    sha = central.release["sha256"]
    assert "connection reset" in report.failed[sha]
    part = fetcher.folder / f"{sha}.part"
    assert part.stat().st_size == 150_000  # what came is kept
    assert transport.ranges == [None, "bytes=50000-", "bytes=100000-"]
    assert not artifact_path(store, sha).exists()
    status = store.updates.artifact(sha)
    assert status.state == "failed" and status.failures == 1 and "connection reset" in status.last_error

    transport.cut_after = None  # the link is back: the next pass (forced past its backoff) resumes
    assert fetcher.run_once(force=True).verified == [sha]
    assert transport.ranges[-1] == "bytes=150000-" and transport.statuses[-1] == 206
    assert artifact_path(store, sha).read_bytes() == ARTIFACT and not part.exists()


def test_a_part_left_by_a_restart_is_resumed_and_a_part_longer_than_the_release_is_started_again(
    central, store, vendor
):
    sha = central.release["sha256"]
    offer(store, release_of(central))
    fetcher, transport = fetcher_for(central, store, [vendor.public_key()])
    fetcher.folder.mkdir(exist_ok=True)
    (fetcher.folder / f"{sha}.part").write_bytes(ARTIFACT[:4096])  # a station killed mid-download
    assert fetcher.run_once().verified == [sha] and transport.ranges == ["bytes=4096-"]
    artifact_path(store, sha).unlink()
    (fetcher.folder / f"{sha}.part").write_bytes(ARTIFACT + b"more")
    assert fetcher.run_once().verified == [sha] and transport.ranges[-1] is None
    assert artifact_path(store, sha).read_bytes() == ARTIFACT


def test_bytes_changed_at_central_are_refused_and_deleted(central, store, vendor, tmp_path):
    sha = central.release["sha256"]
    [blob] = (tmp_path / "central").rglob(f"firmware-{sha}")
    blob.write_bytes(ARTIFACT[:-1] + bytes([ARTIFACT[-1] ^ 1]))  # one bit flipped in central's store
    offer(store, release_of(central))
    fetcher, _ = fetcher_for(central, store, [vendor.public_key()])
    report = fetcher.run_once()
    assert "SHA-256" in report.failed[sha] and "deleted" in report.failed[sha]
    assert list(fetcher.folder.iterdir()) == []  # nothing of it kept, not even a part
    assert store.updates.artifact(sha).state == "failed"


@pytest.mark.parametrize(
    "case", ["wrong signature", "key not in the station's list", "key for other models", "no key at all"]
)
def test_a_release_the_stations_keys_do_not_verify_is_never_downloaded(central, store, vendor, case):
    release = release_of(central)
    keys = [vendor.public_key()]
    if case == "wrong signature":
        release = release_of(central, signature=sign(vendor, ARTIFACT, version="9.9.9"))  # signed for another version
    elif case == "key not in the station's list":
        keys = [Ed25519PrivateKey.generate().public_key()]
    elif case == "key for other models":  # the vendor's key, limited to models this release is not for
        keys = [TrustedKey(vendor.public_key(), frozenset({"Another Vendor Cam"}))]
    else:
        keys = []
    offer(store, release)
    fetcher, transport = fetcher_for(central, store, keys)
    report = fetcher.run_once()
    assert "release_keys" in report.failed[release.sha256]
    assert transport.ranges == [] and list(fetcher.folder.iterdir()) == []


def test_a_withdrawn_release_is_a_failure_retried_later_not_a_crash(central, store, vendor):
    offer(store, release_of(central))
    central.post(
        f"/api/v1/firmware/releases/{central.release['id']}/withdraw", json={"reason": "recalled"}, headers=ADMIN
    )
    fetcher, _ = fetcher_for(central, store, [vendor.public_key()], _MinuteBackoff(quick_attempts=1))
    report = fetcher.run_once()
    assert "410" in report.failed[central.release["sha256"]] and "recalled" in report.failed[central.release["sha256"]]
    assert fetcher.run_once().failed == {}  # within its backoff: not asked again


def test_an_artifact_no_offer_names_is_deleted_after_a_day(central, store, vendor, monkeypatch):
    sha = central.release["sha256"]
    offer(store, release_of(central))
    fetcher, _ = fetcher_for(central, store, [vendor.public_key()])
    fetcher.run_once()
    store.mirror.apply([CameraUpdate(serial="BWV-000123", deployment_id=12, active=False)], cursor=2)
    assert fetcher.run_once().deleted == [] and artifact_path(store, sha).exists()  # unnamed since now
    monkeypatch.setattr(artifacts_module, "UNUSED_KEPT", timedelta(0))
    assert fetcher.run_once().deleted == [sha]
    assert not artifact_path(store, sha).exists() and store.updates.artifacts() == []


def camden(tmp_path, **extra) -> dict:
    """A station's settings (before they are checked)."""
    return {
        "station_id": "camden",
        "borough": "Camden",
        "central_url": "http://central.local",
        "token": "camden-test-token",
        "data_dir": str(tmp_path / "data"),
        "dock_dir": str(tmp_path / "dock"),
        "station_key": {"file": key_file(tmp_path)},
        **extra,
    }


def test_the_stations_release_keys_are_checked_when_its_file_loads(tmp_path):
    base = camden(tmp_path)
    key = Ed25519PrivateKey.generate().public_key()
    good = settings_from_dict({**base, "firmware": {"release_keys": [public_key_hex(key)]}}, StationSettings)
    assert trusted_keys(good.firmware.release_keys) == [TrustedKey(key)]
    with pytest.raises(ConfigError, match=r"\[firmware\] release_keys\[0\]: not an Ed25519 public key"):
        settings_from_dict({**base, "firmware": {"release_keys": ["00" * 31]}}, StationSettings)
    b64 = base64.b64encode(bytes.fromhex(public_key_hex(key))).decode()
    with pytest.raises(ConfigError, match=r"release_keys\[1\]: the same key as release_keys\[0\]"):
        settings_from_dict({**base, "firmware": {"release_keys": [public_key_hex(key), b64]}}, StationSettings)


def test_a_station_offline_during_the_deployment_catches_up_through_the_feed(central, store, vendor, dock_dir):
    """The offer was made while the station was away: its next poll brings it, the artifact follows,
    and the camera docked meanwhile is handed the update; its report goes up once it docks again."""

    camera = SimCamera("BWV-000123")
    folder = camera.dock(dock_dir, [], battery=charged(), folder_name="a")
    station = Station(store, dock_dir, [vendor.public_key()])
    station.scan()  # docked and ingested while central was out of reach: nothing to hand over
    assert not (folder / "update").exists()

    app = services(central.app)
    with app.store.writer.write() as db:  # central's side of the deployment, as its feed carries it
        app.changes.emit(db, CameraUpdate(serial="BWV-000123", deployment_id=12, release=release_of(central)), "Camden")
    FeedFollower(station_client(central), store.mirror, FAST, wait_s=0).poll_once()
    assert store.updates.offer("BWV-000123").deployment_id == 12
    fetcher, _ = fetcher_for(central, store, [vendor.public_key()])
    assert fetcher.run_once().verified == [central.release["sha256"]]
    assert station.scan().handed_over == ["a"]
    camera.undock(folder)
    camera.dock(dock_dir, [], battery=charged(), folder_name="b")
    assert station.scan().results == ["b"]
    [result] = events(store, "camera_update_result")
    assert result["ok"] and result["version"] == "1.4.3"


def test_offers_come_with_the_snapshot_after_an_expired_cursor(store):
    """Central answers 410 to a cursor older than its history: the snapshot's offers replace the ones held."""

    store.mirror.apply([CameraUpdate(serial="BWV-000999", deployment_id=3, profile={"audio": False})], cursor=5)
    snapshot = Snapshot(
        cursor=900,
        officers=[],
        devices=[],
        personal_issues=[],
        policy=StationPolicy(),
        camera_updates=[CameraUpdate(serial="BWV-000123", deployment_id=12, profile={"audio": True})],
    )

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/snapshot"):
            return httpx.Response(200, content=msgspec.json.encode(snapshot))
        return httpx.Response(410, json={"status": 410, "error": "cursor_expired", "message": "too old"})

    client = httpx.Client(base_url="http://central.local", transport=httpx.MockTransport(answer))
    FeedFollower(client, store.mirror, FAST, wait_s=0).poll_once()
    assert store.updates.offer("BWV-000999") is None
    assert store.updates.offer("BWV-000123").profile == {"audio": True} and store.mirror.cursor() == 900


def test_a_running_station_fetches_and_hands_over_through_its_jobs(central, vendor, tmp_path):
    """The node wires it: its firmware job fetches with its link and its own release keys, its dock job
    ingests and then hands over."""
    keys = {"release_keys": [public_key_hex(vendor.public_key())]}
    settings = settings_from_dict(camden(tmp_path, firmware=keys), StationSettings)
    link = httpx.Client(base_url="http://central.local", transport=Recording(central._transport), headers=STATION)
    node = StationNode(settings, client=link, policy=FAST)
    try:
        offer(node.store, release_of(central))
        camera = SimCamera("BWV-000123")
        folder = camera.dock(tmp_path / "dock", [], battery=charged())
        node.scan_dock()
        assert not (folder / "update").exists()  # the artifact is not here yet
        assert node.artifacts.run_once().verified == [central.release["sha256"]]
        node.scan_dock()
        assert (folder / "update" / "firmware.bin").read_bytes() == ARTIFACT
        assert [e["deployment_id"] for e in events(node.store, "camera_update_offered")] == [12]
    finally:
        node.stop()
