import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta


def test_demo_runs_and_verifies_every_docked_clip(tmp_path):
    """...and looks like a force's day: clips attributed to the officers who checked the cameras
    out, battery flags, a hold, categorised clips, a station that was offline, a roll-out from today."""
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
    assert scenario is not None
    start = load_rollout(boroughs, scenario).scenario.start
    monday = datetime.now(UTC).date() - timedelta(days=datetime.now(UTC).weekday())
    assert start in (monday, monday - timedelta(weeks=1))  # week 1 is this week (a Monday may pass mid-test)
    assert "offline for a while and caught up" in text and "lewisham" in text

    central = sqlite3.connect(f"file:{tmp_path / 'demo' / 'central' / 'data' / 'central.db'}?mode=ro", uri=True)
    attributed, clips = central.execute("SELECT count(officer_id), count(*) FROM attributions").fetchone()
    assert clips == int(match[1]) and attributed == clips  # every clip was recorded on a checked-out camera
    short, hot = central.execute("SELECT sum(flag_short_shift), sum(flag_over_temp) FROM devices").fetchone()
    assert short >= 2 and hot == 1
    assert central.execute("SELECT count(*) FROM holds WHERE kind = 'officer'").fetchone()[0] == 1
    unassessed = central.execute("SELECT count(*) FROM clip_retention WHERE retain_until IS NULL").fetchone()[0]
    assert unassessed == 0  # assessed as each clip was verified, not by tonight's job
    central.close()
