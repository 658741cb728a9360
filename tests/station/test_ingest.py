import errno
import hashlib
import json
import logging
import os
import shutil
import sqlite3
from datetime import timedelta

import pytest

from fleet.config import StationSettings, settings_from_dict
from fleet.hashing import COPY_BUFFER_BYTES, _DirectSource
from simulation.camera import SimClip, dock_camera, random_shift
from station import ingest as ingest_module
from station.dock import CameraFolder, DockFolderError
from station.ingest import Ingestor, IngestReport
from station.status import station_status
from tests.faults.disks import SmallDisk
from tests.station.conftest import RECORDED, plain_copy, station_store


def clip_rows(store):
    return store.db.execute("SELECT clip_id, sha256, size, local_path FROM clips ORDER BY clip_id").fetchall()


def test_ingest_copies_hashes_records_and_wipes(store, dock_dir, rng):
    clips = random_shift(rng, 4, min_size=1, max_size=300_000)
    folder = dock_camera(dock_dir, "BWV-000001", clips)
    woken = []
    report = Ingestor(store, "camden", dock_dir, on_new_clips=lambda: woken.append(1)).scan()
    assert report.new_clips == 4 and woken == [1]
    rows = {r[0]: r for r in clip_rows(store)}
    for clip in clips:
        _clip_id, sha, size, _local = rows[clip.clip_id]
        data = plain_copy(store, clip.clip_id)
        assert (size, sha) == (clip.size, hashlib.sha256(clip.content()).hexdigest())
        assert hashlib.sha256(data).hexdigest() == sha
    ingested = json.loads((folder / "INGESTED.json").read_text())
    assert {e["clip_id"]: (e["size"], e["sha256"]) for e in ingested["clips"]} == {
        r[0]: (r[2], r[1]) for r in rows.values()
    }
    assert os.listdir(folder / "clips") == []
    assert os.listdir(store.tmp_dir) == []


def test_second_scan_and_redocked_clip_are_no_ops(store, dock_dir):
    clip = SimClip(5000, RECORDED)
    dock_camera(dock_dir, "BWV-000001", [clip], folder_name="a")
    Ingestor(store, "camden", dock_dir).scan()
    dock_camera(dock_dir, "BWV-000001", [clip], folder_name="b")  # same clip offered again
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.ingested_folders == ["b"] and report.new_clips == 0
    assert len(clip_rows(store)) == 1
    assert os.listdir(dock_dir / "b" / "clips") == []


def test_same_clip_id_with_other_content_is_refused(store, dock_dir):
    clip = SimClip(5000, RECORDED)
    dock_camera(dock_dir, "BWV-000001", [clip], folder_name="a")
    Ingestor(store, "camden", dock_dir).scan()
    forged = SimClip(6000, RECORDED, clip_id=clip.clip_id)
    dock_camera(dock_dir, "BWV-000001", [forged], folder_name="b")
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.bad_folders == ["b"]
    assert "already ingested with different content" in store.queue.summary()["failed_folders"][0].reason
    assert len(list((dock_dir / "b" / "clips").iterdir())) == 2  # left in place


def test_hash_mismatch_keeps_nothing_and_leaves_the_folder(store, dock_dir):
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(100, RECORDED), SimClip(100, RECORDED)])
    video = sorted((folder / "clips").glob("*.mp4"))[1]
    video.write_bytes(b"y" * 100)  # corrupted after the camera hashed it
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.bad_folders == [folder.name]
    assert clip_rows(store) == []
    assert os.listdir(store.tmp_dir) == [] and os.listdir(store.clips_dir) == []
    assert "does not match the camera's" in store.queue.summary()["failed_folders"][0].reason
    assert not (folder / "INGESTED.json").exists()


