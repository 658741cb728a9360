"""``fleet rollout``: the planner's commands, end to end through the real command line."""

from __future__ import annotations

import json

import pytest

from tests.central.rollout.test_service import BOROUGHS, SCENARIO
from tests.test_cli import ROOT, run_cli

# Their configs name no database: the commands run on SQLite whatever the test's database, so once.
pytestmark = pytest.mark.sqlite_only


@pytest.mark.slow  # 1-2 s: the whole suite runs it, the quick lane stays under 2 minutes
def test_plan_of_the_reference_scenario_reads_well_and_exports(tmp_path):
    table = run_cli("rollout", "plan", cwd=ROOT)
    assert table.returncode == 0, table.stderr
    assert "not feasible" in table.stdout and "binding constraint: deliveries" in table.stdout
    assert "would fix it: +" in table.stdout and "Westminster" in table.stdout
    data = json.loads(run_cli("rollout", "plan", "--json", "--deliveries", "2000", cwd=ROOT).stdout)
    assert data["plan"]["feasible"] is True and data["storage"]["months"]
    csv = run_cli("rollout", "plan", "--csv", "--show", "stations", cwd=ROOT).stdout
    assert csv.splitlines()[0] == "station_id,borough,dock_slots,officers,docks_needed,shortfall"


@pytest.mark.slow  # 1-2 s: the whole suite runs it, the quick lane stays under 2 minutes
def test_plan_refuses_bad_input_in_one_line(tmp_path):
    missing = run_cli("rollout", "plan", cwd=tmp_path)
    assert missing.returncode == 2 and "file not found" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "b.toml").write_text(BOROUGHS)
    (tmp_path / "s.toml").write_text(SCENARIO + "\nbogus = 1\n")
    bad = run_cli("rollout", "plan", "--boroughs", str(tmp_path / "b.toml"), "--scenario", str(tmp_path / "s.toml"))
    assert bad.returncode == 2 and "unknown field `bogus`" in bad.stderr
    worse = run_cli("rollout", "plan", "--deliveries", "0", cwd=ROOT)
    assert worse.returncode == 2 and "must be at least 1" in worse.stderr


@pytest.mark.slow  # a CLI in a subprocess: the whole suite, not test-fast
def test_allocate_commit_progress_against_central_database(tmp_path):
    (tmp_path / "boroughs.toml").write_text(BOROUGHS)
    (tmp_path / "rollout.toml").write_text(SCENARIO)
    config = tmp_path / "central.toml"
    config.write_text(
        'data_dir = "data"\nadmin_token = "t"\n[fleet]\nassignment_modes = { Barnet = "pool", Camden = "personal" }\n'
        '[rollout]\nboroughs = "boroughs.toml"\nscenario = "rollout.toml"\n'
    )
    (tmp_path / "officers.csv").write_text("officer_id,borough,role\nPC1,Camden,response\nPC2,Camden,response\n")
    assert (
        run_cli("central", "officers", "import", str(tmp_path / "officers.csv"), "--config", str(config)).returncode
        == 0
    )
    nothing = run_cli("rollout", "allocate", "--config", str(config))
    assert nothing.returncode == 2 and "no cameras in stock" in nothing.stderr
    from central.core.services import build_services
    from central.core.store import CentralStore
    from central.registry.devices import DeviceRegistration
    from fleet.config import CentralSettings, load_settings

    settings = load_settings(config, CentralSettings)
    store = CentralStore.open(settings)
    build_services(settings, store).devices.register(
        [DeviceRegistration(serial=f"BWV-00000{i}") for i in range(3)], "test"
    )
    store.close()
    proposed = run_cli("rollout", "allocate", "--borough", "Camden", "--config", str(config), "--json")
    assert proposed.returncode == 0, proposed.stderr
    proposal = json.loads(proposed.stdout)
    assert [i["officer_id"] for i in proposal["items"]] == ["PC1", "PC2"]
    shown = run_cli("rollout", "show", str(proposal["id"]), "--csv", "--config", str(config)).stdout
    assert shown.splitlines()[1].startswith("BWV-000000,Camden,personal,PC1")
    committed = run_cli("rollout", "commit", str(proposal["id"]), "--config", str(config))
    assert committed.returncode == 0 and "committed: 2 cameras" in committed.stdout
    again = run_cli("rollout", "commit", str(proposal["id"]), "--config", str(config))
    assert again.returncode == 2 and "already committed" in again.stderr
    progress = run_cli("rollout", "progress", "--config", str(config), "--csv").stdout.splitlines()
    assert progress[0] == "week,starts,borough,planned,delivered,issued,in_service"
    table = run_cli("rollout", "progress", "--config", str(config))
    assert table.returncode == 0 and "Progress vs plan" in table.stdout
