"""Updates handed to docked cameras through the dock inbox (docs/firmware.md): only into a folder the
ingest has finished, only past the deployment's gates, written in the crash-safe order, recorded
with its event once; the cameras' reports sent up once per attempt."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import UTC, datetime

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.events import CameraUpdate, CameraUpdateRelease
from fleet.firmware import TrustedKey, statement_bytes
from fleet.profiles import settings_sha256
from fleet.protocol import Battery
from simulation.camera import SimCamera, SimClip, UpdateFailures
from station.ingest import Ingestor
from station.status import firmware_status
from station.sync.artifacts import artifact_path
from station.updates import DockUpdates
from tests.station.conftest import RECORDED

ARTIFACT = os.urandom(70_000)
MODEL = "Axon Body 2"
PROFILE = {"pre_record_s": 60, "resolution": "1440p", "frame_rate": 30, "audio": True}


@pytest.fixture
def vendor() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()  # a TEST key, made for this test alone


def release_for(vendor, data: bytes = ARTIFACT, version: str = "1.4.3") -> CameraUpdateRelease:
    sha = hashlib.sha256(data).hexdigest()
    statement = statement_bytes(model=MODEL, version=version, sha256=sha, size=len(data))
    return CameraUpdateRelease(
        id=7,
        model=MODEL,
        version=version,
        sha256=sha,
        size=len(data),
        signature=base64.b64encode(vendor.sign(statement)).decode(),
    )


def keep_artifact(store, release: CameraUpdateRelease, data: bytes = ARTIFACT) -> None:
    """The artifact as the fetcher leaves it (tests/station/sync/test_artifacts.py fetches it for real)."""
    path = artifact_path(store, release.sha256)
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    store.updates.artifact_verified(release)


def offer(store, serial="BWV-000123", deployment_id=12, attempt=1, release=None, profile=None, cursor=1):
    item = CameraUpdate(serial=serial, deployment_id=deployment_id, release=release, profile=profile, attempt=attempt)
    store.mirror.apply([item], cursor=cursor)


class Station:
    """The dock job of a running station: ingest, then updates (``StationNode.scan_dock``)."""

    def __init__(self, store, dock_dir, keys) -> None:
        self.ingestor = Ingestor(store, "camden", dock_dir)
        self.updates = DockUpdates(store, dock_dir, [TrustedKey(k) for k in keys])

    def scan(self):
        self.ingestor.scan()
        return self.updates.scan()


def events(store, kind: str) -> list[dict]:
    return [json.loads(body) for _, k, _, body in store.outbox.events() if k == kind]


def charged(pct: float = 80.0, temperature: float | None = 29.5) -> Battery:
    return Battery(level_pct=pct, temperature_c=temperature)


def test_a_verified_release_is_handed_to_a_camera_once_its_folder_is_ingested(store, dock_dir, vendor):
    release = release_for(vendor)
    keep_artifact(store, release)
    offer(store, release=release)
    camera = SimCamera("BWV-000123")
    folder = camera.dock(dock_dir, [SimClip(5000, RECORDED)], battery=charged())
    station = Station(store, dock_dir, [vendor.public_key()])

    station.updates.scan()  # before the ingest: the dock's rules come first, nothing is written
    assert not (folder / "update").exists()
    report = station.scan()
    assert report.handed_over == [folder.name]
    assert (folder / "update" / "firmware.bin").read_bytes() == ARTIFACT
    manifest = json.loads((folder / "update" / "manifest.json").read_bytes())
    assert manifest == {
        "format": "bwv-dock-update/1",
        "deployment_id": 12,
        "serial": "BWV-000123",
        "attempt": 1,
        "firmware": {
            "model": MODEL,
            "version": "1.4.3",
            "sha256": release.sha256,
            "size": len(ARTIFACT),
            "signature": release.signature,
            "file": "firmware.bin",
        },
        "profile": None,
    }
    assert sorted(os.listdir(folder / "update")) == ["firmware.bin", "manifest.json"]
    # The dock contract's files stay as they were: DOCKED, device.json, INGESTED.json, clips wiped.
    assert {"DOCKED", "device.json", "INGESTED.json"} <= set(os.listdir(folder)) and not os.listdir(folder / "clips")
    [offered] = events(store, "camera_update_offered")
    assert (offered["serial"], offered["deployment_id"], offered["attempt"]) == ("BWV-000123", 12, 1)
    assert (
        station.scan().handed_over == []
        and DockUpdates(store, dock_dir, [TrustedKey(vendor.public_key())]).scan() == type(report)()
    )  # a restarted station does not hand it over twice in the same folder
    assert len(events(store, "camera_update_offered")) == 1
    assert firmware_status(store).offers == []  # handed over: not waiting


@pytest.mark.parametrize(
    ("camera", "battery", "why"),
    [
        ({}, charged(pct=40), "charged 40%, below the deployment's 50%"),
        ({}, charged(temperature=41.5), "at 41.5 °C, over the deployment's 40 °C"),
        ({}, charged(temperature=None), "no temperature"),
        ({"model": "Axon Body 3"}, charged(), "model 'Axon Body 3'"),
        ({"firmware": "1.4.3"}, charged(), "already runs 1.4.3"),
    ],
)
def test_a_camera_outside_the_deployments_policy_is_not_given_the_update(store, dock_dir, vendor, camera, battery, why):
    release = release_for(vendor)
    keep_artifact(store, release)
    offer(store, release=release)
    folder = SimCamera("BWV-000123", **camera).dock(dock_dir, [], battery=battery)
    report = Station(store, dock_dir, [vendor.public_key()]).scan()
    assert not (folder / "update").exists() and events(store, "camera_update_offered") == []
    assert why in report.waiting["BWV-000123"]
    [waiting] = firmware_status(store).offers
    assert why in waiting.waiting and waiting.update == "firmware Axon Body 2 1.4.3"


def test_an_update_waits_for_its_artifact_and_goes_once_it_is_verified(store, dock_dir, vendor):
    release = release_for(vendor)
    offer(store, release=release)
    folder = SimCamera("BWV-000123").dock(dock_dir, [], battery=charged())
    station = Station(store, dock_dir, [vendor.public_key()])
    assert "not downloaded yet" in station.scan().waiting["BWV-000123"]
    keep_artifact(store, release)  # the fetcher verified it while the camera sat in the dock
    assert station.scan().handed_over == [folder.name]


def test_an_artifact_the_stations_keys_no_longer_verify_is_not_handed_over(store, dock_dir, vendor):
    release = release_for(vendor)
    keep_artifact(store, release)
    offer(store, release=release)
    folder = SimCamera("BWV-000123").dock(dock_dir, [], battery=charged())
    report = Station(store, dock_dir, [Ed25519PrivateKey.generate().public_key()]).scan()  # the key was removed
    assert "release_keys" in report.waiting["BWV-000123"] and not (folder / "update").exists()


def test_a_kept_artifact_damaged_on_the_stations_disk_is_never_handed_over(store, dock_dir, vendor):
    release = release_for(vendor)
    keep_artifact(store, release)
    artifact_path(store, release.sha256).write_bytes(ARTIFACT[:-1] + bytes([ARTIFACT[-1] ^ 1]))  # one bit flipped
    offer(store, release=release)
    folder = SimCamera("BWV-000123").dock(dock_dir, [], battery=charged())
    report = Station(store, dock_dir, [vendor.public_key()]).scan()
    assert "no longer matches" in report.waiting["BWV-000123"]
    assert not (folder / "update" / "firmware.bin").exists() and not (folder / "update" / "manifest.json").exists()
    assert store.updates.artifact(release.sha256).state == "failed"  # fetched again by the next pass


def test_what_an_interrupted_write_left_is_cleaned_and_written_again(store, dock_dir, vendor, tmp_path):
    release = release_for(vendor)
    keep_artifact(store, release)
    offer(store, release=release)
    folder = SimCamera("BWV-000123").dock(dock_dir, [], battery=charged())
    (folder / "update").mkdir()
    (folder / "update" / "firmware.bin.part").write_bytes(ARTIFACT[:1000])  # a crash mid-copy
    (folder / "update" / ".manifest.json.tmp").write_bytes(b"{")
    assert Station(store, dock_dir, [vendor.public_key()]).scan().handed_over == [folder.name]
    assert sorted(os.listdir(folder / "update")) == ["firmware.bin", "manifest.json"]
    assert (folder / "update" / "firmware.bin").read_bytes() == ARTIFACT


def test_a_link_planted_as_the_update_folder_is_removed_not_followed(store, dock_dir, vendor, tmp_path):
    release = release_for(vendor)
    keep_artifact(store, release)
    offer(store, release=release)
    folder = SimCamera("BWV-000123").dock(dock_dir, [], battery=charged())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("not the camera's")
    (folder / "update").symlink_to(elsewhere)
    Station(store, dock_dir, [vendor.public_key()]).scan()
    assert (elsewhere / "keep.txt").read_text() == "not the camera's" and sorted(os.listdir(elsewhere)) == ["keep.txt"]
    assert not (folder / "update").is_symlink() and (folder / "update" / "manifest.json").is_file()


def test_a_crash_after_the_manifest_before_the_record_writes_it_again_and_records_it_once(
    store, dock_dir, vendor, monkeypatch
):
    release = release_for(vendor)
    keep_artifact(store, release)
    offer(store, release=release)
    folder = SimCamera("BWV-000123").dock(dock_dir, [], battery=charged())
    station = Station(store, dock_dir, [vendor.public_key()])

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed between the manifest and the commit")

    monkeypatch.setattr(store.updates, "record_handover", crash)
    with pytest.raises(KeyboardInterrupt):
        station.scan()
    assert (folder / "update" / "manifest.json").exists() and events(store, "camera_update_offered") == []
    monkeypatch.undo()
    restarted = Station(store, dock_dir, [vendor.public_key()])
    assert restarted.scan().handed_over == [folder.name]
    assert len(events(store, "camera_update_offered")) == 1
    assert (folder / "update" / "firmware.bin").read_bytes() == ARTIFACT


def test_the_cameras_report_is_sent_once_and_a_failure_waits_for_the_next_attempt(store, dock_dir, vendor):
    release = release_for(vendor)
    keep_artifact(store, release)
    offer(store, release=release)
    camera = SimCamera("BWV-000123", failures=UpdateFailures(by_model={MODEL: 1.0}))
    station = Station(store, dock_dir, [vendor.public_key()])
    first = camera.dock(dock_dir, [SimClip(100, RECORDED)], battery=charged(), folder_name="a")
    station.scan()
    camera.undock(first)  # it applies the update (and fails) as it leaves
    assert camera.firmware == "1.4.2" and camera.report.ok is False

    second = camera.dock(dock_dir, [SimClip(100, RECORDED)], battery=charged(), folder_name="b")
    report = station.scan()
    assert report.results == ["b"] and report.handed_over == []
    [result] = events(store, "camera_update_result")
    assert result | {"at": None} == {
        "kind": "camera_update_result",
        "serial": "BWV-000123",
        "deployment_id": 12,
        "attempt": 1,
        "ok": False,
        "version": "1.4.2",
        "error": "flash verify failed",
        "at": None,
    }
    assert "attempt 1 failed (flash verify failed)" in report.waiting["BWV-000123"]
    assert not (second / "update").exists()  # a retry is central's to offer

    station.ingestor.ingest_folder(second)  # ingested again (a restart before INGESTED.json)
    assert DockUpdates(store, dock_dir, [TrustedKey(vendor.public_key())]).scan().results == []
    camera.undock(second)
    camera.dock(dock_dir, [], battery=charged(), folder_name="c")  # the same report at a later dock
    station.scan()
    assert len(events(store, "camera_update_result")) == 1

    offer(store, release=release, attempt=2, cursor=2)  # central offers attempt 2: handed over while docked
    assert station.scan().handed_over == ["c"]
    assert json.loads((dock_dir / "c" / "update" / "manifest.json").read_bytes())["attempt"] == 2


def test_a_camera_undocked_before_it_read_the_update_is_offered_it_again(store, dock_dir, vendor):
    release = release_for(vendor)
    keep_artifact(store, release)
    offer(store, release=release)
    camera = SimCamera("BWV-000123")
    station = Station(store, dock_dir, [vendor.public_key()])
    first = camera.dock(dock_dir, [], battery=charged(), folder_name="a")
    station.scan()
    os.rename(first, dock_dir / ".gone")  # taken out before it read update/: nothing reported
    camera.dock(dock_dir, [], battery=charged(), folder_name="b")
    assert station.scan().handed_over == ["b"]
    assert [e["attempt"] for e in events(store, "camera_update_offered")] == [1, 1]
    camera.undock(dock_dir / "b")
    assert camera.firmware == "1.4.3" and camera.report.ok
    camera.dock(dock_dir, [], battery=charged(), folder_name="c")
    report = station.scan()
    assert report.results == ["c"] and report.handed_over == []
    [result] = events(store, "camera_update_result")
    assert result["ok"] is True and result["version"] == "1.4.3" and result["error"] is None


def test_a_profile_is_handed_over_without_an_artifact_and_its_hash_reported(store, dock_dir, vendor):
    offer(store, profile=PROFILE)
    camera = SimCamera("BWV-000123")
    station = Station(store, dock_dir, [])  # no release key: profiles still go
    first = camera.dock(dock_dir, [], battery=charged(), folder_name="a")
    assert station.scan().handed_over == ["a"]
    assert os.listdir(first / "update") == ["manifest.json"]
    manifest = json.loads((first / "update" / "manifest.json").read_bytes())
    assert manifest["firmware"] is None and manifest["profile"] == PROFILE
    camera.undock(first)
    assert camera.settings == PROFILE
    second = camera.dock(dock_dir, [], battery=charged(), folder_name="b")
    device = msgspec.json.decode((second / "device.json").read_bytes())
    assert (
        device["profile_sha256"]
        == settings_sha256(PROFILE)
        == hashlib.sha256(json.dumps(PROFILE, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    )
    report = station.scan()
    assert report.results == ["b"] and "attempt 1 succeeded" in report.waiting["BWV-000123"]
    offer(store, profile=PROFILE, deployment_id=13, cursor=2)  # a later deployment of the same settings
    assert "already carries this profile" in station.scan().waiting["BWV-000123"]


def test_a_newer_deployments_offer_replaces_an_older_ones_and_withdrawals_only_their_own(store, vendor):
    release = release_for(vendor)
    offer(store, release=release, deployment_id=12)
    offer(store, profile=PROFILE, deployment_id=11, cursor=2)  # older: never replaces the newer
    assert store.updates.offer("BWV-000123").deployment_id == 12
    store.mirror.apply([CameraUpdate(serial="BWV-000123", deployment_id=11, active=False)], cursor=3)
    assert store.updates.offer("BWV-000123").deployment_id == 12
    offer(store, profile=PROFILE, deployment_id=13, cursor=4)
    assert store.updates.offer("BWV-000123").profile == PROFILE and store.mirror.cursor() == 4
    store.mirror.apply([CameraUpdate(serial="BWV-000123", deployment_id=13, active=False)], cursor=5)
    assert store.updates.offer("BWV-000123") is None and store.mirror.cursor() == 5


def test_a_report_out_of_range_is_ignored_and_never_makes_the_folder_bad(store, dock_dir, vendor):
    from fleet.protocol import UpdateReport

    folder = SimCamera("BWV-000123", report=UpdateReport(deployment_id=0, attempt=99999, ok=True)).dock(
        dock_dir, [SimClip(100, RECORDED)], battery=charged(), docked_at=datetime(2026, 11, 20, tzinfo=UTC)
    )
    report = Station(store, dock_dir, []).scan()
    assert report.results == [] and events(store, "camera_update_result") == []
    assert (folder / "INGESTED.json").exists() and store.queue.summary()["failed_folders"] == []


def test_a_settled_folder_is_looked_at_again_only_when_its_own_cameras_offer_moves(
    store, dock_dir, vendor, monkeypatch
):
    release = release_for(vendor)
    keep_artifact(store, release)
    station = Station(store, dock_dir, [vendor.public_key()])
    looked: list[str] = []
    visit = DockUpdates.visit

    def counted(self, folder, report):
        looked.append(folder.name)
        return visit(self, folder, report)

    monkeypatch.setattr(DockUpdates, "visit", counted)
    SimCamera("BWV-000123").dock(dock_dir, [], battery=charged(pct=30), folder_name="mine")
    SimCamera("BWV-000456").dock(dock_dir, [], battery=charged(), folder_name="other")
    offer(store, release=release)
    station.scan()
    assert sorted(looked) == ["mine", "other"]  # each looked at once: mine waits for a charge

    looked.clear()
    offer(store, serial="BWV-000456", release=release, cursor=2)  # another camera's offer
    assert station.scan().handed_over == ["other"] and looked == ["other"]
    looked.clear()
    station.scan()
    assert looked == []  # the hand-over's own move is not seen as a move of mine
    offer(store, release=release, attempt=2, cursor=3)  # my camera's offer moves
    assert "charged 30%" in station.scan().waiting["BWV-000123"] and looked == ["mine"]
    looked.clear()
    store.updates.artifact_verified(release)  # an artifact verified again: every folder's decision may move
    station.scan()
    assert sorted(looked) == ["mine", "other"]
    looked.clear()
    station.scan()
    assert looked == []


def test_a_kept_artifact_is_hashed_once_then_copied_unless_the_file_changed(store, dock_dir, vendor, monkeypatch):
    import station.updates as updates

    hashed: list[bool] = []
    copy = updates._copy_checked

    def counted(*args, hash_it=True):
        hashed.append(hash_it)
        return copy(*args, hash_it=hash_it)

    monkeypatch.setattr(updates, "_copy_checked", counted)
    release = release_for(vendor)
    keep_artifact(store, release)
    station = Station(store, dock_dir, [vendor.public_key()])
    for n in range(3):
        offer(store, serial=f"BWV-00000{n}", release=release, cursor=n + 1)
        SimCamera(f"BWV-00000{n}").dock(dock_dir, [], battery=charged(), folder_name=f"f{n}")
    assert sorted(station.scan().handed_over) == ["f0", "f1", "f2"]
    assert hashed == [True, False, False]  # one release, hundreds of cameras: its bytes hashed once
    assert all((dock_dir / f"f{n}" / "update" / "firmware.bin").read_bytes() == ARTIFACT for n in range(3))

    # The kept file damaged since (rewritten in place, its size kept): hashed again, and refused.
    artifact_path(store, release.sha256).write_bytes(ARTIFACT[:-1] + bytes([ARTIFACT[-1] ^ 1]))
    offer(store, serial="BWV-000009", release=release, cursor=9)
    folder = SimCamera("BWV-000009").dock(dock_dir, [], battery=charged(), folder_name="f9")
    assert "no longer matches" in station.scan().waiting["BWV-000009"]
    assert hashed[-1] is True and not (folder / "update" / "firmware.bin").exists()
