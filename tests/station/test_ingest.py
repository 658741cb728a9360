import hashlib
import json
import os
import shutil

import pytest

from fleet.camera import SimClip, dock_camera, random_shift
from station import ingest as ingest_module
from station.ingest import Ingestor
from station.store import StationStore
from tests.station.conftest import RECORDED


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
        clip_id, sha, size, local = rows[clip.clip_id]
        data = (store.data_dir / local).read_bytes()
        assert (size, sha) == (clip.size, hashlib.sha256(clip.content()).hexdigest())
        assert hashlib.sha256(data).hexdigest() == sha
    ingested = json.loads((folder / "INGESTED.json").read_text())
    assert {e["clip_id"]: (e["size"], e["sha256"]) for e in ingested["clips"]} == {r[0]: (r[2], r[1]) for r in rows.values()}
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
    assert "already ingested with different content" in store.summary()["failed_folders"][0].reason
    assert len(list((dock_dir / "b" / "clips").iterdir())) == 2  # left in place


def test_hash_mismatch_keeps_nothing_and_leaves_the_folder(store, dock_dir):
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(100, RECORDED), SimClip(100, RECORDED)])
    video = sorted((folder / "clips").glob("*.mp4"))[1]
    video.write_bytes(b"y" * 100)  # corrupted after the camera hashed it
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.bad_folders == [folder.name]
    assert clip_rows(store) == []
    assert os.listdir(store.tmp_dir) == [] and os.listdir(store.clips_dir) == []
    assert "does not match the camera's" in store.summary()["failed_folders"][0].reason
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
    assert store.summary()["failed_folders"] == []


def test_folder_removed_from_dock_is_forgotten(store, dock_dir):
    bad = dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)])
    (bad / "device.json").write_text("{")
    Ingestor(store, "camden", dock_dir).scan()
    for p in sorted(bad.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    bad.rmdir()
    Ingestor(store, "camden", dock_dir).scan()
    assert store.summary()["failed_folders"] == []


def test_a_camera_taken_out_of_the_dock_mid_ingest_is_not_a_bad_folder(store, dock_dir, monkeypatch):
    # Seen in the full-month simulation: the folder vanished between the scan's listing and
    # the copy, and the station reported it as a bad folder (an event to central) for nothing.
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)])

    def undocked(src, dst, chunk_bytes=None, **options):
        shutil.rmtree(folder)
        raise FileNotFoundError(2, "No such file or directory", str(src))

    monkeypatch.setattr(ingest_module, "copy_and_hash", undocked)
    report = Ingestor(store, "camden", dock_dir).scan()
    assert report.bad_folders == [] and store.summary()["failed_folders"] == []
    assert clip_rows(store) == []


def test_disk_full_is_reported_as_transient_and_nothing_recorded(store, dock_dir, monkeypatch):
    dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)])

    def full(src, dst, chunk_bytes=None, **options):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ingest_module, "copy_and_hash", full)
    Ingestor(store, "camden", dock_dir).scan()
    [folder] = store.summary()["failed_folders"]
    assert "disk full" in folder.reason
    assert clip_rows(store) == []


def test_a_folder_refused_for_a_full_disk_is_retried_once_space_is_freed(store, dock_dir, monkeypatch):
    dock_camera(dock_dir, "BWV-000001", [SimClip(10, RECORDED)])
    real = ingest_module.copy_and_hash
    monkeypatch.setattr(ingest_module, "copy_and_hash", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "full")))
    ingestor = Ingestor(store, "camden", dock_dir)
    ingestor.scan()
    monkeypatch.setattr(ingest_module, "copy_and_hash", real)
    ingestor.scan()
    assert clip_rows(store) == []  # within the pause after an I/O error: not retried yet
    assert store.retry_transient_folders() == 1  # what the station does when it deleted local copies
    ingestor.scan()
    assert len(clip_rows(store)) == 1 and store.summary()["failed_folders"] == []


def test_a_folder_that_would_cut_into_the_reserve_stays_on_the_camera(store, dock_dir):
    folder = dock_camera(dock_dir, "BWV-000001", [SimClip(1000, RECORDED)])
    free = shutil.disk_usage(store.data_dir).free
    Ingestor(store, "camden", dock_dir, reserve_bytes=free - 500).scan()  # 1,000 bytes would leave < reserve
    [failed] = store.summary()["failed_folders"]
    assert "disk full" in failed.reason and clip_rows(store) == []
    assert list((folder / "clips").glob("*.mp4")) and not (folder / "INGESTED.json").exists()
    assert list(store.tmp_dir.iterdir()) == []
    store.retry_transient_folders()
    Ingestor(store, "camden", dock_dir, reserve_bytes=free // 2).scan()
    assert len(clip_rows(store)) == 1


class Crash(BaseException):
    """Stands for the process dying at that line (not an Exception: nothing may catch it)."""


# (what dies, on which call): covers every durable step of station/ingest.py's docstring.
CRASH_POINTS = [("copy_and_hash", 2), ("fsync_file", 2), ("replace", 2), ("fsync_dir", 1), ("record_ingest", 1),
                ("atomic_write_bytes", 1), ("unlink", 2), ("fsync_dir", 2)]


@pytest.mark.parametrize("point, on_call", CRASH_POINTS)
def test_a_crash_at_any_step_is_finished_by_the_next_run(tmp_path, dock_dir, rng, monkeypatch, point, on_call):
    clips = random_shift(rng, 3, min_size=1, max_size=50_000)
    folder = dock_camera(dock_dir, "BWV-000001", clips)
    store = StationStore(tmp_path / "data")
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
            m.setattr(store, "record_ingest", crashing(store.record_ingest))
        elif point == "unlink":
            m.setattr(ingest_module.Path, "unlink", crashing(ingest_module.Path.unlink))
        else:
            m.setattr(ingest_module, point, crashing(getattr(ingest_module, point)))
        with pytest.raises(Crash):
            Ingestor(store, "camden", dock_dir).scan()
    store.close()

    store = StationStore(tmp_path / "data")  # restart
    store.recover_interrupted()
    Ingestor(store, "camden", dock_dir).scan()
    rows = {r[0]: r for r in clip_rows(store)}
    assert sorted(rows) == sorted(c.clip_id for c in clips)  # all there, once
    for clip in clips:
        assert rows[clip.clip_id][1] == hashlib.sha256(clip.content()).hexdigest()
        assert (store.data_dir / rows[clip.clip_id][3]).read_bytes() == clip.content()
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
