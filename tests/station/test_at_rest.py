"""Clips at rest on the station (docs/at-rest.md): sealed as ingested, opened as uploaded, damage
refused, the key's sources and permissions, start-up without the key, rotation, crypto-shredding,
and clips stored plain before all this."""

import hashlib
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import msgspec
import pytest

from fleet.cipher import HEADER_BYTES, SEGMENT_BYTES, TAG_BYTES, Keyring, key_id
from fleet.config import StationKeySettings, StationSettings, settings_from_dict
from fleet.errors import ConfigError, FleetError
from simulation.camera import SimClip, dock_camera
from station.ingest import Ingestor
from station.keys import load_keyring, rotate, write_new_key
from station.node import StationNode
from station.store import StationStore
from station.sync.clips import SyncWorker, TusUploader, purge_local_copies
from tests.station.conftest import FAST, RECORDED, TEST_KEY, TEST_KEYS, key_file, plain_copy, station_store
from tests.station.sync.fake_tus import FakeTus

CHUNK = 64 * 1024  # not a multiple of the segment size: chunks start inside segments
ROOT = Path(__file__).resolve().parents[2]
MARKER = b"PLAINTEXT-MARKER-BWV-0451:"


def ingest(store, dock_dir, *clips, folder_name=None):
    dock_camera(dock_dir, "BWV-000001", list(clips), folder_name=folder_name)
    Ingestor(store, "camden", dock_dir).scan()


def row(store, clip_id):
    return store.db.execute(
        "SELECT state, last_error, local_path, wrapped_by, wrapped_key FROM clips WHERE clip_id = ?", [clip_id]
    ).fetchone()


def worker(store, server):
    client = httpx.Client(base_url="http://central", transport=server.transport())
    return SyncWorker(store, TusUploader(client, store, FAST, chunk_bytes=CHUNK), FAST)


# -- sealed as ingested ----------------------------------------------------------------------


def test_no_plaintext_reaches_the_stations_disk(store, dock_dir):
    clip = SimClip(0, RECORDED, include_sha256=False)
    folder = dock_camera(dock_dir, "BWV-000001", [clip])
    content = MARKER * 100_000  # ~2.6 MB: several segments
    [video] = (folder / "clips").glob("*.mp4")
    video.write_bytes(content)
    Ingestor(store, "camden", dock_dir).scan()
    store.db.execute("PRAGMA wal_checkpoint(FULL)")
    files = [p for p in store.data_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".sealed" for p in files)
    for path in files:
        assert MARKER not in path.read_bytes(), path
    (clip_id, sha256, size) = store.db.execute("SELECT clip_id, sha256, size FROM clips").fetchone()
    assert (sha256, size) == (hashlib.sha256(content).hexdigest(), len(content))  # the camera's bytes
    assert plain_copy(store, clip_id) == content


def test_each_clip_has_its_own_data_key_wrapped_by_the_station_key(store, dock_dir):
    clips = [SimClip(1000, RECORDED), SimClip(1000, RECORDED)]
    ingest(store, dock_dir, *clips)
    rows = [row(store, c.clip_id) for c in clips]
    assert {r[3] for r in rows} == {TEST_KEYS.current_id}
    assert rows[0][4] != rows[1][4] and all(len(r[4]) == 40 for r in rows)  # AES key wrap of 32 bytes


def test_no_station_key_no_ingest(tmp_path, dock_dir):
    store = StationStore(tmp_path / "data")
    try:
        with pytest.raises(ConfigError, match="never stored unencrypted"):
            Ingestor(store, "camden", dock_dir)
    finally:
        store.close()


# -- opened as uploaded ----------------------------------------------------------------------


def test_central_receives_the_cameras_bytes_resumed_from_offsets_inside_segments(store, dock_dir):
    clip = SimClip(3 * SEGMENT_BYTES + 12_345, RECORDED)
    ingest(store, dock_dir, clip)
    server = FakeTus()
    patches = {"n": 0}

    def cut_some_patches(request):
        if request.method == "PATCH":
            patches["n"] += 1
            if patches["n"] in (7, 23):  # two: the quick retries of one pass take them
                raise httpx.RemoteProtocolError("connection reset")
        return None

    server.fault = cut_some_patches
    assert worker(store, server).run_once().verified == [clip.clip_id]
    assert server.verified()[clip.clip_id] == clip.content()
    assert patches["n"] > 23


