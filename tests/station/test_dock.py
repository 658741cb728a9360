import json

import pytest

from fleet.errors import DockFolderError
from simulation.camera import SimClip, dock_camera
from station.dock import docked_folders, folder_signature, read_docked_camera
from tests.station.conftest import RECORDED


def test_only_folders_with_docked_marker_are_seen(dock_dir):
    done = dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)])
    dock_camera(dock_dir, "BWV-000002", [SimClip(10, RECORDED)], marker=False)
    (dock_dir / "stray.txt").write_text("x")
    assert docked_folders(dock_dir) == [done]


def test_reads_device_and_clips(dock_dir):
    clip = SimClip(1234, RECORDED, tags=["stop_and_search"], evidential=True)
    camera = read_docked_camera(dock_camera(dock_dir, "BWV-000001", [clip]))
    assert camera.device.serial == "BWV-000001"
    assert camera.device.battery.cycle_count == 212
    [docked] = camera.clips
    assert str(docked.sidecar.clip_id) == clip.clip_id
    assert docked.size == 1234 and docked.sidecar.evidential and docked.sidecar.tags == ["stop_and_search"]


def break_folder(folder, how):
    clips = folder / "clips"
    sidecar = next(clips.glob("*.json"))
    if how == "device_json":
        (folder / "device.json").write_text("{")
    elif how == "no_device":
        (folder / "device.json").unlink()
    elif how == "sidecar_without_video":
        next(clips.glob("*.mp4")).unlink()
    elif how == "video_without_sidecar":
        sidecar.unlink()
    elif how == "bad_sidecar_field":
        data = json.loads(sidecar.read_text())
        data["recorded_at"] = "yesterday"
        sidecar.write_text(json.dumps(data))
    elif how == "serial":
        (folder / "device.json").write_text(json.dumps({"serial": "../../etc"}))
    elif how == "duplicate_clip_id":
        data = json.loads(sidecar.read_text())
        (clips / "zz.json").write_text(json.dumps(data))
        (clips / "zz.mp4").write_bytes(b"x")


@pytest.mark.parametrize(
    "how, reason",
    [
        ("device_json", "device.json is not valid JSON"),
        ("no_device", "device.json is missing"),
        ("sidecar_without_video", "sidecar without its video"),
        ("video_without_sidecar", "video without its sidecar"),
        ("bad_sidecar_field", "recorded_at"),
        ("serial", "serial"),
        ("duplicate_clip_id", "used by both"),
    ],
)
def test_malformed_folders_name_the_problem(dock_dir, how, reason):
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)])
    break_folder(folder, how)
    with pytest.raises(DockFolderError, match=reason):
        read_docked_camera(folder)


def test_signature_changes_when_the_camera_rewrites_the_folder(dock_dir):
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)])
    before = folder_signature(folder)
    assert folder_signature(folder) == before
    (folder / "clips" / "new.mp4").write_bytes(b"x")
    assert folder_signature(folder) != before
