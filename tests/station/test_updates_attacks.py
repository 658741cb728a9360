"""Attacks on the station's side of deployments (docs/firmware.md): a camera's folder written by whoever
holds the camera, offers from a central that may be compromised, and kills at every write of a
hand-over. Each test names the attack; the station must hold."""

from __future__ import annotations

import json
import logging
import os
import shutil

import pytest

from fleet.events import CameraUpdate
from fleet.protocol import UpdateReport
from simulation.camera import SimCamera
from station import updates as updates_module
from station.status import firmware_status
from tests.faults.disks import SmallDisk
from tests.station.test_updates import (
    ARTIFACT,
    PROFILE,
    Station,
    charged,
    events,
    keep_artifact,
    offer,
    release_for,
)


@pytest.fixture
def vendor():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()  # a TEST key, made for this test alone


def ready(store, vendor, data: bytes = ARTIFACT):
    """An offer of a release to BWV-000123 whose artifact the station holds, verified."""
    release = release_for(vendor, data)
    keep_artifact(store, release, data)
    offer(store, release=release)
    return release


def update_files(folder) -> list[str]:
    return sorted(os.listdir(folder / "update")) if (folder / "update").exists() else []


# -- the camera's folder is the attacker's ------------------------------------------------------------


@pytest.mark.parametrize("plant", ["file as update/", "link as manifest", "FIFO as firmware.bin", "huge part"])
def test_whatever_the_camera_left_in_update_is_removed_never_followed_or_read(store, dock_dir, vendor, tmp_path, plant):
    ready(store, vendor)
    folder = SimCamera("BWV-000123").dock(dock_dir, [], battery=charged())
    outside = tmp_path / "station-file"
    outside.write_text("the station's own")
    update = folder / "update"
    if plant == "file as update/":
        update.write_bytes(b"x" * 1000)
    else:
        update.mkdir()
        if plant == "link as manifest":
            (update / "manifest.json").symlink_to(outside)
            (update / "firmware.bin").symlink_to(outside)
        elif plant == "FIFO as firmware.bin":
            os.mkfifo(update / "firmware.bin")
            os.mkfifo(update / ".manifest.json.tmp")
        else:
            with open(update / "firmware.bin.part", "wb") as f:
                f.truncate(1 << 40)  # a sparse terabyte
    assert Station(store, dock_dir, [vendor.public_key()]).scan().handed_over == [folder.name]
    assert outside.read_text() == "the station's own"
    assert update_files(folder) == ["firmware.bin", "manifest.json"]
    assert (update / "firmware.bin").read_bytes() == ARTIFACT and not (update / "firmware.bin").is_symlink()


def test_a_kill_while_an_old_update_is_cleared_never_leaves_a_manifest_without_its_artifact(
    store, dock_dir, vendor, monkeypatch
):
    """The camera was taken out before it read its update and comes back with ``update/`` as it was:
    the station writes it again, and a kill while it empties the folder must not leave the old
    manifest naming an artifact already removed (the camera would flash nothing and report a failure)."""
    ready(store, vendor)
    camera = SimCamera("BWV-000123")
    station = Station(store, dock_dir, [vendor.public_key()])
    first = camera.dock(dock_dir, [], battery=charged(), folder_name="a")
    assert station.scan().handed_over == ["a"]
    os.rename(first, dock_dir / ".gone")  # undocked before it read update/: the camera keeps it
    second = camera.dock(dock_dir, [], battery=charged(), folder_name="b")
    shutil.copytree(dock_dir / ".gone" / "update", second / "update")

    real_unlink, real_listdir = os.unlink, os.listdir

    def unlink(name, *args, dir_fd=None, **kwargs):
        real_unlink(name, *args, dir_fd=dir_fd, **kwargs)
        if dir_fd is not None and name == "firmware.bin":
            raise KeyboardInterrupt("killed just after firmware.bin was removed")

    monkeypatch.setattr(os, "listdir", lambda *a: sorted(real_listdir(*a)))  # whatever order the disk gives
    monkeypatch.setattr(os, "unlink", unlink)
    with pytest.raises(KeyboardInterrupt):
        station.scan()
    monkeypatch.undo()
    left = update_files(second)
    assert "manifest.json" not in left or (second / "update" / "firmware.bin").read_bytes() == ARTIFACT, left
    assert Station(store, dock_dir, [vendor.public_key()]).scan().handed_over == ["b"]
    assert update_files(second) == ["firmware.bin", "manifest.json"]