def test_bad_folder_never_blocks_others_and_is_retried_only_when_changed(store, dock_dir):
    bad = dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)], folder_name="a-bad")
    (bad / "device.json").write_text("{")
    dock_camera(dock_dir, "BWV-000002", [SimClip(10, RECORDED)], folder_name="b-good")
    ingestor = Ingestor(store, "camden", dock_dir)
    report = ingestor.scan()
    assert report.bad_folders == ["a-bad"] and report.ingested_folders == ["b-good"]
    assert ingestor.scan().bad_folders == []  # unchanged: not re-parsed
    (bad / "device.json").write_text(json.dumps({"serial": "BWV-000001"}))
    os.utime(bad, None)
    assert ingestor.scan().ingested_folders == ["a-bad"]
    assert store.queue.summary()["failed_folders"] == []


def test_folder_removed_from_dock_is_forgotten(store, dock_dir):
    bad = dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)])
    (bad / "device.json").write_text("{")
    Ingestor(store, "camden", dock_dir).scan()
    for p in sorted(bad.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    bad.rmdir()
    Ingestor(store, "camden", dock_dir).scan()
    assert store.queue.summary()["failed_folders"] == []


def test_a_camera_taken_out_of_the_dock_mid_ingest_is_not_a_bad_folder(store, dock_dir, monkeypatch):
    # Seen in the full-month simulation: the folder vanished between the scan's listing and
    # the copy, and the station reported it as a bad folder (an event to central) for nothing.
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)])

    def undocked(src, dst, *args, **options):
        shutil.rmtree(folder)
        raise FileNotFoundError(2, "No such file or directory", str(src))

    monkeypatch.setattr(ingest_module, "copy_hash_and_seal", undocked)
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.bad_folders == [] and store.queue.summary()["failed_folders"] == []
    assert clip_rows(store) == []


def test_disk_full_is_reported_as_transient_and_nothing_recorded(store, dock_dir, monkeypatch):
    dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)])

    def full(src, dst, *args, **options):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ingest_module, "copy_hash_and_seal", full)
    Ingestor(store, "camden", dock_dir).scan()
    [folder] = store.queue.summary()["failed_folders"]
    assert "disk full" in folder.reason
    assert clip_rows(store) == []


def test_a_folder_refused_for_a_full_disk_is_retried_once_space_is_freed(store, dock_dir, monkeypatch):
    dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)])
    real = ingest_module.copy_hash_and_seal
    monkeypatch.setattr(ingest_module, "copy_hash_and_seal", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "full")))
    ingestor = Ingestor(store, "camden", dock_dir)
    ingestor.scan()
    monkeypatch.setattr(ingest_module, "copy_hash_and_seal", real)
    ingestor.scan()
    assert clip_rows(store) == []  # within the pause after an I/O error: not retried yet
    assert store.queue.retry_transient_folders() == 1  # what the station does when it deleted local copies
    ingestor.scan()
    assert len(clip_rows(store)) == 1 and store.queue.summary()["failed_folders"] == []


