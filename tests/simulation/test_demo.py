"""The demo's own bookkeeping, without its processes (tests/e2e/test_demo.py runs the whole demo)."""

from simulation.demo import Demo


def ingested_folder(dock, name: str):
    folder = dock / name
    (folder / "clips").mkdir(parents=True)
    (folder / "INGESTED.json").write_text("{}")
    return folder


def test_a_camera_someone_else_docks_is_left_to_the_station_and_never_becomes_the_demos(tmp_path):
    """The demo's summary invites a person to drop a camera folder into a dock while it runs: the
    demo once took it for one of its own cameras and stopped with a traceback at the next shift."""
    demo = Demo(root=tmp_path, stations=["camden"], port=0)
    dock = demo.dock_dir("camden")
    own_serial = demo.cameras("camden")[0]
    own = ingested_folder(dock, f"{own_serial}-1")
    foreign = ingested_folder(dock, "manual-check")
    also_foreign = ingested_folder(dock, "BWV-000777-2")

    demo.undock_ingested()

    assert list(demo.idle) == [own_serial]
    assert not own.exists()
    assert foreign.exists() and also_foreign.exists()
