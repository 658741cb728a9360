"""Roll-out at central: plan, proposals (personal and pool), commit all-or-nothing, progress, CSV."""

from __future__ import annotations

from datetime import date

import pytest

from central.rollout.service import ProposalItem, ProposeRequest
from fleet import csvio
from tests.central.apps import central_client
from tests.central.conftest import ADMIN, CAMDEN, make_settings

BOROUGHS = """
note = "test figures"
[boroughs.Camden]
neighbourhood = 4
response = 4
other = 3
stations = { camden = 10, holborn = 10 }
[boroughs.Barnet]
response = 8
stations = { barnet = 10 }
"""

SCENARIO = """
units = 100
start = 2026-11-30
deadline = 2027-03-31
deliveries_per_week = 10
training_places_per_week = 5
pilot_boroughs = ["Camden"]
default_policy = "personal"
policy = { Barnet = "pool" }
spares_ratio = 0.0
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "boroughs.toml").write_text(BOROUGHS)
    (tmp_path / "rollout.toml").write_text(SCENARIO)
    return tmp_path


@pytest.fixture
def rolling(tmp_path, files):
    settings = make_settings(
        tmp_path / "central",
        rollout={"boroughs": str(files / "boroughs.toml"), "scenario": str(files / "rollout.toml")},
        fleet={"assignment_modes": {"Camden": "personal", "Barnet": "pool"}},
    )
    with central_client(settings, raise_server_exceptions=False) as c:
        officers = [
            {
                "officer_id": f"PC{i:03d}",
                "borough": "Camden",
                "team": "T1" if i < 6 else "T2",
                "role": ("neighbourhood", "response", "other")[i % 3],
            }
            for i in range(12)
        ]
        officers += [{"officer_id": f"PB{i:03d}", "borough": "Barnet", "role": "response"} for i in range(8)]
        assert c.post("/api/v1/officers/", json=officers, headers=ADMIN).status_code == 200
        devices = [{"serial": f"BWV-{i:06d}", "model": "Axon Body 2"} for i in range(30)]
        assert c.post("/api/v1/devices/", json=devices, headers=ADMIN).status_code == 201
        yield c


def test_the_plan_is_served_as_json_and_csv(rolling):
    plan = rolling.get("/api/v1/rollout/plan", headers=ADMIN).json()
    assert plan["officers_in_scope"] == 16 and plan["feasible"] is True
    csv = rolling.get("/api/v1/rollout/plan.csv", headers=ADMIN)
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0] == "week,starts,borough,officers,cameras,spares"
    assert rolling.get("/api/v1/rollout/storage", headers=ADMIN).json()["months"]


def test_without_a_scenario_central_says_so(client):
    response = client.get("/api/v1/rollout/plan", headers=ADMIN)
    assert response.status_code == 404 and "[rollout]" in response.json()["message"]


def test_stations_may_not_plan_or_allocate(rolling):
    assert rolling.get("/api/v1/rollout/plan", headers=CAMDEN).status_code == 403
    assert rolling.post("/api/v1/rollout/proposals", json={}, headers=CAMDEN).status_code == 403


def test_propose_review_commit_personal_and_pool(rolling):
    response = rolling.post("/api/v1/rollout/proposals", json={}, headers=ADMIN)
    assert response.status_code == 201, response.text
    proposal = response.json()
    items = proposal["items"]
    camden = [i for i in items if i["borough"] == "Camden"]
    barnet = [i for i in items if i["borough"] == "Barnet"]
    # Camden, personal: its 8 neighbourhood and response officers (not the 4 "other"), in team order.
    assert len(camden) == 8 and all(i["mode"] == "personal" and i["station_id"] is None for i in camden)
    assert len({i["officer_id"] for i in camden}) == 8
    assert {i["officer_id"] for i in camden} == {f"PC{i:03d}" for i in range(12) if i % 3 != 2}
    # Barnet, pool: ceil(8 × 0.25) = 2 on shift × 3 turns = 6 cameras at its one station.
    assert len(barnet) == 6 and all(i["station_id"] == "barnet" and i["officer_id"] is None for i in barnet)
    assert len({i["device_serial"] for i in items}) == 14
    # Nothing changed yet.
    assert rolling.get("/api/v1/assignments?active=true", headers=ADMIN).json() == []
    # A second proposal cannot take the same cameras or officers.
    assert rolling.post("/api/v1/rollout/proposals", json={"boroughs": ["Camden"]}, headers=ADMIN).status_code == 409

    committed = rolling.post(f"/api/v1/rollout/proposals/{proposal['id']}/commit", headers=ADMIN)
    assert committed.status_code == 200, committed.text
    assert committed.json()["state"] == "committed"
    active = rolling.get("/api/v1/assignments?active=true", headers=ADMIN).json()
    assert sorted(a["officer_id"] for a in active) == sorted(i["officer_id"] for i in camden)
    device = rolling.get(f"/api/v1/devices/{camden[0]['device_serial']}", headers=ADMIN).json()
    assert device["device"]["lifecycle"] == "issued" and device["device"]["holder"] == camden[0]["officer_id"]
    assert any("roll-out proposal" in r["detail"] for r in device["audit"])
    pool = rolling.get(f"/api/v1/devices/{barnet[0]['device_serial']}", headers=ADMIN).json()["device"]
    assert (pool["lifecycle"], pool["home_station"], pool["assignment_mode"]) == ("allocated", "barnet", "pool")
    # Committing twice is refused; the stations were told.
    assert rolling.post(f"/api/v1/rollout/proposals/{proposal['id']}/commit", headers=ADMIN).status_code == 409
    feed = rolling.get("/api/v1/changes/?since=0&wait=0", headers=CAMDEN).json()
    issues = {c["item"]["device_serial"] for c in feed["changes"] if c["item"]["kind"] == "personal_issue"}
    assert issues == {i["device_serial"] for i in camden}


def test_a_stale_proposal_commits_nothing_and_says_why(rolling):
    proposal = rolling.post("/api/v1/rollout/proposals", json={"boroughs": ["Camden"]}, headers=ADMIN).json()
    first = proposal["items"][0]
    # Meanwhile a supervisor issues one of the cameras by hand.
    issued = rolling.post(
        "/api/v1/assignments", json={"device_serial": first["device_serial"], "officer_id": "PC002"}, headers=ADMIN
    )
    assert issued.status_code == 201, issued.text
    response = rolling.post(f"/api/v1/rollout/proposals/{proposal['id']}/commit", headers=ADMIN)
    assert response.status_code == 409
    assert first["device_serial"] in response.json()["message"]
    assert len(rolling.get("/api/v1/assignments?active=true", headers=ADMIN).json()) == 1
    assert rolling.get(f"/api/v1/rollout/proposals/{proposal['id']}", headers=ADMIN).json()["state"] == "proposed"
    assert (
        rolling.post(f"/api/v1/rollout/proposals/{proposal['id']}/discard", headers=ADMIN).json()["state"]
        == "discarded"
    )


def test_allocation_follows_the_plan_week(rolling):
    # Week 1: Camden (the pilot) trains 5 officers; Barnet's pool starts with what is left of 10.
    proposal = rolling.post("/api/v1/rollout/proposals", json={"week": 1}, headers=ADMIN).json()
    plan = rolling.get("/api/v1/rollout/plan", headers=ADMIN).json()
    planned = {w["borough"]: w["officers"] for w in plan["waves"] if w["week"] == 1}
    camden = [i for i in proposal["items"] if i["borough"] == "Camden"]
    assert len(camden) == planned["Camden"] == 5
    # A second proposal for the same week finds nothing more to do while the first is open.
    again = rolling.post("/api/v1/rollout/proposals", json={"week": 1, "boroughs": ["Camden"]}, headers=ADMIN)
    assert again.status_code == 409, again.text


def test_a_proposal_from_a_spreadsheet_is_checked_row_by_row(rolling):
    rows = [
        ProposalItem(device_serial="BWV-000001", borough="Camden", mode="personal", officer_id="PC000"),
        ProposalItem(device_serial="BWV-000002", borough="Barnet", mode="pool", station_id="barnet"),
    ]
    text = csvio.write_csv(rows, ProposalItem)
    response = rolling.post(
        "/api/v1/rollout/proposals/import.csv", content=text, headers={**ADMIN, "Content-Type": "text/csv"}
    )
    assert response.status_code == 201, response.text
    exported = rolling.get(f"/api/v1/rollout/proposals/{response.json()['id']}/items.csv", headers=ADMIN).text
    assert csvio.read_csv(exported, ProposalItem) == sorted(rows, key=lambda i: i.borough)
    bad = csvio.write_csv(
        [
            ProposalItem(device_serial="BWV-999999", borough="Camden", mode="personal", officer_id="NOBODY"),
            ProposalItem(device_serial="BWV-000003", borough="Camden", mode="pool", station_id="nowhere"),
        ],
        ProposalItem,
    )
    response = rolling.post(
        "/api/v1/rollout/proposals/import.csv", content=bad, headers={**ADMIN, "Content-Type": "text/csv"}
    )
    assert response.status_code == 409
    message = response.json()["message"]
    assert "BWV-999999: not in the registry" in message and "officer NOBODY: unknown" in message
    assert "unknown station 'nowhere'" in message
    garbled = rolling.post(
        "/api/v1/rollout/proposals/import.csv",
        content="device_serial,colour\nX,red\n",
        headers={**ADMIN, "Content-Type": "text/csv"},
    )
    assert garbled.status_code == 400 and "unknown column 'colour'" in garbled.json()["message"]


def test_progress_counts_planned_delivered_issued_in_service(rolling):
    proposal = rolling.post("/api/v1/rollout/proposals", json={}, headers=ADMIN).json()
    rolling.post(f"/api/v1/rollout/proposals/{proposal['id']}/commit", headers=ADMIN)
    progress = rolling.get("/api/v1/rollout/progress", headers=ADMIN).json()
    current = progress["current_week"]
    this_week = {r["borough"]: r for r in progress["rows"] if r["week"] == current}
    assert this_week["Camden"]["issued"] == 8 and this_week["Camden"]["delivered"] == 8
    assert this_week["Barnet"]["delivered"] == 6 and this_week["Barnet"]["issued"] == 0
    assert this_week["all"]["delivered"] == 14 and this_week["all"]["in_service"] == 0
    final = [r for r in progress["rows"] if r["borough"] == "all"][-1]
    assert final["planned"] == 16
    csv = rolling.get("/api/v1/rollout/progress.csv?borough=Camden", headers=ADMIN).text
    assert csv.splitlines()[0] == "week,starts,borough,planned,delivered,issued,in_service"


@pytest.mark.slow  # the Met's scale: the whole suite, not the quick lane
def test_full_scale_allocation_20000_devices_to_20000_officers(tmp_path):
    """The Met's size: 20,000 officers across 32 boroughs, 20,000 serials, one proposal, one commit."""
    from central.core.services import build_services
    from central.core.store import CentralStore
    from fleet.events import Officer

    boroughs = "".join(f'[boroughs."B{b:02d}"]\nresponse = 625\nstations = {{ s{b:02d} = 400 }}\n' for b in range(32))
    (tmp_path / "boroughs.toml").write_text(boroughs)
    (tmp_path / "rollout.toml").write_text(
        SCENARIO.replace('policy = { Barnet = "pool" }', "")
        .replace('pilot_boroughs = ["Camden"]', "")
        .replace("units = 100", "units = 20000")
        .replace("deliveries_per_week = 10", "deliveries_per_week = 2000")
        .replace("training_places_per_week = 5", "training_places_per_week = 100")
    )
    settings = make_settings(
        tmp_path / "central",
        rollout={"boroughs": str(tmp_path / "boroughs.toml"), "scenario": str(tmp_path / "rollout.toml")},
        fleet={"default_assignment_mode": "personal"},
    )
    store = CentralStore.open(settings)
    try:
        services = build_services(settings, store)
        services.officers.upsert(
            [
                Officer(officer_id=f"PC{b:02d}{i:04d}", borough=f"B{b:02d}", role="response")
                for b in range(32)
                for i in range(625)
            ],
            "test",
        )
        from central.registry.devices import DeviceRegistration

        services.devices.register([DeviceRegistration(serial=f"BWV-{i:06d}") for i in range(20_000)], "test")
        rollout = services.rollout
        proposal = rollout.propose(ProposeRequest(), "planner")
        assert len(proposal.items) == 20_000
        assert len({i.officer_id for i in proposal.items}) == 20_000
        assert len({i.device_serial for i in proposal.items}) == 20_000
        # each officer (all personal issues here) in their own borough
        assert all(i.officer_id is not None and i.officer_id[2:4] == i.borough[1:] for i in proposal.items)
        committed = rollout.commit(proposal.id, "planner")
        assert committed.state == "committed"
        with store.writer.read() as db:
            assert db.execute("SELECT count(*) FROM assignments WHERE ended_at IS NULL").fetchone()[0] == 20_000
            assert db.execute("SELECT count(*) FROM devices WHERE lifecycle = 'issued'").fetchone()[0] == 20_000
            assert db.execute("SELECT count(*) FROM audit WHERE action = 'assign'").fetchone()[0] == 20_000
            assert db.execute("SELECT count(DISTINCT officer_id) FROM assignments").fetchone()[0] == 20_000
        progress = rollout.progress(today=date(2027, 6, 1))
        assert [r for r in progress.rows if r.borough == "all"][-1].planned == 20_000
    finally:
        store.close()