def test_a_folder_that_would_cut_into_the_reserve_stays_on_the_camera(store, dock_dir, monkeypatch):
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(1000, RECORDED)])
    usage = shutil.disk_usage(store.data_dir)
    free = usage.free
    # The disk as it was: other processes writing to it meanwhile must not move the line by 500 bytes.
    monkeypatch.setattr("station.ingest.shutil.disk_usage", lambda _path: usage)
    Ingestor(store, "camden", dock_dir, reserve_bytes=free - 500).scan()  # 1,000 bytes would leave < reserve
    [failed] = store.queue.summary()["failed_folders"]
    assert "disk full" in failed.reason and clip_rows(store) == []
    assert list((folder / "clips").glob("*.mp4")) and not (folder / "INGESTED.json").exists()
    assert list(store.tmp_dir.iterdir()) == []
    store.queue.retry_transient_folders()
    Ingestor(store, "camden", dock_dir, reserve_bytes=free // 2).scan()
    assert len(clip_rows(store)) == 1


class Crash(BaseException):
    """Stands for the process dying at that line (not an Exception: nothing may catch it)."""


# (what dies, on which call): covers every durable step of station/ingest.py's docstring.
CRASH_POINTS = [
    ("copy_hash_and_seal", 2),
    ("fsync_file", 2),
    ("replace", 2),
    ("fsync_dir", 1),
    ("record_ingest", 1),
    ("write_atomic", 1),
    ("remove_clip_file", 2),
    ("sync_clips", 1),
]


@pytest.mark.parametrize("point, on_call", CRASH_POINTS)
def test_a_crash_at_any_step_is_finished_by_the_next_run(tmp_path, dock_dir, rng, monkeypatch, point, on_call):
    clips = random_shift(rng, 3, min_size=1, max_size=50_000)
    folder = dock_camera(dock_dir, "BWV-000001", clips)
    store = station_store(tmp_path / "data")
    calls = {"n": 0}

    def crashing(original):
        def wrapper(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == on_call:
                raise Crash(point)
            return original(*args, **kwargs)

        return wrapper

    with monkeypatch.context() as m:
        if point == "replace":
            m.setattr(ingest_module.os, "replace", crashing(os.replace))
        elif point == "record_ingest":
            m.setattr(store.queue, "record_ingest", crashing(store.queue.record_ingest))
        elif hasattr(CameraFolder, point):  # the steps that write or wipe the camera's folder
            m.setattr(CameraFolder, point, crashing(getattr(CameraFolder, point)))
        else:
            m.setattr(ingest_module, point, crashing(getattr(ingest_module, point)))
        with pytest.raises(Crash):
            Ingestor(store, "camden", dock_dir).scan()
    store.close()

    store = station_store(tmp_path / "data")  # restart
    store.queue.recover_interrupted()
    Ingestor(store, "camden", dock_dir).scan()
    rows = {r[0]: r for r in clip_rows(store)}
    assert sorted(rows) == sorted(c.clip_id for c in clips)  # all there, once
    for clip in clips:
        assert rows[clip.clip_id][1] == hashlib.sha256(clip.content()).hexdigest()
        assert plain_copy(store, clip.clip_id) == clip.content()
    assert os.listdir(folder / "clips") == []
    assert len(json.loads((folder / "INGESTED.json").read_text())["clips"]) == 3
    # ... and the docking and its clips reach central's feed once each (a redo after the commit adds nothing)
    kinds = [r[0] for r in store.db.execute("SELECT kind FROM outbox ORDER BY seq")]
    assert (kinds.count("camera_docked"), kinds.count("clip_ingested")) == (1, 3), kinds
    assert store.db.execute("SELECT COUNT(*) FROM dockings").fetchone()[0] == 1
    store.close()


def test_interrupted_wipe_with_a_lone_sidecar_is_finished(store, dock_dir):
    clip = SimClip(100, RECORDED)
    folder = dock_camera(dock_dir, "BWV-000001", [clip])
    sidecar = next((folder / "clips").glob("*.json"))
    saved = sidecar.read_bytes()
    Ingestor(store, "camden", dock_dir).scan()
    sidecar.write_bytes(saved)  # as if the crash came between the video and the sidecar unlink
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.bad_folders == [] and os.listdir(folder / "clips") == []


def test_the_wipe_removes_every_video_before_any_sidecar(store, dock_dir, rng, monkeypatch):
    """The videos go several at once; a crash among them must still leave no video without its sidecar."""
    folder = dock_camera(dock_dir, "BWV-000001", random_shift(rng, 5, min_size=1, max_size=10_000))
    removed = []
    original = CameraFolder.remove_clip_file

    def recording(self, name):
        removed.append(name)
        original(self, name)

    monkeypatch.setattr(CameraFolder, "remove_clip_file", recording)
    Ingestor(store, "camden", dock_dir).scan()
    suffixes = [os.path.splitext(name)[1] for name in removed]
    assert suffixes == [".mp4"] * 5 + [".json"] * 5, removed
    assert os.listdir(folder / "clips") == []


# -- the dock inbox is hostile input -------------------------------------------------------
# A dock folder is written by whoever holds the camera: links, special files and planted
# names must never make the station read, upload or delete anything outside that folder.


def only_clip(folder, suffix=".mp4"):
    [path] = (folder / "clips").glob(f"*{suffix}")
    return path


def failed_reason(store, name):
    return {f.folder: f.reason for f in store.queue.summary()["failed_folders"]}.get(name)


def test_a_clip_linked_to_a_station_file_is_refused(store, dock_dir, tmp_path):
    secret = tmp_path / "station.toml"
    secret.write_text('token = "camden-secret"\n')
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED, include_sha256=False)])
    video = only_clip(folder)
    video.unlink()
    video.symlink_to(secret)
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.bad_folders == [folder.name]
    assert "symbolic link" in failed_reason(store, folder.name)
    assert clip_rows(store) == [] and os.listdir(store.clips_dir) == []
    assert video.is_symlink() and secret.read_text() == 'token = "camden-secret"\n'
    assert not (folder / "INGESTED.json").exists()


