import subprocess
import sys


def test_demo_runs_and_verifies_every_docked_clip(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fleet.cli", "demo", "--dir", str(tmp_path / "demo"), "--port", "0",
         "--duration", "6", "--interval", "1", "--max-clip-mib", "1", "--seed", "1", "--drain-timeout", "60"],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "verified at central with matching SHA-256; 0 missing" in result.stdout
    assert (tmp_path / "demo" / "central" / "data").is_dir()
    for station in ("camden", "barnet", "lewisham"):
        assert (tmp_path / "demo" / "stations" / station / "data" / "station.db").exists()