def test_planners_spreadsheets_devices_and_assignments(rolling):
    csv = "serial,model,borough\nBWV-100001,Axon Body 2,Camden\nBWV-100002,Axon Body 2,\n"
    response = rolling.post("/api/v1/devices/import.csv", content=csv, headers={**ADMIN, "Content-Type": "text/csv"})
    assert response.status_code == 201, response.text
    assert response.json()["created"] == ["BWV-100001", "BWV-100002"]
    bad = rolling.post(
        "/api/v1/devices/import.csv",
        content="serial,model\n,x\nBWV 1,y\n",
        headers={**ADMIN, "Content-Type": "text/csv"},
    )
    assert bad.status_code == 400 and "line 2" in bad.json()["message"] and "line 3" in bad.json()["message"]
    exported = rolling.get("/api/v1/devices/export.csv?borough=Camden", headers=ADMIN)
    assert exported.status_code == 200
    lines = exported.text.splitlines()
    assert lines[0].startswith("serial,model,firmware,lifecycle,borough") and lines[1].startswith("BWV-100001,")
    proposal = rolling.post(
        "/api/v1/rollout/proposals", json={"boroughs": ["Camden"], "count": 2}, headers=ADMIN
    ).json()
    rolling.post(f"/api/v1/rollout/proposals/{proposal['id']}/commit", headers=ADMIN)
    assignments = rolling.get("/api/v1/assignments/export.csv?active=true", headers=ADMIN).text.splitlines()
    assert assignments[0].startswith("id,device_serial,officer_id,mode,started_at") and len(assignments) == 3