def test_a_linked_clips_folder_is_refused_and_the_files_it_points_at_survive(store, dock_dir, tmp_path):
    elsewhere = dock_camera(tmp_path / "elsewhere", "BWV-000009", [SimClip(10, RECORDED), SimClip(20, RECORDED)])
    outside = sorted(p.name for p in (elsewhere / "clips").iterdir())
    folder = dock_camera(dock_dir, "BWV-000001", [])
    (folder / "clips").rmdir()
    (folder / "clips").symlink_to(elsewhere / "clips")
    good = dock_camera(dock_dir, "BWV-000002", [SimClip(10, RECORDED)], folder_name="zz-good")
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.bad_folders == [folder.name] and report.ingested_folders == [good.name]
    assert "clips is a symbolic link" in failed_reason(store, folder.name)
    assert sorted(p.name for p in (elsewhere / "clips").iterdir()) == outside
    assert len(clip_rows(store)) == 1  # the good folder's one clip, nothing from outside
    assert not (folder / "INGESTED.json").exists()


@pytest.mark.parametrize("which", ["device.json", "sidecar"])
def test_a_linked_device_json_or_sidecar_is_refused(store, dock_dir, tmp_path, which):
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)])
    target = folder / "device.json" if which == "device.json" else only_clip(folder, ".json")
    outside = tmp_path / f"outside-{target.name}"
    shutil.copy(target, outside)  # a valid file: only the link makes it wrong
    target.unlink()
    target.symlink_to(outside)
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.bad_folders == [folder.name]
    assert f"{target.relative_to(folder)} is a symbolic link" in failed_reason(store, folder.name)
    assert clip_rows(store) == [] and outside.exists()
    assert only_clip(folder).exists()  # left in place


def test_a_linked_camera_folder_is_reported_and_never_followed(store, dock_dir, tmp_path):
    elsewhere = dock_camera(tmp_path / "elsewhere", "BWV-000009", [SimClip(10, RECORDED, include_sha256=False)])
    (dock_dir / "cam").symlink_to(elsewhere)
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.bad_folders == ["cam"]
    assert "symbolic link" in failed_reason(store, "cam")
    assert clip_rows(store) == [] and len(list((elsewhere / "clips").iterdir())) == 2
    assert not (elsewhere / "INGESTED.json").exists()


def test_ingested_json_is_never_written_through_a_planted_link(store, dock_dir, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("not the camera's")
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)])
    (folder / ".INGESTED.json.tmp").symlink_to(victim)  # the temporary name INGESTED.json is written under
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.ingested_folders == [folder.name]
    assert victim.read_text() == "not the camera's"
    assert (folder / "INGESTED.json").is_file() and not (folder / "INGESTED.json").is_symlink()


def test_a_linked_ingested_json_is_refused(store, dock_dir, tmp_path):
    victim = tmp_path / "victim.json"
    victim.write_text('{"station_id": "x", "ingested_at": "2026-11-20T18:04:05Z", "clips": []}')
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)])
    (folder / "INGESTED.json").symlink_to(victim)
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.bad_folders == [folder.name]
    assert "INGESTED.json is a symbolic link" in failed_reason(store, folder.name)
    assert victim.read_text().startswith('{"station_id": "x"') and clip_rows(store) == []


