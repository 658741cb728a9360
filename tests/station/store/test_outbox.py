"""Every change that matters writes its event in the same transaction; seqs are gap-free."""

from datetime import timedelta

import msgspec

from fleet.clock import utc_now
from fleet.events import BadFolder, CameraDocked, ClipIngested, ClipVerified, Event
from simulation.camera import SimClip, dock_camera
from station.ingest import Ingestor
from tests.station.conftest import RECORDED, station_store


def events(store) -> list[tuple[int, Event]]:
    return [(seq, msgspec.json.decode(body, type=Event)) for seq, _, _, body in store.outbox.events()]


def test_ingest_writes_docked_and_ingested_events(store, dock_dir):
    clips = [SimClip(100, RECORDED), SimClip(200, RECORDED + timedelta(minutes=5))]
    dock_camera(dock_dir, "BWV-000001", clips, battery_pct=41)
    Ingestor(store, "camden", dock_dir).scan()
    logged = events(store)
    assert [seq for seq, _ in logged] == [1, 2, 3]
    docked = logged[0][1]
    assert isinstance(docked, CameraDocked) and docked.device.battery.level_pct == 41 and docked.clip_count == 2
    assert {e.clip_id for _, e in logged[1:] if isinstance(e, ClipIngested)} == {c.clip_id for c in clips}


def test_redocking_an_ingested_clip_logs_the_docking_but_not_the_clip_again(store, dock_dir):
    clip = SimClip(100, RECORDED)
    dock_camera(dock_dir, "BWV-000001", [clip], folder_name="a")
    Ingestor(store, "camden", dock_dir).scan()
    dock_camera(dock_dir, "BWV-000001", [clip], folder_name="b")
    Ingestor(store, "camden", dock_dir).scan()
    kinds = [type(e).__name__ for _, e in events(store)]
    assert kinds == ["CameraDocked", "ClipIngested", "CameraDocked"]


def test_verified_is_logged_once(store, dock_dir):
    clip = SimClip(100, RECORDED)
    dock_camera(dock_dir, "BWV-000001", [clip])
    Ingestor(store, "camden", dock_dir).scan()
    store.queue.mark_verified(clip.clip_id)
    store.queue.mark_verified(clip.clip_id)
    assert [e for _, e in events(store) if isinstance(e, ClipVerified)] == [ClipVerified(clip_id=clip.clip_id)]


def test_a_bad_folder_is_reported_once_per_problem(store, dock_dir):
    folder = dock_dir / "broken"
    folder.mkdir()
    (folder / "device.json").write_text("{not json")
    (folder / "DOCKED").touch()
    ingestor = Ingestor(store, "camden", dock_dir)
    ingestor.scan()
    (folder / "extra").write_text("changed")  # the folder changed: rescanned, same problem
    ingestor.scan()
    bad = [e for _, e in events(store) if isinstance(e, BadFolder)]
    assert len(bad) == 1 and bad[0].folder == "broken" and "device.json" in bad[0].reason


def test_pending_follows_centrals_acknowledgement(store, dock_dir):
    dock_camera(dock_dir, "BWV-000001", [SimClip(100, RECORDED) for _ in range(4)])
    Ingestor(store, "camden", dock_dir).scan()
    outbox = store.outbox
    assert [p.seq for p in outbox.pending(10)] == [1, 2, 3, 4, 5]
    outbox.acknowledge(3)
    assert outbox.acked_seq() == 3 and [p.seq for p in outbox.pending(10)] == [4, 5]
    assert [p.seq for p in outbox.pending(1)] == [4]
    outbox.acknowledge(2)  # central restored from a backup: seq 3 goes again
    assert [p.seq for p in outbox.pending(10)] == [3, 4, 5]


def test_prune_forgets_only_acknowledged_old_events(store, dock_dir):
    dock_camera(dock_dir, "BWV-000001", [SimClip(100, RECORDED)])
    Ingestor(store, "camden", dock_dir).scan()
    outbox = store.outbox
    outbox.acknowledge(1)
    assert outbox.prune(timedelta(days=1)) == 0  # acknowledged but recent
    assert outbox.prune(timedelta(days=1), now=utc_now() + timedelta(days=2)) == 1
    assert [p.seq for p in outbox.pending(10)] == [2]


def test_seqs_are_never_reused_after_pruning(tmp_path, dock_dir):
    store = station_store(tmp_path / "data")
    dock_camera(dock_dir, "BWV-000001", [SimClip(100, RECORDED)], folder_name="a")
    Ingestor(store, "camden", dock_dir).scan()
    outbox = store.outbox
    outbox.acknowledge(2)
    outbox.prune(timedelta(0), now=utc_now() + timedelta(seconds=1))
    store.close()
    store = station_store(tmp_path / "data")  # a restart
    dock_camera(dock_dir, "BWV-000001", [SimClip(100, RECORDED)], folder_name="b")
    Ingestor(store, "camden", dock_dir).scan()
    assert [p.seq for p in store.outbox.pending(10)] == [3, 4]
    store.close()