def test_a_borough_named_twice_is_allocated_once(rolling):
    proposal = rolling.post(
        "/api/v1/rollout/proposals", json={"boroughs": ["Barnet", "Barnet", "Camden", "Camden"]}, headers=ADMIN
    ).json()
    counts = {b["borough"]: b["cameras"] for b in proposal["boroughs"]}
    assert counts == {"Barnet": 6, "Camden": 8}


def test_imported_rows_must_follow_the_borough_policy_and_its_stations(rolling):
    rows = [
        ProposalItem(device_serial="BWV-000001", borough="Camden", mode="pool", station_id="camden"),
        ProposalItem(device_serial="BWV-000002", borough="Barnet", mode="personal", officer_id="PB001"),
        ProposalItem(device_serial="BWV-000003", borough="Camden", mode="personal", officer_id="PB002"),
        ProposalItem(device_serial="BWV-000004", borough="Barnet", mode="pool", station_id="holborn"),
    ]
    response = rolling.post(
        "/api/v1/rollout/proposals/import.csv",
        content=csvio.write_csv(rows, ProposalItem),
        headers={**ADMIN, "Content-Type": "text/csv"},
    )
    assert response.status_code == 409
    message = response.json()["message"]
    assert "BWV-000001: Camden's policy is personal, not pool" in message
    assert "BWV-000002: Barnet's policy is pool, not personal" in message
    assert "officer PB002: is in Barnet, not Camden" in message
    assert "BWV-000004: station holborn is in Camden, not Barnet" in message