def scan_with_deadline(ingestor, unblock, deadline_s=10.0):
    """Run a scan on a thread and wait for it at most ``deadline_s``; a blocked scan is a failure."""
    import threading
    import time

    result: dict[str, IngestReport] = {}
    thread = threading.Thread(target=lambda: result.update(report=ingestor.scan()), daemon=True)
    thread.start()
    end = time.monotonic() + deadline_s
    while thread.is_alive() and time.monotonic() < end:
        thread.join(0.05)
    try:
        assert not thread.is_alive(), "ingest blocked on a special file"
    finally:
        if thread.is_alive():
            unblock()
            thread.join(5)
    return result["report"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("which", ["video", "sidecar", "device.json"])
def test_a_fifo_is_refused_without_blocking_ingest(store, dock_dir, which):
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)])
    good = dock_camera(dock_dir, "BWV-000002", [SimClip(10, RECORDED)], folder_name="zz-good")
    target = {"video": only_clip(folder), "sidecar": only_clip(folder, ".json"), "device.json": folder / "device.json"}[
        which
    ]
    target.unlink()
    os.mkfifo(target)

    def unblock():  # a writer that closes at once gives a blocked reader its end of file
        os.close(os.open(target, os.O_WRONLY | os.O_NONBLOCK))

    report = scan_with_deadline(Ingestor(store, "camden", dock_dir), unblock)
    assert report.bad_folders == [folder.name] and report.ingested_folders == [good.name]
    assert f"{target.relative_to(folder)} is a FIFO, not a regular file" in failed_reason(store, folder.name)
    assert len(clip_rows(store)) == 1


@pytest.mark.parametrize("which", ["video", "sidecar"])
def test_a_device_node_is_refused(store, dock_dir, which):
    import stat

    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)])
    target = only_clip(folder) if which == "video" else only_clip(folder, ".json")
    target.unlink()
    try:
        os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # what /dev/null is
    except PermissionError:
        pytest.skip("making a device node needs CAP_MKNOD")
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.bad_folders == [folder.name]
    assert f"{target.relative_to(folder)} is a character device, not a regular file" in failed_reason(
        store, folder.name
    )
    assert clip_rows(store) == [] and target.exists()


def test_a_hard_link_is_refused_and_left_in_place(store, dock_dir, tmp_path):
    # A dock folder copied onto the station's own disk (not a mounted camera) could hard-link a
    # file of the station (its config, with its token): a camera's FAT storage has no hard links.
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)])
    secret = tmp_path / "station.toml"
    secret.write_text('token = "station-secret"')
    clip = only_clip(folder)
    os.unlink(clip)
    os.link(secret, clip)
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.ingested_folders == [] and clip_rows(store) == []
    [(name, reason)] = [(f.folder, f.reason) for f in store.queue.summary()["failed_folders"]]
    assert name == folder.name and "hard link" in reason, reason
    assert secret.read_text() == 'token = "station-secret"' and clip.exists()


def test_a_hard_link_swapped_in_after_the_check_and_named_once_by_the_open_is_refused(dock_dir, tmp_path, monkeypatch):
    # The camera's own file when checked; a hard link to a station file when opened; its dock
    # name gone again before the opened file is looked at, so that file has one name by then.
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)])
    secret = tmp_path / "station.toml"
    secret.write_text('token = "station-secret"')
    clip = only_clip(folder)
    relative = f"clips/{clip.name}"
    camera = CameraFolder(folder)
    checked = CameraFolder.require_regular

    def check_then_swap(self, name, st=None):
        result = checked(self, name, st)
        if st is None and name == relative:
            os.unlink(clip)
            os.link(secret, clip)
        return result

    real_fstat = os.fstat

    def unlink_then_fstat(fd):
        if clip.exists() and os.stat(clip).st_ino == os.stat(secret).st_ino:
            os.unlink(clip)
        return real_fstat(fd)

    monkeypatch.setattr(CameraFolder, "require_regular", check_then_swap)
    monkeypatch.setattr(os, "fstat", unlink_then_fstat)
    try:
        with pytest.raises(DockFolderError, match="replaced"):
            camera.read_bytes(relative, 1 << 20)
    finally:
        monkeypatch.undo()
        camera.close()
    assert secret.read_text() == 'token = "station-secret"'


