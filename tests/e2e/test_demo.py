import re
import subprocess
import sys


def test_demo_runs_and_verifies_every_docked_clip(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleet.cli",
            "demo",
            "--dir",
            str(tmp_path / "demo"),
            "--port",
            "0",
            "--duration",
            "6",
            "--interval",
            "1",
            "--max-clip-mib",
            "1",
            "--seed",
            "1",
            "--drain-timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = " ".join(result.stdout.split())  # rich wraps lines to the terminal width
    match = re.search(
        r"(\d+) clips \(.*\) docked at 3 stations; (\d+) verified at central with matching "
        r"SHA-256; 0 missing",
        text,
    )
    assert match, text[-2000:]
    assert int(match[1]) == int(match[2]) > 0
    assert (tmp_path / "demo" / "central" / "data").is_dir()
    for station in ("camden", "barnet", "lewisham"):
        assert (tmp_path / "demo" / "stations" / station / "data" / "station.db").exists()
    # The demo's central plans the reference roll-out: its config names the boroughs and scenario files.
    from central.rollout.scenario import load_rollout
    from fleet.config import CentralSettings, load_settings

    settings = load_settings(tmp_path / "demo" / "central" / "central.toml", CentralSettings)
    boroughs, scenario = settings.rollout.boroughs, settings.rollout.scenario
    assert boroughs is not None and scenario is not None
    assert len(load_rollout(boroughs, scenario).boroughs) == 32