def test_a_dock_slot_reused_by_another_camera_or_the_same_one_again_is_handed_the_update(store, dock_dir, vendor):
    """A dock may name folders by its slot: the hand-over belongs to a docking, not to a folder name."""
    release = ready(store, vendor)
    offer(store, serial="BWV-000124", release=release, cursor=2)
    station = Station(store, dock_dir, [vendor.public_key()])
    camera = SimCamera("BWV-000123")
    first = camera.dock(dock_dir, [], battery=charged(), folder_name="slot-03")
    assert station.scan().handed_over == ["slot-03"]
    shutil.rmtree(first)  # taken out before it read update/ (its storage goes with it)

    other = SimCamera("BWV-000124").dock(dock_dir, [], battery=charged(), folder_name="slot-03")
    assert station.scan().handed_over == ["slot-03"]
    assert json.loads((other / "update" / "manifest.json").read_bytes())["serial"] == "BWV-000124"
    shutil.rmtree(other)

    again = camera.dock(dock_dir, [], battery=charged(), folder_name="slot-03")  # back, update not read
    assert station.scan().handed_over == ["slot-03"]
    assert update_files(again) == ["firmware.bin", "manifest.json"]
    assert [(e["serial"], e["attempt"]) for e in events(store, "camera_update_offered")] == [
        ("BWV-000123", 1),
        ("BWV-000124", 1),
        ("BWV-000123", 1),
    ]
    assert station.scan().handed_over == [] and len(events(store, "camera_update_offered")) == 3
    held = store.updates.offer("BWV-000123")
    assert held is not None
    assert store.updates.record_handover("slot-03", "BWV-000123 docked later", held)
    assert not store.updates.record_handover("slot-03", "BWV-000123 docked later", held)
    assert len(events(store, "camera_update_offered")) == 4  # one event per docking, however often recorded


def test_a_hostile_report_cannot_forge_log_lines_or_smuggle_control_characters(store, dock_dir, vendor, caplog):
    ready(store, vendor)
    forged = "flash failed\n2026-11-20 18:04:05,000 INFO station: all cameras updated\x1b[2J\u202edetaw" + "x" * 500_000
    camera = SimCamera(
        "BWV-000123",
        firmware="1.4.2\x1b]0;pwned\x07\u202e" + "9" * 100,
        report=UpdateReport(deployment_id=12, attempt=1, ok=False, error=forged),
    )
    camera.dock(dock_dir, [], battery=charged())
    out_of_range = UpdateReport(deployment_id=0, attempt=1, ok=False, error=forged)
    SimCamera("BWV-000999", report=out_of_range).dock(dock_dir, [], battery=charged())
    with caplog.at_level(logging.INFO):
        assert Station(store, dock_dir, [vendor.public_key()]).scan().results
    for record in caplog.records:
        message = record.getMessage()
        assert message.isprintable() and len(message) < 2000, message[:200]
    [result] = events(store, "camera_update_result")
    assert result["error"].isprintable() and len(result["error"]) <= 500 and result["error"].startswith("flash failed")
    assert result["version"].isprintable() and len(result["version"]) <= 64
    for waiting in firmware_status(store).offers:
        assert waiting.waiting.isprintable()


@pytest.mark.parametrize("kind", ["firmware", "profile"])
def test_a_success_the_cameras_own_reading_contradicts_is_sent_as_a_failure(store, dock_dir, vendor, kind):
    """``ok: true`` from a camera that still runs the old version (or carries other settings): central
    must not count it updated, or it is never offered the update again."""
    if kind == "firmware":
        ready(store, vendor)
        camera = SimCamera("BWV-000123", firmware="1.4.2")
    else:
        offer(store, profile=PROFILE)
        camera = SimCamera("BWV-000123", settings={"audio": False})
    camera.report = UpdateReport(deployment_id=12, attempt=1, ok=True)
    camera.dock(dock_dir, [], battery=charged())
    Station(store, dock_dir, [vendor.public_key()]).scan()
    [result] = events(store, "camera_update_result")
    assert result["ok"] is False and "reports success" in result["error"], result


