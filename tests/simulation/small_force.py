"""One small force for the ``fleet simulate`` tests: 300 cameras, two boroughs, two days with
an outage, run as a real process; and the check that nothing it docked was lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SMALL_FORCE = [
    *("--devices", "300", "--boroughs", "2", "--stations-per-borough", "2", "--days", "2"),
    *("--outage", "12", "--day-seconds", "12", "--hosts", "2", "--shifts-per-week", "5"),
    *("--clips-per-shift", "1", "--seed", "3", "--drain-timeout", "120"),
]
"""Central's restart begins its start-up time before the outage's end; a short outage in a fast
day is eaten by that lead on a loaded host before a shift docks: 12 h at 2 simulated h a second."""


def simulate(tmp_path: Path, *extra: str, timeout: float = 240) -> tuple[dict, str]:
    """Run the small force (with ``extra`` options); its summary and its printed output."""
    out = tmp_path / "summary.json"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "fleet.cli", "simulate", *SMALL_FORCE, *extra),
            *("--workdir", str(tmp_path / "sim"), "--out", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    summary = json.loads(out.read_text())
    assert summary["ok"] and summary["drained"]
    return summary, result.stdout


def assert_nothing_lost(summary: dict) -> None:
    """Every docked clip and docking's telemetry at central once, whole; the cameras' state agrees."""
    docked, check = summary["docked"], summary["check"]
    assert docked["dockings"] > 100 and docked["clips"] > 100
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
    requests = summary["keep_requests"]  # the public's requests to keep footage: none wrongly deleted
    assert requests["accepted"] == requests["asked"] >= 1 and requests["wrongful_deletions"] == 0
    assert requests["soft_deleted"] > 0  # the retention job did delete what nothing kept
