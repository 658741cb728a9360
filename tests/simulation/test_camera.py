"""The camera simulator takes the update a station leaves in its folder as a camera would (docs/firmware.md)."""

from __future__ import annotations

import hashlib
import json
import os

import msgspec
import pytest

from fleet.profiles import settings_sha256
from fleet.protocol import ManifestFirmware, UpdateManifest
from simulation.camera import SimCamera, UpdateFailures

FIRMWARE = os.urandom(10_000)


def leave_update(folder, deployment_id=12, attempt=1, data=FIRMWARE, sha256=None, model="Axon Body 2", profile=None):
    """What a station writes: the artifact, then the manifest last."""
    update = folder / "update"
    update.mkdir(parents=True)
    firmware = None
    if profile is None:
        (update / "firmware.bin").write_bytes(data)
        firmware = ManifestFirmware(
            model=model,
            version="1.4.3",
            sha256=sha256 or hashlib.sha256(data).hexdigest(),
            size=len(data),
            signature="c2ln",
        )
    manifest = UpdateManifest(
        deployment_id=deployment_id, serial=folder.name, attempt=attempt, firmware=firmware, profile=profile
    )
    (update / "manifest.json").write_bytes(msgspec.json.encode(manifest))
    return folder


def device(folder) -> dict:
    return json.loads((folder / "device.json").read_bytes())


def test_an_update_is_applied_update_removed_and_the_outcome_reported_at_the_next_dock(tmp_path):
    camera = SimCamera("BWV-000123")
    first = camera.dock(tmp_path, [], folder_name="BWV-000123")
    leave_update(first)
    camera.undock(first)
    assert not first.exists() and camera.firmware == "1.4.3"
    second = camera.dock(tmp_path, [], folder_name="BWV-000123")
    reported = device(second)
    assert reported["firmware"] == "1.4.3"
    assert reported["update"] == {"deployment_id": 12, "attempt": 1, "ok": True, "error": None}


def test_an_update_without_its_manifest_is_not_read(tmp_path):
    camera = SimCamera("BWV-000123")
    folder = camera.dock(tmp_path, [], folder_name="BWV-000123")
    (folder / "update").mkdir()
    (folder / "update" / "firmware.bin").write_bytes(FIRMWARE)  # the station was still writing
    assert camera.take_update(folder) is None and camera.firmware == "1.4.2" and camera.report is None


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (
            {"data": FIRMWARE[:-1] + bytes([FIRMWARE[-1] ^ 1]), "sha256": hashlib.sha256(FIRMWARE).hexdigest()},
            "does not match its SHA-256",
        ),
        ({"model": "Axon Body 3"}, "this camera is a Axon Body 2"),
    ],
)
def test_an_artifact_that_fails_the_cameras_own_checks_keeps_the_old_version(tmp_path, change, error):
    camera = SimCamera("BWV-000123")
    folder = leave_update(camera.dock(tmp_path, [], folder_name="BWV-000123"), **change)
    report = camera.take_update(folder)
    assert report is not None and not report.ok and error in (report.error or "")
    assert camera.firmware == "1.4.2" and not (folder / "update").exists()


@pytest.mark.slow  # 1-2 s: the whole suite runs it, the quick lane stays under 2 minutes
def test_failures_follow_the_rate_of_each_model_and_repeat_with_the_seed(tmp_path):
    failures = UpdateFailures(by_model={"Axon Body 2": 0.3, "Axon Body 3": 1.0}, default=0.0, seed=7)

    def run(model: str, seed: int = 7) -> list[bool]:
        outcomes = []
        for n in range(200):
            serial = f"BWV-{n:06d}"
            camera = SimCamera(serial, model=model, failures=UpdateFailures(failures.by_model, seed=seed))
            folder = leave_update(camera.dock(tmp_path / model / str(seed), [], folder_name=serial), model=model)
            report = camera.take_update(folder)
            assert report is not None
            outcomes.append(report.ok)
            assert camera.firmware == ("1.4.3" if report.ok else "1.4.2")
            if not report.ok:
                assert report.error == "flash verify failed"
        return outcomes

    body2 = run("Axon Body 2")
    assert 0.22 < body2.count(False) / len(body2) < 0.38
    assert run("Axon Body 3") == [False] * 200
    assert run("Axon Body 2") == body2  # the same seed: the same cameras fail
    assert run("Axon Body 2", seed=8) != body2
    assert run("Other Model") == [True] * 200


def test_a_retry_is_a_new_draw(tmp_path):
    failures = UpdateFailures(default=0.5, seed=1)
    draws = {failures.fails("BWV-000001", "X", 12, attempt) for attempt in range(1, 20)}
    assert draws == {True, False}


def test_a_profile_is_applied_and_its_hash_reported(tmp_path):
    settings = {"pre_record_s": 60, "mount": "head"}
    camera = SimCamera("BWV-000123")
    folder = leave_update(camera.dock(tmp_path, [], folder_name="BWV-000123"), profile=settings)
    camera.undock(folder)
    assert camera.settings == settings and camera.firmware == "1.4.2"
    reported = device(camera.dock(tmp_path, [], folder_name="BWV-000123"))
    assert reported["profile_sha256"] == settings_sha256(settings) and reported["update"]["ok"] is True


@pytest.mark.parametrize("case", ["a path out of update/", "a link", "another format"])
def test_a_manifest_naming_a_file_outside_its_folder_or_of_another_format_is_refused(tmp_path, case):
    """A camera reads only ``update/<file>`` (a plain name, a regular file) of the format it knows:
    a manifest (whoever wrote it) never has it flash a file from elsewhere on its storage."""
    camera = SimCamera("BWV-000123")
    folder = leave_update(camera.dock(tmp_path, [], folder_name="BWV-000123"))
    (folder / "outside.bin").write_bytes(FIRMWARE)
    (folder / "update" / "firmware.bin").unlink()
    manifest = msgspec.json.decode((folder / "update" / "manifest.json").read_bytes(), type=UpdateManifest)
    assert manifest.firmware is not None
    if case == "a path out of update/":
        manifest.firmware.file = "../outside.bin"
    elif case == "a link":
        (folder / "update" / "firmware.bin").symlink_to(folder / "outside.bin")
    else:
        (folder / "update" / "firmware.bin").write_bytes(FIRMWARE)
        manifest.format = "bwv-dock-update/2"
    (folder / "update" / "manifest.json").write_bytes(msgspec.json.encode(manifest))
    report = camera.take_update(folder)
    assert report is not None and not report.ok and camera.firmware == "1.4.2", report