@pytest.mark.parametrize("offset", [0, 1, SEGMENT_BYTES - 1, SEGMENT_BYTES, SEGMENT_BYTES + 1, 3 * SEGMENT_BYTES])
def test_an_upload_resumed_at_any_offset_sends_the_rest_of_the_original(store, dock_dir, offset):
    clip = SimClip(3 * SEGMENT_BYTES + 100, RECORDED)
    ingest(store, dock_dir, clip)
    [queued] = store.queue.claim_due(1)
    uploader = TusUploader(httpx.Client(), store, FAST, chunk_bytes=CHUNK)
    read = uploader._reader(queued, store.local_path(queued.local_path))
    assert b"".join(read(offset, clip.size - offset, 4096)) == clip.content()[offset:]
    checksums = list(uploader._chunks(queued, read, offset))
    assert checksums[0][0] == offset and sum(length for _, length, _ in checksums) == clip.size - offset


# -- damage ------------------------------------------------------------------------------------


def _flip(path: Path, at: int) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x10]))


def _segment(n: int) -> tuple[int, int]:
    step = SEGMENT_BYTES + TAG_BYTES
    return HEADER_BYTES + n * step, step


def damage_flip(path, _other):
    _flip(path, _segment(2)[0] + 999)


def damage_truncate(path, _other):
    os.truncate(path, path.stat().st_size - 1)


def damage_swap(path, _other):
    raw = bytearray(path.read_bytes())
    (one, step), (two, _) = _segment(1), _segment(2)
    raw[one : one + step], raw[two : two + step] = raw[two : two + step], raw[one : one + step]
    path.write_bytes(bytes(raw))


def damage_foreign(path, other):
    raw, foreign = bytearray(path.read_bytes()), other.read_bytes()
    at, step = _segment(1)
    raw[at : at + step] = foreign[at : at + step]
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", [damage_flip, damage_truncate, damage_swap, damage_foreign])
def test_a_damaged_copy_stops_its_upload_and_is_reported_damaged_never_verified(store, dock_dir, damage):
    clip, other = SimClip(4 * SEGMENT_BYTES, RECORDED), SimClip(4 * SEGMENT_BYTES, RECORDED)
    ingest(store, dock_dir, clip, other)
    damage(store.local_path(row(store, clip.clip_id)[2]), store.local_path(row(store, other.clip_id)[2]))
    server = FakeTus()
    report = worker(store, server).run_once()
    assert report.failed == [clip.clip_id] and report.verified == [other.clip_id]
    state, last_error, *_ = row(store, clip.clip_id)
    assert state == "failed" and f"clip {clip.clip_id} is damaged at the station" in last_error
    assert clip.clip_id not in server.verified()
    # Whatever central got of it are genuine bytes: each segment is checked before it is sent.
    for upload in server.uploads.values():
        if upload["clip_id"] == clip.clip_id:
            assert clip.content().startswith(bytes(upload["data"]))
    failed = store.queue.summary()["failed_clips"]
    assert [(f.clip_id, "damaged at the station" in (f.last_error or "")) for f in failed] == [(clip.clip_id, True)]
    # Central is told, in the transaction that failed it, so the clip's chain of custody says so.
    told = [msgspec.json.decode(e.event) for e in store.outbox.pending(100)]
    damaged = [e for e in told if e["kind"] == "clip_damaged"]
    assert [(e["clip_id"], "damaged at the station" in e["reason"]) for e in damaged] == [(clip.clip_id, True)]


# -- the key -----------------------------------------------------------------------------------


def test_a_key_file_open_to_group_or_others_is_refused_saying_so(tmp_path):
    path = Path(key_file(tmp_path))
    assert load_keyring(StationKeySettings(file=str(path))).current_id == key_id(TEST_KEY)
    for mode in (0o640, 0o604, 0o660):
        path.chmod(mode)
        with pytest.raises(ConfigError, match=rf"open to group or others \(mode 0{mode:o}\).*chmod 600"):
            load_keyring(StationKeySettings(file=str(path)))


