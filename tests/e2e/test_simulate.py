"""``fleet simulate`` at small scale: real central, real station nodes in two hosts, an outage."""

import json
import subprocess
import sys


def test_a_small_force_through_an_outage_loses_nothing(tmp_path):
    out = tmp_path / "summary.json"
    result = subprocess.run(
        [sys.executable, "-m", "fleet.cli", "simulate", "--devices", "300", "--boroughs", "2",
         "--stations-per-borough", "2", "--days", "2", "--outage", "6", "--day-seconds", "6", "--hosts", "2",
         "--shifts-per-week", "5", "--clips-per-shift", "1", "--seed", "3", "--drain-timeout", "120",
         "--workdir", str(tmp_path / "sim"), "--out", str(out)],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    summary = json.loads(out.read_text())
    assert summary["ok"] and summary["drained"]

    docked, check = summary["docked"], summary["check"]
    assert docked["dockings"] > 100 and docked["clips"] > 100
    assert check["clips"] == {"ok": docked["clips"], "lost": 0, "duplicated": 0, "corrupted": 0, "unexpected": 0,
                              "examples": []}
    assert check["telemetry"] == {"ok": docked["dockings"], "lost": 0, "duplicated": 0, "corrupted": 0,
                                  "unexpected": 0, "examples": []}
    assert check["bytes_spot_check"]["clips"] > 0 and check["bytes_spot_check"]["mismatched"] == 0
    central = summary["central"]
    assert central["clips_verified"] == docked["clips"]
    assert central["events_by_kind"]["camera_docked"] == docked["dockings"]
    assert central["devices_tracked"] == central["devices_docked"] == central["devices_showing_last_docking"]

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
    assert "OK: nothing lost" in result.stdout
    # Only configs, logs and the summary are kept by default.
    assert not (tmp_path / "sim" / "central" / "data").exists()
    assert (tmp_path / "sim" / "logs" / "central.log").exists()