def test_a_zero_byte_clip_is_a_clip(store, dock_dir):
    clip = SimClip(0, RECORDED)
    folder = dock_camera(dock_dir, "BWV-000001", [clip])
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.ingested_folders == [folder.name] and report.new_clips == 1
    [(clip_id, sha, size, local)] = clip_rows(store)
    assert (clip_id, size, sha) == (clip.clip_id, 0, hashlib.sha256(b"").hexdigest())
    assert plain_copy(store, clip_id) == b""
    assert (store.data_dir / local).stat().st_size > 0  # sealed: even nothing is authenticated


# -- a full disk, a database that cannot be written ------------------------------------------


def station_settings(store, dock_dir, **extra):
    return settings_from_dict(
        {
            "station_id": "camden",
            "borough": "Camden",
            "central_url": "http://127.0.0.1:9",
            "token": "t",
            "data_dir": str(store.data_dir),
            "dock_dir": str(dock_dir),
            **extra,
        },
        StationSettings,
    )


def folder_lines(caplog, name):
    return [r for r in caplog.records if name in r.getMessage()]


def test_a_partial_copy_left_by_a_crash_is_removed_at_start_up(store, dock_dir):
    (store.tmp_dir / "0b2e4f3c-0000-4000-8000-000000000000.part").write_bytes(b"x" * 10)
    Ingestor(store, "camden", dock_dir)
    assert os.listdir(store.tmp_dir) == []


def test_a_disk_filling_up_mid_copy_removes_the_partial_copy_and_says_so_once(tmp_path, dock_dir, monkeypatch, caplog):
    disk = SmallDisk(tmp_path / "data", 1 << 20).mount()  # a real full filesystem, not an injected error
    try:
        store = station_store(tmp_path / "data")
        folder = dock_camera(dock_dir, "BWV-000001", [SimClip(2 << 20, RECORDED)])
        monkeypatch.setattr(ingest_module, "TRANSIENT_RETRY", timedelta(0))  # retried at every scan
        ingestor = Ingestor(store, "camden", dock_dir)
        with caplog.at_level(logging.INFO):
            for _ in range(3):
                assert ingestor.scan().bad_folders == [folder.name]
        assert os.listdir(store.tmp_dir) == [] and os.listdir(store.clips_dir) == []
        assert failed_reason(store, folder.name).startswith("disk full: ")
        [line] = folder_lines(caplog, folder.name)
        assert "disk full: " in line.getMessage() and line.exc_info is None
        assert clip_rows(store) == [] and only_clip(folder).exists() and not (folder / "INGESTED.json").exists()

        status = station_status(station_settings(store, dock_dir), store)
        assert [p for p in status.problems if p.startswith("disk full: ")]
        assert status.failed_folders[0].reason.startswith("disk full: ")
        store.close()
    finally:
        disk.unmount()


def test_a_camera_file_that_fails_to_read_mid_copy_leaves_nothing_queued(store, dock_dir, monkeypatch):
    """The camera's storage failing after a clip's first block: no row, no copy, the camera untouched."""
    small, large = SimClip(1000, RECORDED), SimClip(COPY_BUFFER_BYTES + 1000, RECORDED)
    folder = dock_camera(dock_dir, "BWV-000001", [small, large])
    on_camera = {p.name: p.read_bytes() for p in (folder / "clips").iterdir()}
    real = _DirectSource.read
    reads = []

    def failing(self, view, offset):
        reads.append(offset)
        if offset:  # only the large clip has a block past the first
            raise OSError(errno.EIO, "Input/output error")
        return real(self, view, offset)

    monkeypatch.setattr(_DirectSource, "read", failing)
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.bad_folders == [folder.name] and any(reads)
    assert "Input/output error" in failed_reason(store, folder.name)
    assert clip_rows(store) == [] and os.listdir(store.tmp_dir) == [] and os.listdir(store.clips_dir) == []
    assert {p.name: p.read_bytes() for p in (folder / "clips").iterdir()} == on_camera
    assert not (folder / "INGESTED.json").exists()

    monkeypatch.setattr(_DirectSource, "read", real)  # the storage answers again: the retry takes both
    store.queue.retry_transient_folders()
    Ingestor(store, "camden", dock_dir).scan()
    assert sorted(r[0] for r in clip_rows(store)) == sorted([small.clip_id, large.clip_id])
    [video] = [data for name, data in on_camera.items() if name.endswith(".mp4") and len(data) == large.size]
    assert plain_copy(store, large.clip_id) == video


