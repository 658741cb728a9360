"""Replacing a model: withdrawn (audited), never handed out again, its cameras swapped like for like
through ordinary roll-out proposals, and the swap followed until the last one is returned."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from central.core.providers import services
from fleet.clock import utc_now
from tests.central.apps import central_client
from tests.central.conftest import ADMIN, BARNET, make_settings
from tests.central.fleetdata import T0, out, post

OLD, NEW = "Axon Body 2", "Axon Body 3"
MODEL = f"/api/v1/models/{quote(OLD)}"


@pytest.fixture
def fleet(tmp_path):
    """Camden issues personally, Barnet pools. Of the old model: BWV-OLD-1 issued to PC1 in Camden,
    BWV-OLD-2 in Barnet's pool at its station, BWV-OLD-3 in stock; and three new cameras in stock."""
    settings = make_settings(tmp_path / "central", fleet={"assignment_modes": {"Camden": "personal", "Barnet": "pool"}})
    with central_client(settings, raise_server_exceptions=False) as c:
        officers = [
            {"officer_id": "PC1", "borough": "Camden", "role": "response"},
            {"officer_id": "PC2", "borough": "Camden", "role": "response"},
            {"officer_id": "PB1", "borough": "Barnet", "role": "response"},
        ]
        assert c.post("/api/v1/officers/", json=officers, headers=ADMIN).status_code == 200
        devices = [
            {"serial": "BWV-OLD-1", "model": OLD, "borough": "Camden", "assignment_mode": "personal"},
            {
                "serial": "BWV-OLD-2",
                "model": OLD,
                "borough": "Barnet",
                "home_station": "barnet",
                "assignment_mode": "pool",
            },
            {"serial": "BWV-OLD-3", "model": OLD},
        ] + [{"serial": f"BWV-NEW-{i}", "model": NEW} for i in range(1, 4)]
        assert c.post("/api/v1/devices/", json=devices, headers=ADMIN).status_code == 201
        issued = c.post("/api/v1/assignments", json={"device_serial": "BWV-OLD-1", "officer_id": "PC1"}, headers=ADMIN)
        assert issued.status_code == 201, issued.text
        yield c


def stages(client) -> dict[str, tuple[str, str | None]]:
    cameras = client.get(f"{MODEL}/cameras", headers=ADMIN)
    assert cameras.status_code == 200, cameras.text
    return {c["serial"]: (c["stage"], c["replacement"]) for c in cameras.json()}


def figures(client) -> dict[str, dict]:
    swap = client.get(f"{MODEL}/swap", headers=ADMIN).json()
    return {row["borough"]: row for row in [*swap["boroughs"], swap["total"]]} | {"": swap}


def retire(client, serial: str) -> None:
    response = client.post(
        f"/api/v1/devices/{serial}/lifecycle", json={"state": "retired", "reason": "returned"}, headers=ADMIN
    )
    assert response.status_code == 200, response.text


def test_a_withdrawn_models_cameras_are_swapped_through_the_rollout_until_the_last_is_returned(fleet):
    withdrawn = fleet.post(f"{MODEL}/withdraw", json={"reason": "not fit for purpose: mounts fail"}, headers=ADMIN)
    assert withdrawn.status_code == 200, withdrawn.text
    result = withdrawn.json()
    assert result["withdrawal"]["model"] == OLD and result["withdrawal"]["withdrawn_by"] == "admin"
    proposal = result["proposal"]
    items = {i["replaces"]: i for i in proposal["items"]}
    # Like for like: PC1's camera for PC1, the Barnet pool's for the same station; the one in stock needs none.
    assert set(items) == {"BWV-OLD-1", "BWV-OLD-2"}
    assert (items["BWV-OLD-1"]["mode"], items["BWV-OLD-1"]["officer_id"]) == ("personal", "PC1")
    assert (items["BWV-OLD-2"]["mode"], items["BWV-OLD-2"]["station_id"]) == ("pool", "barnet")
    assert {i["device_serial"] for i in proposal["items"]} <= {f"BWV-NEW-{i}" for i in range(1, 4)}
    assert proposal["state"] == "proposed" and "replacing withdrawn" in proposal["description"]
    # It is an ordinary roll-out proposal, listed for review with the others.
    listed = fleet.get("/api/v1/rollout/proposals?state=proposed", headers=ADMIN).json()
    assert [p["id"] for p in listed] == [proposal["id"]]
    assert stages(fleet) == {
        "BWV-OLD-1": ("proposed", items["BWV-OLD-1"]["device_serial"]),
        "BWV-OLD-2": ("proposed", items["BWV-OLD-2"]["device_serial"]),
        "BWV-OLD-3": ("in_stores", None),
    }
    # Nothing more to propose while these are open.
    again = fleet.post(f"{MODEL}/replacements", json={}, headers=ADMIN)
    assert again.status_code == 409 and "nothing to replace" in again.json()["message"]

    committed = fleet.post(f"/api/v1/rollout/proposals/{proposal['id']}/commit", headers=ADMIN)
    assert committed.status_code == 200, committed.text
    new_personal, new_pool = items["BWV-OLD-1"]["device_serial"], items["BWV-OLD-2"]["device_serial"]
    # PC1 holds both until the old one is handed in, so its clips stay PC1's.
    held = fleet.get("/api/v1/assignments?officer_id=PC1&active=true", headers=ADMIN).json()
    assert sorted(a["device_serial"] for a in held) == sorted(["BWV-OLD-1", new_personal])
    assert stages(fleet)["BWV-OLD-1"] == ("replacement_issued", new_personal)
    assert stages(fleet)["BWV-OLD-2"] == ("replacement_allocated", new_pool)
    trail = fleet.get("/api/v1/devices/BWV-OLD-1", headers=ADMIN).json()["audit"]
    assert any(r["action"] == "replace" and new_personal in r["detail"] for r in trail)

    # The pool's replacement is handed out at its first checkout (station time after the commit).
    now_h = (utc_now() - T0).total_seconds() / 3600 + 0.01
    assert post(fleet, BARNET, [out(new_pool, "PB1")], hours=[now_h]).status_code == 200
    assert stages(fleet)["BWV-OLD-2"] == ("replacement_issued", new_pool)
    rows = figures(fleet)
    assert (rows["Camden"]["replacement_issued"], rows["Barnet"]["replacement_issued"]) == (1, 1)
    assert rows["(stores)"]["in_stores"] == 1 and rows[""]["outstanding"] == 3 and not rows[""]["complete"]

    # Returned: PC1's old camera handed in (its issue ended) and retired; the rest retired.
    assert fleet.post("/api/v1/assignments/BWV-OLD-1/end", json={"reason": "swapped"}, headers=ADMIN).status_code == 200
    for serial in ("BWV-OLD-1", "BWV-OLD-2", "BWV-OLD-3"):
        retire(fleet, serial)
    rows = figures(fleet)
    assert rows["all"]["returned"] == 3 and rows[""]["outstanding"] == 0 and rows[""]["complete"]


