"""``fleet simulate --database postgresql --replicas 2`` at small scale: two central replicas on
PostgreSQL behind HAProxy, the leading one SIGKILLed in the month, an outage of both; nothing lost."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_a_small_force_on_two_replicas_loses_nothing_when_the_leader_is_killed(tmp_path):
    out = tmp_path / "summary.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleet.cli",
            "simulate",
            "--devices",
            "300",
            "--boroughs",
            "2",
            "--stations-per-borough",
            "2",
            "--days",
            "2",
            "--outage",
            "12",
            "--day-seconds",
            "12",
            "--hosts",
            "2",
            "--shifts-per-week",
            "5",
            "--clips-per-shift",
            "1",
            "--seed",
            "3",
            "--drain-timeout",
            "120",
            "--database",
            "postgresql",
            "--replicas",
            "2",
            "--kill-replica-at",
            "8",  # before the outage (at hour 18), with dockings from the night shift on either side
            "--workdir",
            str(tmp_path / "sim"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    summary = json.loads(out.read_text())
    assert summary["ok"] and summary["drained"]
    assert (summary["plan"]["database"], summary["plan"]["replicas"]) == ("postgresql", 2)

    docked, check = summary["docked"], summary["check"]
    assert docked["clips"] > 100
    for what, expected in (("clips", docked["clips"]), ("telemetry", docked["dockings"])):
        assert check[what] == {
            "ok": expected,
            "lost": 0,
            "duplicated": 0,
            "corrupted": 0,
            "unexpected": 0,
            "examples": [],
        }
    assert check["bytes_spot_check"]["clips"] > 0 and check["bytes_spot_check"]["mismatched"] == 0
    central = summary["central"]
    assert central["devices_tracked"] == central["devices_docked"] == central["devices_showing_last_docking"]

    # The leader was killed and came back, another replica led meanwhile; the outage stopped both.
    kill = summary["replica_kill"]
    assert kill["replica"] in (1, 2) and kill["another_leading_after_s"] is not None
    assert kill["killed_at_wall_s"] < kill["back_at_wall_s"] < summary["outage"]["central_stopped_at_wall_s"]
    assert summary["outage"]["central_down_wall_s"] > 0 and summary["outage"]["drain_wall_s"] is not None
    assert "replica SIGKILLed" in result.stdout and "OK: nothing lost" in result.stdout
    assert not (tmp_path / "sim" / "postgres").exists()  # the database went with the other state
    assert (tmp_path / "sim" / "logs" / "central1.log").exists() and (
        tmp_path / "sim" / "logs" / "central2.log"
    ).exists()
