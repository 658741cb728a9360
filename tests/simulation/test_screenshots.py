"""``make screenshots`` end to end on a small force: built, served, signed in, every page saved."""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import subprocess
import sys
from dataclasses import asdict

import pytest

from fleet.errors import FleetError
from simulation.force.monday import FORCE, QUICK, READY, Built, state
from simulation.screenshots import HEIGHT, SHOTS, WIDTH, main
from tests.test_cli import ROOT


def screenshots(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "simulation.screenshots", "--quick", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", header[16:24])


@pytest.mark.slow
@pytest.mark.long
def test_every_page_is_saved_from_a_built_force_and_an_error_page_stops_the_run(tmp_path):
    state, out = tmp_path / "state", tmp_path / "out"
    done = screenshots("--state", str(state), "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    for shot in SHOTS:  # each page answered, not an error page nor the login form (the run checks both)
        assert png_size(out / f"{shot.name}.png") == (WIDTH, HEIGHT), shot.name

    ready = json.loads((state / READY).read_text())
    with sqlite3.connect(f"file:{state / 'central' / 'data' / 'central.db'}?mode=ro", uri=True) as db:
        issued = db.execute(
            "SELECT d.borough = o.borough FROM assignments a JOIN devices d ON d.serial = a.device_serial "
            "JOIN officers o ON o.officer_id = a.officer_id WHERE a.ended_at IS NULL"
        ).fetchall()
        registered = db.execute("SELECT count(*) FROM devices").fetchone()[0]
        lifecycles = {state for (state,) in db.execute("SELECT DISTINCT lifecycle FROM devices")}
        # each clip and whether its camera had been issued when it was recorded, and to whom it went
        after_issue = db.execute(
            "SELECT t.officer_id IS NOT NULL FROM attributions t JOIN assignments a "
            "ON a.device_serial = t.device_serial AND a.started_at <= t.recorded_at"
        ).fetchall()
        before_issue = db.execute(
            "SELECT count(*) FROM attributions t WHERE t.officer_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
            "assignments a WHERE a.device_serial = t.device_serial AND a.started_at <= t.recorded_at)"
        ).fetchone()[0]
        issued_weekly = db.execute(
            "SELECT DISTINCT date(started_at, 'weekday 1', '-7 days') FROM assignments"
        ).fetchall()
        changes = db.execute("SELECT detail FROM audit WHERE action = 'config-change'").fetchall()
    assert ("first start with this configuration",) in changes
    assert [d for (d,) in changes if "→" in d] == []  # served from where it was built: no setting changed
    assert len(issued) == ready["counts"]["issued"] == registered  # every camera, to its borough's officer
    assert all(same for (same,) in issued)
    # issued before the month, the dockings kept them issued (in service once their clips came), not reset
    assert lifecycles <= {"issued", "in_service"} and "in_service" in lifecycles
    # clips recorded after their camera's issue went to its officer at ingest; none before it
    assert len(after_issue) > 0 and sum(a for (a,) in after_issue) > 0.9 * len(after_issue)
    assert before_issue == 0
    assert ready["counts"]["attributed"] == sum(a for (a,) in after_issue)
    # the roll-out's burn-up rises over more than one week, as the plan's waves hand cameras out
    assert len(issued_weekly) > 1 and len(ready["issued_by_week"]) > 1
    assert sum(ready["issued_by_week"].values()) == len(issued)

    # the state is kept and reused; a page that answers with an error stops the run, in one line
    (state / READY).write_text(json.dumps({**ready, "held_clip": "no-such-clip"}))
    again = screenshots("--state", str(state), "--out", str(tmp_path / "again"))
    assert "reusing the force" in again.stdout
    assert again.returncode == 1
    assert again.stderr.startswith("error: /clips/no-such-clip answered 404") and "Traceback" not in again.stderr


def test_the_small_force_never_writes_over_the_readme_pictures_nor_the_kept_force(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--quick"])
    assert exit_.value.code == 2 and "--quick needs --out and --state" in capsys.readouterr().err

    kept = Built(
        size=FORCE,
        built_at="2026-12-07T06:00:00+00:00",
        build_s=900.0,
        worn_serial="BWV-000016",
        held_clip="c1",
        counts={},
    )
    (tmp_path / READY).write_text(json.dumps(asdict(kept)))
    with pytest.raises(FleetError, match="holds a force of another size"):
        state(tmp_path, QUICK, tmp_path / "work")
    assert Built.read(tmp_path) == kept  # left as it was