def test_pool_waves_fill_every_station_by_dock_slots(tmp_path, files):
    (files / "rollout.toml").write_text(
        SCENARIO.replace('policy = { Barnet = "pool" }', 'policy = { Camden = "pool" }')
    )
    settings = make_settings(
        tmp_path / "central",
        rollout={"boroughs": str(files / "boroughs.toml"), "scenario": str(files / "rollout.toml")},
        fleet={"assignment_modes": {"Camden": "pool"}},
    )
    with central_client(settings, raise_server_exceptions=False) as c:
        c.post(
            "/api/v1/officers/",
            json=[{"officer_id": f"PC{i}", "borough": "Camden", "role": "response"} for i in range(40)],
            headers=ADMIN,
        )
        c.post("/api/v1/devices/", json=[{"serial": f"BWV-{i:06d}"} for i in range(40)], headers=ADMIN)
        stations = []
        for _ in range(6):  # one camera a wave
            proposal = c.post("/api/v1/rollout/proposals", json={"count": 1}, headers=ADMIN).json()
            assert c.post(f"/api/v1/rollout/proposals/{proposal['id']}/commit", headers=ADMIN).status_code == 200
            stations += [i["station_id"] for i in proposal["items"]]
        assert sorted(stations) == ["camden"] * 3 + ["holborn"] * 3  # 10 dock slots each


