"""The command line as operators meet it: help for everything, one-line errors, no tracebacks."""

import argparse
import os
import sqlite3
import subprocess
import sys
import typing
from pathlib import Path

import msgspec
import pytest

from fleet.cli import build_parser, main
from fleet.config import CentralSettings, StationSettings, load_settings
from tests.station.conftest import TEST_KEY

ROOT = Path(__file__).resolve().parents[1]


def leaf_parsers(parser: argparse.ArgumentParser, path=()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, sub in subs[0].choices.items():
        yield from leaf_parsers(sub, (*path, name))


def test_every_command_and_option_has_help():
    leaves = list(leaf_parsers(build_parser()))
    assert {" ".join(p) for p, _ in leaves} >= {"central serve", "station run", "station status", "demo"}
    for path, parser in leaves:
        assert parser.description, f"fleet {' '.join(path)} has no description"
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"fleet {' '.join(path)} {action.option_strings[0]} has no help"


@pytest.mark.slow  # 1-2 s: the whole suite runs it, the quick lane stays under 2 minutes
def test_help_runs_for_every_command(capsys):
    """In this process for each command (a process each took 30 s of the suite); the real
    entry point once, below."""
    for path, _ in leaf_parsers(build_parser()):
        with pytest.raises(SystemExit) as exited:
            main([*path, "--help"])
        assert exited.value.code == 0, path
        assert f"usage: fleet {' '.join(path)}" in capsys.readouterr().out
    result = subprocess.run([sys.executable, "-m", "fleet.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "usage: fleet" in result.stdout


@pytest.mark.parametrize("kind", [CentralSettings, StationSettings])
def test_every_config_setting_is_documented(kind):
    """Each setting appears, commented, in the example file in config/."""
    example = (ROOT / "config" / f"{'central' if kind is CentralSettings else 'station'}.example.toml").read_text()
    fields = list(msgspec.structs.fields(kind))
    for field in fields:
        if field.name.endswith(("_env", "_sha256")) or field.name == "stations":
            continue
        optional = typing.get_args(field.type) if type(None) in typing.get_args(field.type) else ()
        table = next(  # a [table], or an optional one (``[tls]``)
            (t for t in (field.type, *optional) if isinstance(t, type) and issubclass(t, msgspec.Struct)), None
        )
        if table is not None:
            assert f"[{field.name}]" in example or f".{field.name}]" in example, field.name  # [a.b]: b, a table in a
            fields += msgspec.structs.fields(table)
            continue
        entries = typing.get_args(field.type)[-1] if typing.get_origin(field.type) is dict else None
        if isinstance(entries, type) and issubclass(entries, msgspec.Struct):  # [a.destinations.<name>], [a.groups]
            assert f".{field.name}." in example or f".{field.name}]" in example, field.name
            fields += msgspec.structs.fields(entries)
            continue
        assert f"{field.name} =" in example or f"{field.name}_env =" in example, field.name


def test_example_configs_load(monkeypatch):
    monkeypatch.setenv("FLEET_ADMIN_TOKEN", "x")
    monkeypatch.setenv("FLEET_TOKEN_CAMDEN", "y")
    monkeypatch.setenv("FLEET_DESK_TOKEN", "z" * 16)
    assert load_settings(ROOT / "config" / "central.example.toml", CentralSettings).stations["barnet"]
    assert load_settings(ROOT / "config" / "station.example.toml", StationSettings).chunk_bytes == 64 << 20


def run_cli(*args, cwd=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "fleet.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), "FLEET_TEST_STATION_KEY": TEST_KEY.hex()},
        timeout=timeout,
    )


STATION_TOML = (
    'station_id = "camden"\nborough = "Camden"\ncentral_url = "http://127.0.0.1:1"\n'
    'token = "t"\ndata_dir = "data"\ndock_dir = "dock"\n'
    '[station_key]\nenv = "FLEET_TEST_STATION_KEY"\n'  # set by run_cli
)


def ingest_two_clips(root: Path, close: bool = True) -> None:
    """A station database in ``root/data`` holding two ingested clips. Without ``close`` the
    process dies holding it, as a killed station does: the clips are still only in its WAL."""
    from simulation.camera import SimClip, dock_camera
    from station.ingest import Ingestor
    from tests.station.conftest import RECORDED, station_store

    store = station_store(root / "data")
    dock_camera(root / "dock", "BWV-000001", [SimClip(1000, RECORDED), SimClip(500, RECORDED)])
    Ingestor(store, "camden", root / "dock").scan()
    if not close:
        os._exit(0)
    store.close()


@pytest.fixture(
    params=["read-only file system", "read-only file system, WAL left by a killed station", "read-only database file"]
)
def read_only_station(request, tmp_path):
    """A station's config whose database holds two clips and cannot be written, even by root."""
    from tests.faults.disks import ReadOnlyFile, SmallDisk

    config = tmp_path / "s.toml"
    config.write_text(STATION_TOML)
    killed = "killed" in request.param
    mounts: list[SmallDisk | ReadOnlyFile] = []
    try:
        if "file system" in request.param:
            mounts.append(SmallDisk(tmp_path / "data", 4 << 20).mount())
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; from tests.test_cli import "
                f"ingest_two_clips; ingest_two_clips(Path(sys.argv[1]), close={not killed})",
                str(tmp_path),
            ],
            check=True,
            cwd=ROOT,
            timeout=120,
        )
        assert (tmp_path / "data" / "station.db-wal").exists() == killed
        if mounts:
            mounts[0].read_only()
        else:
            mounts.append(ReadOnlyFile(tmp_path / "data" / "station.db").mount())
        yield config
    finally:
        for mount in reversed(mounts):
            mount.unmount()


def test_status_reads_a_database_that_cannot_be_written_and_says_why(read_only_station):
    result = run_cli("station", "status", "--config", str(read_only_station), "--json")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    status = msgspec.json.decode(result.stdout)
    assert status["pending_clips"] == 2  # a killed station's last commits are read from its WAL too
    database = [p for p in status["problems"] if p.startswith("station database")]
    assert len(database) == 1, status["problems"]
    problem = database[0]
    assert problem.startswith("station database cannot be written: ") and "read-only" in problem
    table = run_cli("station", "status", "--config", str(read_only_station))
    assert table.returncode == 0 and "Traceback" not in table.stderr, table.stderr
    assert "".join(problem.split()) in "".join(table.stdout.split())  # rich wraps long lines


def test_run_refuses_a_database_it_cannot_write_in_one_line_and_leaves_the_cameras_alone(read_only_station):
    from simulation.camera import SimClip, dock_camera
    from tests.station.conftest import RECORDED

    folder = dock_camera(read_only_station.parent / "dock", "BWV-000002", [SimClip(700, RECORDED)])
    before = sorted(os.listdir(folder / "clips"))
    result = run_cli("station", "run", "--config", str(read_only_station), timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("fleet: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "station database cannot be written" in result.stderr and "camden" in result.stderr
    assert sorted(os.listdir(folder / "clips")) == before and not (folder / "INGESTED.json").exists()


def test_status_does_not_wait_for_the_station_holding_the_write_lock(tmp_path):
    config = tmp_path / "s.toml"
    config.write_text(STATION_TOML)
    ingest_two_clips(tmp_path)
    station = sqlite3.connect(tmp_path / "data" / "station.db", isolation_level=None)
    station.execute("BEGIN IMMEDIATE")  # a running station in the middle of a write
    try:
        # The deadline is a backstop far below SQLite's 30 s busy timeout, not a measure of speed.
        result = run_cli("station", "status", "--config", str(config), "--json", timeout=20)
    finally:
        station.execute("ROLLBACK")
        station.close()
    assert result.returncode == 0, result.stderr
    status = msgspec.json.decode(result.stdout)
    assert status["pending_clips"] == 2
    assert not [
        p for p in status["problems"] if p.startswith("station database")
    ]  # busy with a writer: it can be written


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "config file not found"),
        ("port = [", "not valid TOML"),
        ('station_id = "x"\nsurprise = 1', "unknown field `"),
    ],
)
@pytest.mark.slow  # 1-2 s: the whole suite runs it, the quick lane stays under 2 minutes
def test_bad_config_is_one_line_and_exit_2(tmp_path, content, message):
    path = tmp_path / "s.toml"
    if content is not None:
        path.write_text(content)
    for command in (("station", "run"), ("station", "status"), ("central", "serve")):
        result = run_cli(*command, "--config", str(path))
        assert result.returncode == 2, result
        assert message in result.stderr and "Traceback" not in result.stderr
        assert result.stderr.startswith("fleet: error:")