def test_a_report_for_another_deployment_is_sent_as_it_came(store, dock_dir, vendor):
    """The station cannot judge a deployment it holds no offer of (another borough's, or one central
    withdrew): the report goes up as the camera gave it, and central checks it against its own."""
    ready(store, vendor)
    camera = SimCamera("BWV-000123", firmware="1.4.2", report=UpdateReport(deployment_id=99, attempt=2, ok=True))
    camera.dock(dock_dir, [], battery=charged())
    Station(store, dock_dir, [vendor.public_key()]).scan()
    [result] = events(store, "camera_update_result")
    assert (result["deployment_id"], result["attempt"], result["ok"]) == (99, 2, True)


# -- central's word is not taken -----------------------------------------------------------------------


def test_a_camera_that_gives_no_model_is_never_given_firmware(store, dock_dir, vendor):
    """A release signed for one model must reach only cameras that say they are of that model."""
    ready(store, vendor)
    folder = SimCamera("BWV-000123", model="").dock(dock_dir, [], battery=charged())
    report = Station(store, dock_dir, [vendor.public_key()]).scan()
    assert report.handed_over == [] and update_files(folder) == []
    assert "model" in report.waiting["BWV-000123"]


@pytest.mark.parametrize(
    "profile",
    [
        {"pre_record_s": 100_000},
        {"resolution": "8k"},
        {"frame_rate": 1000},
        {"mount": "ankle"},
        {"audio": "maybe"},
        {"firmware_url": "http://evil.example/x.bin"},
    ],
)
def test_a_profile_outside_the_settings_cameras_take_is_never_handed_over(store, dock_dir, vendor, profile):
    offer(store, profile=profile)
    folder = SimCamera("BWV-000123").dock(dock_dir, [], battery=charged())
    report = Station(store, dock_dir, []).scan()
    assert report.handed_over == [] and update_files(folder) == []
    assert "profile" in report.waiting["BWV-000123"]


# -- a camera whose storage is (nearly) full ------------------------------------------------------------


@pytest.fixture
def small_camera(dock_dir):
    """A camera whose storage (its dock folder) has 1 MiB."""
    disk = SmallDisk(dock_dir / "a", 1 << 20).mount()
    yield disk
    disk.unmount()


def test_an_update_that_does_not_fit_the_camera_is_not_written_and_leaves_nothing(
    store, dock_dir, vendor, small_camera
):
    big = os.urandom(3 << 20)
    ready(store, vendor, big)
    folder = SimCamera("BWV-000123").dock(dock_dir, [], battery=charged(), folder_name="a")
    before = small_camera.used_bytes()
    report = Station(store, dock_dir, [vendor.public_key()]).scan()
    assert report.handed_over == [] and "room" in report.waiting["BWV-000123"]
    assert update_files(folder) == [] and small_camera.used_bytes() <= before + 4096


def test_a_write_that_fails_half_way_leaves_no_part_on_the_camera(store, dock_dir, vendor, small_camera, monkeypatch):
    """The room was there when looked at, then gone (the camera wrote meanwhile): ENOSPC half way."""
    big = os.urandom(3 << 20)
    ready(store, vendor, big)
    folder = SimCamera("BWV-000123").dock(dock_dir, [], battery=charged(), folder_name="a")
    monkeypatch.setattr(updates_module, "free_bytes", lambda fd: 1 << 40)
    report = Station(store, dock_dir, [vendor.public_key()]).scan()
    assert report.handed_over == []
    assert [n for n in update_files(folder) if n.endswith(".part")] == []
    assert small_camera.used_bytes() < 64 * 1024