def test_a_database_that_cannot_be_written_is_reported_and_loses_nothing(store, dock_dir, monkeypatch, caplog):
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(1000, RECORDED)])
    store.db.execute("PRAGMA query_only = ON")  # SQLite's own refusal: "attempt to write a readonly database"
    monkeypatch.setattr(ingest_module, "TRANSIENT_RETRY", timedelta(0))
    ingestor = Ingestor(store, "camden", dock_dir)
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            ingestor.scan()  # never raises: a scheduler would print its traceback every scan
    [line] = folder_lines(caplog, folder.name)
    assert "attempt to write a readonly database" in line.getMessage() and line.exc_info is None
    assert only_clip(folder).exists() and not (folder / "INGESTED.json").exists()

    status = station_status(station_settings(store, dock_dir, min_free_bytes=0), store)
    assert status.problems == ["station database cannot be written: attempt to write a readonly database"]

    store.db.execute("PRAGMA query_only = OFF")
    assert ingestor.scan().ingested_folders == [folder.name]
    assert len(clip_rows(store)) == 1 and os.listdir(folder / "clips") == []
    assert station_status(station_settings(store, dock_dir, min_free_bytes=0), store).problems == []


@pytest.mark.parametrize("message", ["disk I/O error", "database or disk is full"])
def test_database_errors_at_the_commit_point_leave_the_camera_folder_in_place(
    store, dock_dir, monkeypatch, caplog, message
):
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(1000, RECORDED)])

    def fail(*args, **kwargs):
        raise sqlite3.OperationalError(message)

    monkeypatch.setattr(store.queue, "record_ingest", fail)
    monkeypatch.setattr(store.queue, "record_bad_folder", fail)
    monkeypatch.setattr(ingest_module, "TRANSIENT_RETRY", timedelta(0))
    ingestor = Ingestor(store, "camden", dock_dir)
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            assert ingestor.scan().bad_folders == [folder.name]
    [line] = folder_lines(caplog, folder.name)
    assert message in line.getMessage() and line.exc_info is None
    assert only_clip(folder).exists() and only_clip(folder, ".json").exists()
    assert not (folder / "INGESTED.json").exists()


# -- names and JSON no camera writes -------------------------------------------------------


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("which", ["device.json", "sidecar", "INGESTED.json"])
def test_json_nested_too_deeply_is_a_bad_folder_and_the_others_are_ingested(store, dock_dir, which):
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)], folder_name="a")
    good = dock_camera(dock_dir, "BWV-000002", [SimClip(10, RECORDED)], folder_name="zz-good")
    target = {
        "device.json": folder / "device.json",
        "sidecar": only_clip(folder, ".json"),
        "INGESTED.json": folder / "INGESTED.json",
    }[which]
    original = (
        json.loads(target.read_text())
        if target.exists()
        else {"station_id": "x", "clips": [], "ingested_at": "2026-11-20T18:04:05Z"}
    )
    target.write_bytes(json.dumps(original)[:-1].encode() + b', "x": ' + _nested(200_000) + b"}")
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.bad_folders == ["a"] and report.ingested_folders == [good.name]
    assert "nested too deeply" in failed_reason(store, "a")
    assert len(clip_rows(store)) == 1 and only_clip(folder).exists()


def test_a_folder_named_in_bytes_that_are_not_utf8_is_ingested_under_a_printable_name(store, dock_dir):
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)], folder_name="a")
    os.rename(folder, os.path.join(os.fsencode(dock_dir), b"cam\xff\n"))
    good = dock_camera(dock_dir, "BWV-000002", [SimClip(10, RECORDED)], folder_name="zz-good")
    report = Ingestor(store, "camden", dock_dir).scan()
    assert sorted(report.ingested_folders) == ["cam\\xff\\n", good.name] and report.bad_folders == []
    assert len(clip_rows(store)) == 2
    assert [r[0] for r in store.db.execute("SELECT folder FROM dockings ORDER BY folder")] == ["cam\\xff\\n", "zz-good"]
    assert Ingestor(store, "camden", dock_dir).scan().ingested_folders == []  # done, and seen so