def test_keys_from_the_environment_and_a_systemd_credential(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEET_TEST_KEY", TEST_KEY.hex())
    assert load_keyring(StationKeySettings(env="FLEET_TEST_KEY")).current_id == TEST_KEYS.current_id
    monkeypatch.delenv("FLEET_TEST_KEY")
    with pytest.raises(ConfigError, match=r"\$FLEET_TEST_KEY, which is not set"):
        load_keyring(StationKeySettings(env="FLEET_TEST_KEY"))
    with pytest.raises(ConfigError, match="CREDENTIALS_DIRECTORY"):
        load_keyring(StationKeySettings(credential="station-key"))
    (tmp_path / "station-key").write_text(TEST_KEY.hex())
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert load_keyring(StationKeySettings(credential="station-key")).current_id == TEST_KEYS.current_id


def test_one_source_per_key_in_the_config(tmp_path):
    base = {"station_id": "camden", "borough": "Camden", "central_url": "http://c", "token": "t"}
    base |= {"data_dir": "d", "dock_dir": "k"}
    with pytest.raises(ConfigError, match="give exactly one of file, env, credential"):
        settings_from_dict({**base, "station_key": {"file": "a", "env": "B"}}, StationSettings)
    with pytest.raises(ConfigError, match=r"previous\[0\]: give exactly one"):
        settings_from_dict({**base, "station_key": {"file": "a", "previous": [{}]}}, StationSettings)
    settings = settings_from_dict({**base, "station_key": {"file": "a.key"}}, StationSettings, base=tmp_path)
    assert settings.station_key.file == str(tmp_path / "a.key")


def node_settings(tmp_path, **station_key):
    return settings_from_dict(
        {
            "station_id": "camden",
            "borough": "Camden",
            "central_url": "http://c",
            "token": "t",
            "data_dir": str(tmp_path / "data"),
            "dock_dir": str(tmp_path / "dock"),
            **({"station_key": station_key} if station_key else {}),
        },
        StationSettings,
    )


def close(node):
    node.stop()


def test_a_station_without_its_key_does_not_start_and_says_why(tmp_path, monkeypatch):
    with pytest.raises(FleetError, match=r"station camden not started: no station key: \[station_key\] gives none"):
        StationNode(node_settings(tmp_path))
    monkeypatch.delenv("FLEET_NO_SUCH_KEY", raising=False)
    with pytest.raises(FleetError, match=r"not started: .*\$FLEET_NO_SUCH_KEY, which is not set"):
        StationNode(node_settings(tmp_path, env="FLEET_NO_SUCH_KEY"))
    close(StationNode(node_settings(tmp_path, file=key_file(tmp_path))))


def test_the_command_says_why_in_one_line(tmp_path):
    config = tmp_path / "s.toml"
    config.write_text(
        'station_id = "camden"\nborough = "Camden"\ncentral_url = "http://127.0.0.1:1"\n'
        'token = "t"\ndata_dir = "data"\ndock_dir = "dock"\n[station_key]\nfile = "missing.key"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "fleet.cli", "station", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "station camden not started: [station_key]: key file" in result.stderr and "not found" in result.stderr


def test_a_station_does_not_start_without_a_key_some_clip_is_wrapped_by(tmp_path, dock_dir):
    store = station_store(tmp_path / "data")
    ingest(store, dock_dir, SimClip(100, RECORDED))
    store.close()
    other = tmp_path / "other.key"
    write_new_key(other)
    with pytest.raises(FleetError, match=rf"sealed under station key\(s\) {TEST_KEYS.current_id}, not given"):
        StationNode(node_settings(tmp_path, file=str(other)))
    close(StationNode(node_settings(tmp_path, file=str(other), previous=[{"file": key_file(tmp_path)}])))


# -- rotation ----------------------------------------------------------------------------------


class Crash(BaseException):
    """The process dying at that step (not an Exception: nothing may catch it)."""


NEW_KEY = bytes.fromhex("0e" * 32)  # a test value, not a secret


@pytest.mark.parametrize("step", ["read", "wrapped", "committed"])
@pytest.mark.parametrize("on_call", [1, 2])
def test_rotation_crashed_at_any_step_is_finished_by_the_next_run(tmp_path, dock_dir, step, on_call):
    clips = [SimClip(1000 + n, RECORDED) for n in range(7)]
    store = station_store(tmp_path / "data")
    ingest(store, dock_dir, *clips)
    store.close()
    during = Keyring(NEW_KEY, [TEST_KEY])
    calls = {"n": 0}

    def crash(at):
        if at == step:
            calls["n"] += 1
            if calls["n"] == on_call:
                raise Crash(at)

    store = station_store(tmp_path / "data", keys=during)
    with pytest.raises(Crash):
        rotate(store, during, batch=3, step=crash)
    store.close()

    store = station_store(tmp_path / "data", keys=during)  # restart, both keys still given
    counts = store.queue.wrapping_key_counts()
    assert sum(counts.values()) == 7 and set(counts) <= during.ids  # each row names a key that opens it
    for clip in clips:
        assert plain_copy(store, clip.clip_id) == clip.content()
    done = rotate(store, during, batch=3)
    assert done.remaining == {} and done.rewrapped == counts.get(TEST_KEYS.current_id, 0)
    store.close()

    store = station_store(tmp_path / "data", keys=Keyring(NEW_KEY))  # the old key is no longer needed
    try:
        assert store.queue.wrapping_key_ids() == {key_id(NEW_KEY)}
        for clip in clips:
            assert plain_copy(store, clip.clip_id) == clip.content()
    finally:
        store.close()


def test_rotate_key_command(tmp_path, dock_dir):
    store = station_store(tmp_path / "data")
    ingest(store, dock_dir, SimClip(100, RECORDED), SimClip(200, RECORDED))
    store.close()
    old = key_file(tmp_path)
    new_id = write_new_key(tmp_path / "new.key")
    config = tmp_path / "s.toml"
    config.write_text(
        'station_id = "camden"\nborough = "Camden"\ncentral_url = "http://127.0.0.1:1"\n'
        f'token = "t"\ndata_dir = "data"\ndock_dir = "dock"\n[station_key]\nfile = "new.key"\n'
        f'previous = [{{file = "{old}"}}]\n'
    )

    def run():
        return subprocess.run(
            [sys.executable, "-m", "fleet.cli", "station", "rotate-key", "--config", str(config)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=120,
        )

    first = run()
    assert first.returncode == 0, first.stderr
    assert f"2 data key(s) re-wrapped under station key {new_id}" in first.stdout
    assert f"no clip needs key(s) {TEST_KEYS.current_id} any more" in first.stdout
    again = run()
    assert again.returncode == 0 and "0 data key(s) re-wrapped" in again.stdout


# -- purge and legacy --------------------------------------------------------------------------


def test_purging_a_local_copy_destroys_its_wrapped_key(store, dock_dir):
    clip = SimClip(5000, RECORDED)
    ingest(store, dock_dir, clip)
    assert worker(store, FakeTus()).run_once().verified == [clip.clip_id]
    path = store.local_path(row(store, clip.clip_id)[2])
    assert purge_local_copies(store, timedelta(0)) == 1
    assert not path.exists() and row(store, clip.clip_id)[2:] == (None, None, None)


def test_clips_stored_plain_before_encryption_still_upload(store, dock_dir):
    """A row as the station wrote it before v7: a plain file and no wrapped key. Kept as it is
    (docs/at-rest.md, "Clips stored before"), uploaded as it is."""
    clip = SimClip(2 * SEGMENT_BYTES + 7, RECORDED)
    ingest(store, dock_dir, clip)
    sealed = store.local_path(row(store, clip.clip_id)[2])
    sealed.unlink()
    (store.clips_dir / f"{clip.clip_id}.mp4").write_bytes(clip.content())
    store.db.execute(
        "UPDATE clips SET local_path = ?, wrapped_by = NULL, wrapped_key = NULL WHERE clip_id = ?",
        [f"clips/{clip.clip_id}.mp4", clip.clip_id],
    )
    assert store.queue.plain_local_copies() == 1
    server = FakeTus()
    assert worker(store, server).run_once().verified == [clip.clip_id]
    assert server.verified()[clip.clip_id] == clip.content()