# -- withdrawn offers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["release", "profile"])
def test_an_offer_withdrawn_while_the_camera_sits_in_the_dock_takes_its_update_back(store, dock_dir, vendor, kind):
    """Central paused (its failure threshold) or aborted the deployment: a camera still docked must not
    apply the update at undock. Resumed, the same attempt is handed over again."""
    if kind == "release":
        release = ready(store, vendor)
        item = {"release": release}
    else:
        item = {"profile": PROFILE}
        offer(store, profile=PROFILE)
    camera = SimCamera("BWV-000123")
    station = Station(store, dock_dir, [vendor.public_key()])
    folder = camera.dock(dock_dir, [], battery=charged())
    assert station.scan().handed_over == [folder.name]
    store.mirror.apply([CameraUpdate(serial="BWV-000123", deployment_id=12, active=False)], cursor=2)
    station.scan()
    assert update_files(folder) == []
    offer(store, cursor=3, **item)  # resumed
    assert station.scan().handed_over == [folder.name]
    assert [e["attempt"] for e in events(store, "camera_update_offered")] == [1, 1]
    store.mirror.apply([CameraUpdate(serial="BWV-000123", deployment_id=12, active=False)], cursor=4)
    station.scan()
    camera.undock(folder)
    assert camera.report is None and camera.firmware == "1.4.2" and camera.settings is None


def test_a_docked_camera_whose_charge_fell_below_the_gate_is_not_left_an_earlier_update(store, dock_dir, vendor):
    """Back in the dock with an update it never read (it stays on its storage), but now too flat for the
    deployment's policy: the update is taken back, not applied at undock."""
    ready(store, vendor)
    camera = SimCamera("BWV-000123")
    station = Station(store, dock_dir, [vendor.public_key()])
    first = camera.dock(dock_dir, [], battery=charged(), folder_name="a")
    station.scan()
    os.rename(first, dock_dir / ".gone")
    second = camera.dock(dock_dir, [], battery=charged(pct=10), folder_name="b")
    shutil.copytree(dock_dir / ".gone" / "update", second / "update")
    assert "below" in station.scan().waiting["BWV-000123"]
    assert update_files(second) == []


@pytest.mark.parametrize(
    ("kill_at", "done"),
    [
        ("firmware.bin.part", False),  # copied, before its rename
        ("firmware.bin.part", True),  # renamed, before the manifest
        (".manifest.json.tmp", False),  # the manifest written, before its rename
        (".manifest.json.tmp", True),  # the manifest in place, before the commit point
    ],
)
def test_a_kill_at_each_write_of_a_hand_over_never_shows_a_manifest_without_its_artifact(
    store, dock_dir, vendor, monkeypatch, kill_at, done
):
    ready(store, vendor)
    folder = SimCamera("BWV-000123").dock(dock_dir, [], battery=charged())
    real_replace = os.replace

    def replace(src, dst, **kwargs):
        if src == kill_at and not done:
            raise KeyboardInterrupt(f"killed before renaming {src}")
        real_replace(src, dst, **kwargs)
        if src == kill_at:
            raise KeyboardInterrupt(f"killed after renaming {src}")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        Station(store, dock_dir, [vendor.public_key()]).scan()
    monkeypatch.undo()
    if "manifest.json" in update_files(folder):
        assert (folder / "update" / "firmware.bin").read_bytes() == ARTIFACT
    assert events(store, "camera_update_offered") == []
    assert Station(store, dock_dir, [vendor.public_key()]).scan().handed_over == [folder.name]
    assert update_files(folder) == ["firmware.bin", "manifest.json"]
    assert (folder / "update" / "firmware.bin").read_bytes() == ARTIFACT
    assert len(events(store, "camera_update_offered")) == 1


@pytest.mark.parametrize("name", ["slot\n03 INFO forged", "slot-\udcff", "slot-\u202e30"])
def test_a_folder_with_an_odd_name_is_handed_its_update_and_named_printably(store, dock_dir, vendor, caplog, name):
    ready(store, vendor)
    folder = SimCamera("BWV-000123").dock(dock_dir, [], battery=charged(), folder_name=name)
    with caplog.at_level(logging.INFO):
        [shown] = Station(store, dock_dir, [vendor.public_key()]).scan().handed_over
    assert shown.isprintable() and update_files(folder) == ["firmware.bin", "manifest.json"]
    assert all(r.getMessage().isprintable() for r in caplog.records)