@pytest.mark.parametrize("stem", [b"x\xff", b"x\nERROR forged log line", b"x\x1b[2J"])
def test_a_clip_name_that_is_not_printable_text_is_a_bad_folder_and_the_others_are_ingested(store, dock_dir, stem):
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)], folder_name="a")
    for path in (folder / "clips").iterdir():
        os.rename(path, os.path.join(os.fsencode(folder / "clips"), stem + os.fsencode(path.suffix)))
    good = dock_camera(dock_dir, "BWV-000002", [SimClip(10, RECORDED)], folder_name="zz-good")
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.bad_folders == ["a"] and report.ingested_folders == [good.name]
    reason = failed_reason(store, "a")
    assert "not printable" in reason and reason.isprintable()
    assert len(clip_rows(store)) == 1 and len(os.listdir(folder / "clips")) == 2


def test_an_unexpected_error_in_one_folder_never_blocks_the_others(store, dock_dir, monkeypatch, caplog):
    dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)], folder_name="a")
    good = dock_camera(dock_dir, "BWV-000002", [SimClip(10, RECORDED)], folder_name="zz-good")
    real = ingest_module.dock.read_docked_camera

    def broken(opened):
        if opened.name == "a":
            raise ValueError("a bug met in folder a")
        return real(opened)

    monkeypatch.setattr(ingest_module.dock, "read_docked_camera", broken)
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.bad_folders == ["a"] and report.ingested_folders == [good.name]
    assert "a bug met in folder a" in failed_reason(store, "a")


def test_a_clip_id_seen_before_with_other_bytes_of_the_same_size_is_never_wiped(store, dock_dir):
    # A camera that says no SHA-256 of its own: the size alone must not decide that the
    # station already holds the recording, or a forged clip_id docked first (by whoever
    # learnt it) has the real footage wiped from its camera without a copy.
    forged = SimClip(5000, RECORDED, include_sha256=False, seed=1)
    dock_camera(dock_dir, "BWV-000666", [forged], folder_name="a-forger")
    assert Ingestor(store, "camden", dock_dir).scan().new_clips == 1
    real = SimClip(5000, RECORDED, clip_id=forged.clip_id, include_sha256=False, seed=2)
    assert real.content() != forged.content()
    folder = dock_camera(dock_dir, "BWV-000001", [real], folder_name="b-real")
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.bad_folders == ["b-real"]
    assert "already ingested with different content" in failed_reason(store, "b-real")
    assert only_clip(folder).read_bytes() == real.content()  # left on the camera
    assert not (folder / "INGESTED.json").exists()


def test_a_clip_redocked_without_its_sha256_is_recognised_by_its_bytes(store, dock_dir):
    clip = SimClip(5000, RECORDED, include_sha256=False)
    dock_camera(dock_dir, "BWV-000001", [clip], folder_name="a")
    Ingestor(store, "camden", dock_dir).scan()
    folder = dock_camera(dock_dir, "BWV-000001", [clip], folder_name="b")
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.ingested_folders == ["b"] and report.new_clips == 0
    assert os.listdir(folder / "clips") == []


@pytest.mark.parametrize(
    "which, when",
    [
        ("sidecar", "0001-01-01T00:00:00+14:00"),
        ("sidecar", "9999-12-31T23:59:59-14:00"),
        ("device.json", "9999-12-31T23:59:59-14:00"),
    ],
)
def test_a_time_with_no_utc_equivalent_is_a_bad_folder_with_its_reason(store, dock_dir, which, when):
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)], folder_name="a")
    target = folder / "device.json" if which == "device.json" else only_clip(folder, ".json")
    content = json.loads(target.read_text())
    content["docked_at" if which == "device.json" else "recorded_at"] = when
    target.write_text(json.dumps(content))
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.bad_folders == ["a"]
    assert f"{target.relative_to(folder)}: " in failed_reason(store, "a")
    assert "out of range" in failed_reason(store, "a") and "unexpected" not in failed_reason(store, "a")
