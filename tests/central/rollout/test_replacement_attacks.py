"""Attacks on withdrawing a model and swapping its cameras: hostile names, scoped callers, repeats."""

from __future__ import annotations

import threading

import pytest

from central.core.providers import services
from fleet.errors import BadRequest, Conflict
from tests.central.conftest import ADMIN
from tests.central.firmware.conftest import vendor
from tests.central.firmware.test_deployments import client, send
from tests.central.fleetdata import docked
from tests.central.rollout.test_replacements import MODEL, fleet

__all__ = ["client", "fleet", "vendor"]  # the fixtures, reused

HOSTILE = ["Axon\x00Body", "Axon\u202eBody", "Axon\x1bBody"]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_model_name_with_a_nul_control_or_bidi_character_is_a_4xx_never_a_500(client, name):
    quoted = name.replace("\x00", "%00").replace("\x1b", "%1B").replace("\u202e", "%E2%80%AE")
    answers = [
        client.post(f"/api/v1/models/{quoted}/withdraw", json={"reason": "unfit"}, headers=ADMIN),
        client.post(f"/api/v1/models/{quoted}/replacements", json={}, headers=ADMIN),
        client.post("/api/v1/models/Axon%20Body%202/replacements", json={"boroughs": [name]}, headers=ADMIN),
        client.get(f"/api/v1/models/{quoted}/swap", headers=ADMIN),
        client.get(f"/api/v1/models/{quoted}/cameras", headers=ADMIN),
        client.get(f"/models/{quoted}", headers=ADMIN),
        client.get("/api/v1/firmware/releases", params={"model": name}, headers=ADMIN),
    ]
    assert [a.status_code for a in answers if a.status_code >= 500] == [], [a.text for a in answers]


def test_a_station_cannot_launder_a_withdrawn_camera_by_docking_it_as_another_model(client):
    withdrawn = client.post(
        "/api/v1/models/Axon%20Body%202/withdraw", json={"reason": "unfit", "propose": False}, headers=ADMIN
    )
    assert withdrawn.status_code == 200, withdrawn.text
    relabelled = docked("BWV-C001", 3)
    relabelled.device.model = "Axon Body 3"  # what a stolen Camden token claims the camera is now
    send(client, "camden", [relabelled])
    assert client.get("/api/v1/devices/BWV-C001", headers=ADMIN).json()["device"]["model"] == "Axon Body 2"
    swapped = {c["serial"] for c in client.get("/api/v1/models/Axon%20Body%202/cameras", headers=ADMIN).json()}
    assert "BWV-C001" in swapped  # still to be swapped, never handed out again


@pytest.mark.parametrize("name", HOSTILE)
def test_a_camera_registered_with_a_hostile_model_name_is_refused_with_a_4xx(client, name):
    row = {"serial": "BWV-X001", "model": name, "borough": "Camden", "home_station": "camden"}
    answer = client.post("/api/v1/devices/", headers=ADMIN, json=[row])
    assert 400 <= answer.status_code < 500, answer.text


def test_a_model_registered_is_one_that_can_be_withdrawn(client):
    row = {"serial": "BWV-X001", "model": "A" * 100, "borough": "Camden", "home_station": "camden"}
    answer = client.post("/api/v1/devices/", headers=ADMIN, json=[row])
    assert answer.status_code == 400, answer.text  # no route could name a model this long to withdraw it


def test_a_model_name_is_escaped_on_the_models_pages(client):
    name = "<img src=x onerror=alert(1)>"
    row = {"serial": "BWV-X001", "model": name, "borough": "Camden", "home_station": "camden"}
    client.post("/api/v1/devices/", headers=ADMIN, json=[row])
    client.post(f"/api/v1/models/{name}/withdraw", json={"reason": "unfit"}, headers=ADMIN)
    for path in ("/models", f"/models/{name}", "/devices/BWV-X001"):
        page = client.get(path, headers=ADMIN)
        assert name not in page.text, path


def test_a_replacement_proposal_committed_twice_at_once_is_committed_once(fleet):
    withdrawn = fleet.post(f"{MODEL}/withdraw", json={"reason": "unfit"}, headers=ADMIN)
    proposal_id = withdrawn.json()["proposal"]["id"]
    rollout = services(fleet.app).rollout
    outcomes: list[str] = []

    def commit() -> None:
        try:
            rollout.commit(proposal_id, "planner")
            outcomes.append("committed")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=commit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["committed", "conflict"]
    held = fleet.get("/api/v1/assignments?officer_id=PC1&active=true", headers=ADMIN).json()
    assert len(held) == 2  # the old camera and one replacement, not two
    again = fleet.post(f"{MODEL}/replacements", json={}, headers=ADMIN)
    assert again.status_code == 409


def test_the_cameras_of_no_known_model_are_not_a_model_to_withdraw(fleet):
    assert fleet.post("/api/v1/devices/", json=[{"serial": "BWV-ANON-1"}], headers=ADMIN).status_code == 201
    with pytest.raises(BadRequest):  # the CLI passes any string: `fleet central model withdraw ""`
        services(fleet.app).replacements.withdraw("", "unfit", "fm")
    assert services(fleet.app).models.withdrawals() == []


def test_a_huge_list_of_boroughs_to_replace_in_is_refused_before_it_holds_the_write_lock(fleet):
    fleet.post(f"{MODEL}/withdraw", json={"reason": "unfit", "propose": False}, headers=ADMIN)
    boroughs = [f"Borough {n:06}" for n in range(20_000)]
    answer = fleet.post(f"{MODEL}/replacements", json={"boroughs": boroughs}, headers=ADMIN)
    assert answer.status_code == 400, answer.text[:200]