def test_status_before_the_station_ever_ran(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        'station_id = "camden"\nborough = "Camden"\ncentral_url = "http://127.0.0.1:1"\n'
        'token = "t"\ndata_dir = "data"\ndock_dir = "dock"\n'
    )
    result = run_cli("station", "status", "--config", str(path), "--json")
    assert result.returncode == 2 and "has `fleet station run` started?" in result.stderr


def test_status_json_has_the_contract_keys(tmp_path):
    from simulation.camera import SimClip, dock_camera
    from station.ingest import Ingestor
    from tests.station.conftest import RECORDED, station_store

    path = tmp_path / "s.toml"
    path.write_text(
        'station_id = "camden"\nborough = "Camden"\ncentral_url = "http://127.0.0.1:1"\n'
        'token = "t"\ndata_dir = "data"\ndock_dir = "dock"\n'
    )
    store = station_store(tmp_path / "data")
    dock_camera(tmp_path / "dock", "BWV-000001", [SimClip(1000, RECORDED), SimClip(500, RECORDED)])
    Ingestor(store, "camden", tmp_path / "dock").scan()
    store.close()
    result = run_cli("station", "status", "--config", str(path), "--json")
    assert result.returncode == 0, result.stderr
    status = msgspec.json.decode(result.stdout)
    assert {"pending_clips", "pending_bytes", "verified_clips", "failed_folders", "last_sync_ok_at"} <= set(status)
    assert (status["pending_clips"], status["pending_bytes"], status["verified_clips"]) == (2, 1500, 0)
    assert status["last_sync_ok_at"] is None and status["failed_folders"] == []
    table = run_cli("station", "status", "--config", str(path))
    assert table.returncode == 0 and "pending clips" in table.stdout


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["nope"])
    assert exit_info.value.code == 2