def test_cameras_delivered_to_a_borough_are_handed_out_there_first(rolling):
    assert (
        rolling.post(
            "/api/v1/devices/", json=[{"serial": "ZZZ-000001", "borough": "Camden"}], headers=ADMIN
        ).status_code
        == 201
    )
    proposal = rolling.post(
        "/api/v1/rollout/proposals", json={"boroughs": ["Camden"], "count": 1}, headers=ADMIN
    ).json()
    assert [i["device_serial"] for i in proposal["items"]] == ["ZZZ-000001"]
    assert rolling.post(f"/api/v1/rollout/proposals/{proposal['id']}/commit", headers=ADMIN).status_code == 200


def test_progress_counts_a_docking_with_clips_as_in_service_and_a_pool_checkout_as_issued(rolling):
    from tests.central.fleetdata import docked, out, post

    proposal = rolling.post("/api/v1/rollout/proposals", json={}, headers=ADMIN).json()
    rolling.post(f"/api/v1/rollout/proposals/{proposal['id']}/commit", headers=ADMIN)
    personal = next(i for i in proposal["items"] if i["borough"] == "Camden")
    pool = next(i for i in proposal["items"] if i["borough"] == "Barnet")
    post(rolling, CAMDEN, [docked(personal["device_serial"], clips=2)])
    from tests.central.conftest import BARNET

    post(rolling, BARNET, [docked(pool["device_serial"]), out(pool["device_serial"], "PB003")])
    progress = rolling.get("/api/v1/rollout/progress", headers=ADMIN).json()
    now = {r["borough"]: r for r in progress["rows"] if r["week"] == progress["current_week"]}
    assert now["Camden"]["in_service"] == 1 and now["Barnet"]["issued"] == 1
    assert rolling.get("/api/v1/rollout/progress?borough=Nowhere", headers=ADMIN).status_code == 404


def test_broken_rollout_files_are_a_clear_503_not_a_crash(rolling, files):
    import os

    (files / "rollout.toml").write_text(SCENARIO + "\nbogus = 1\n")
    os.utime(files / "rollout.toml", ns=(1, 1))  # a new mtime, so central reads it again
    response = rolling.get("/api/v1/rollout/plan", headers=ADMIN)
    assert response.status_code == 503 and "unknown field `bogus`" in response.json()["message"]
