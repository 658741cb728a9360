"""Every listing command, its output sent to a pipe (a log, ``| grep``): whole values, never cut
at 80 columns into "stat…"; and its ``--json`` parses."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from tests.test_cli import ROOT, STATION_TOML, run_cli

LONG_USER = "information-management.officer-with-a-long-name"
LONG_LABEL = "nightly export of every borough's clips to the records system"
BAD_FOLDER = "BWV-000009-docked-at-the-front-desk-with-a-folder-name-longer-than-a-terminal"

CENTRAL = ("central",)
STATION = ("station",)
LISTINGS = [
    # (command, which config, values that must appear whole in the table)
    (("central", "users"), CENTRAL, [LONG_USER]),
    (("central", "token", "list"), CENTRAL, [LONG_LABEL]),
    (("central", "retention", "digest"), CENTRAL, []),
    (("central", "retention", "reviews"), CENTRAL, []),
    (("central", "firmware", "list"), CENTRAL, []),
    (("central", "deploy", "list"), CENTRAL, []),
    (("central", "model", "list"), CENTRAL, []),
    (("central", "profile", "show"), CENTRAL, []),
    (("rollout", "plan"), (), ["Met 2015-16: every neighbourhood and response officer by 31 March 2016"]),
    (("rollout", "progress"), CENTRAL, ["Progress vs plan: the force"]),
    (("station", "status"), STATION, [BAD_FOLDER]),
    (("station", "doctor"), STATION, []),
    (("station", "checkouts"), STATION, []),
]


@pytest.fixture(scope="module")
def configs(tmp_path_factory) -> dict[tuple[str, ...], Path]:
    """A central with a long-named user and a long-labelled token; a station with two clips and a
    bad folder whose long name goes in its problems."""
    from central.core.cli import central_services
    from simulation.camera import SimClip, dock_camera
    from station.ingest import Ingestor
    from tests.station.conftest import RECORDED, station_store

    root = tmp_path_factory.mktemp("listings")
    central = root / "central.toml"
    central.write_text(
        f'data_dir = "{root / "central"}"\nadmin_token = "admin-test-token"\n'
        '[stations.camden]\nborough = "Camden"\ntoken = "camden-test-token"\n'
        f'[rollout]\nboroughs = "{ROOT / "config" / "boroughs.toml"}"\n'
        f'scenario = "{ROOT / "config" / "rollout.toml"}"\n'
    )
    with central_services(str(central)) as services:
        services.users.add(LONG_USER, "admin", "test", password="correct horse battery")
        services.users.create_token(LONG_USER, LONG_LABEL, "test")
    station = root / "station" / "s.toml"
    station.parent.mkdir()
    station.write_text(STATION_TOML)
    store = station_store(station.parent / "data")
    dock_camera(station.parent / "dock", "BWV-000001", [SimClip(1000, RECORDED), SimClip(500, RECORDED)])
    bad = station.parent / "dock" / BAD_FOLDER
    bad.mkdir()
    (bad / "device.json").write_text("{ not json")
    (bad / "DOCKED").touch()
    Ingestor(store, "camden", station.parent / "dock").scan()
    store.close()
    return {CENTRAL: central, STATION: station}


@pytest.mark.slow  # two processes a command
@pytest.mark.parametrize(("command", "config", "whole"), LISTINGS, ids=[" ".join(c) for c, _, _ in LISTINGS])
def test_a_listing_to_a_pipe_is_complete_and_its_json_parses(configs, command, config, whole):
    args = [*command, *(["--config", str(configs[config])] if config else [])]
    table = run_cli(*args, cwd=ROOT)
    assert table.returncode in (0, 1), table.stderr  # doctor: 1 when it finds a problem (central unreachable)
    assert "Traceback" not in table.stderr and "…" not in table.stdout, table.stdout
    for value in whole:
        assert value in table.stdout, table.stdout
    listed = run_cli(*args, "--json", cwd=ROOT)
    assert listed.returncode in (0, 1), listed.stderr
    msgspec.json.decode(listed.stdout)