def test_a_withdrawal_is_audited_once_with_its_reason_and_names_a_known_model(fleet):
    assert fleet.post("/api/v1/models/No%20Such/withdraw", json={"reason": "x"}, headers=ADMIN).status_code == 404
    assert fleet.post(f"{MODEL}/withdraw", json={"reason": " "}, headers=ADMIN).status_code == 400
    first = fleet.post(f"{MODEL}/withdraw", json={"reason": "unfit", "propose": False}, headers=ADMIN)
    assert first.status_code == 200 and first.json()["proposal"] is None
    twice = fleet.post(f"{MODEL}/withdraw", json={"reason": "unfit"}, headers=ADMIN)
    assert twice.status_code == 409 and "withdrawn already" in twice.json()["message"]
    with services(fleet.app).store.writer.read() as db:
        trail = db.execute("SELECT action, object_id, detail FROM audit WHERE object_type = 'model'").fetchall()
    assert [tuple(r) for r in trail] == [("model-withdraw", OLD, "3 cameras: unfit")]
    models = {m["model"]: m for m in fleet.get("/api/v1/models", headers=ADMIN).json()}
    assert models[OLD]["withdrawal"]["reason"] == "unfit" and models[NEW]["withdrawal"] is None
    # Not withdrawn: no swap to show, and no replacement to propose.
    assert fleet.get(f"/api/v1/models/{quote(NEW)}/swap", headers=ADMIN).status_code == 404
    assert fleet.post(f"/api/v1/models/{quote(NEW)}/replacements", json={}, headers=ADMIN).status_code == 409


def test_a_withdrawn_models_camera_is_never_handed_out_again(fleet):
    fleet.post(f"{MODEL}/withdraw", json={"reason": "unfit", "propose": False}, headers=ADMIN).raise_for_status()
    issue = fleet.post("/api/v1/assignments", json={"device_serial": "BWV-OLD-3", "officer_id": "PC2"}, headers=ADMIN)
    assert issue.status_code == 409 and "withdrawn" in issue.json()["message"]
    # A planner's own spreadsheet cannot hand one out either.
    csv = "device_serial,borough,mode,officer_id,station_id\nBWV-OLD-3,Camden,personal,PC2,\n"
    imported = fleet.post(
        "/api/v1/rollout/proposals/import.csv", content=csv, headers={**ADMIN, "Content-Type": "text/csv"}
    )
    assert imported.status_code == 409 and "BWV-OLD-3: model Axon Body 2 is withdrawn" in imported.json()["message"]


def test_without_stock_nothing_is_proposed_and_the_withdrawal_says_why(fleet):
    for serial in ("BWV-NEW-1", "BWV-NEW-2", "BWV-NEW-3"):
        retire(fleet, serial)
    result = fleet.post(f"{MODEL}/withdraw", json={"reason": "unfit"}, headers=ADMIN).json()
    assert result["proposal"] is None and "no camera is free" in result["note"]
    assert stages(fleet)["BWV-OLD-1"] == ("in_service", None)
