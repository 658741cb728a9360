"""``fleet simulate`` at small scale: real central, real station nodes in two hosts, an outage."""

import subprocess
import sys

import pytest

from tests.simulation.small_force import assert_nothing_lost, simulate


@pytest.mark.long
def test_a_small_force_through_an_outage_loses_nothing(tmp_path):
    summary, printed = simulate(tmp_path)
    assert_nothing_lost(summary)
    docked = summary["docked"]
    central = summary["central"]
    assert central["clips_verified"] == docked["clips"]
    assert central["events_by_kind"]["camera_docked"] == docked["dockings"]

    # The outage happened: central stopped, the stations queued meanwhile, and it all drained after.
    outage, rows = summary["outage"], summary["samples"]["rows"]
    assert outage["central_down_wall_s"] > 0
    down = [r for r in rows if not r[2]]
    assert down and max(r[3] for r in down) > 0 and max(r[4] for r in down) > 0  # clips and events queued
    assert outage["outage_peak_clips"] > 0 and outage["drain_wall_s"] is not None
    assert rows[-1][3] == 0 and rows[-1][4] == 0

    for key in ("clip_dock_to_verified", "telemetry_dock_to_central", "dock_to_ingested"):
        assert summary["latency_s"][key]["p95"] is not None
    assert central["clips_per_s"] and summary["backlog"]["peak_clips"] > 0
    assert "OK: nothing lost" in printed
    # Only configs, logs and the summary are kept by default.
    assert not (tmp_path / "sim" / "central" / "data").exists()
    assert (tmp_path / "sim" / "logs" / "central.log").exists()


def _processes_of(folder) -> list[int]:
    """Processes whose command line names ``folder`` (the simulation's central and station hosts)."""
    from pathlib import Path

    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in cmdline and "fleet.cli simulate" not in cmdline:
            found.append(int(proc.name))
    return found


def test_sigterm_stops_the_simulation_and_every_process_it_started(tmp_path):
    import signal
    import time

    workdir = tmp_path / "sim"
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleet.cli",
            "simulate",
            "--devices",
            "200",
            "--boroughs",
            "2",
            "--days",
            "30",
            "--hosts",
            "2",
            "--workdir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while len(_processes_of(workdir)) < 3 and time.monotonic() < deadline:  # central and both hosts
            assert sim.poll() is None, "the simulation ended before it was stopped"
            time.sleep(0.2)
        assert len(_processes_of(workdir)) >= 3
        sim.send_signal(signal.SIGTERM)
        assert sim.wait(timeout=120) == 130
        deadline = time.monotonic() + 30
        while _processes_of(workdir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _processes_of(workdir) == []
    finally:
        if sim.poll() is None:
            sim.kill()
        for pid in _processes_of(workdir):
            os_kill(pid)


def os_kill(pid: int) -> None:
    import os
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
