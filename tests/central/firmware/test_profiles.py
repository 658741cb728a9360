"""Camera profiles: set by scope, resolved setting by setting, every camera's explained."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from central.registry.assignments import IssueRequest
from central.registry.devices import DeviceRegistration
from fleet.errors import BadRequest, NotFound
from fleet.events import Officer
from fleet.profiles import (
    BUILT_IN,
    PRECEDENCE,
    SETTINGS,
    CameraSettings,
    Layer,
    ProfileScope,
    explain,
    parse_scope,
    resolve,
)
from tests.central.apps import central_client
from tests.central.conftest import ADMIN, BARNET, CAMDEN
from tests.central.firmware.conftest import MODEL, audit_actions, firmware_settings
from tests.central.fleetdata import docked, out, post


def camera(services, serial: str, borough: str, officer: tuple[str, str] | None = None, model: str = MODEL) -> None:
    services.devices.register(
        [DeviceRegistration(serial=serial, model=model, borough=borough, assignment_mode="personal")], "t"
    )
    if officer is not None:
        officer_id, role = officer
        services.officers.upsert([Officer(officer_id=officer_id, borough=borough, role=role)], "t")  # type: ignore[arg-type]
        services.assignments.issue(
            IssueRequest(device_serial=serial, officer_id=officer_id), "t", services.settings.fleet.assignment_mode
        )


def test_a_camera_with_no_profile_has_the_built_in_settings(services):
    camera(services, "BWV-1", "Camden")
    answer = services.profiles.explain("BWV-1")
    assert answer.settings == BUILT_IN
    assert answer.lines[0] == "pre_record_s = 30 from: built-in"
    with pytest.raises(NotFound):
        services.profiles.explain("BWV-NONE")


def test_each_setting_comes_from_the_most_specific_scope_that_sets_it(services):
    camera(services, "BWV-ARMED", "Camden", ("PC1", "armed"))
    camera(services, "BWV-OTHER", "Barnet", ("PC2", "response"), model="Axon Body 3")
    services.profiles.set("default", CameraSettings(pre_record_s=30, audio=True), "fm")
    services.profiles.set(f"model:{MODEL}", CameraSettings(resolution="1440p", frame_rate=25), "fm")
    services.profiles.set("borough:Camden", CameraSettings(frame_rate=50, mount="shoulder"), "fm")
    services.profiles.set("role:armed", CameraSettings(mount="head", pre_record_s=60), "fm")

    armed = services.profiles.explain("BWV-ARMED")
    assert (armed.officer_id, armed.role, armed.borough) == ("PC1", "armed", "Camden")
    assert armed.lines == [
        "pre_record_s = 60 from: role armed (over force default = 30)",
        f"resolution = 1440p from: model {MODEL}",
        f"frame_rate = 50 from: borough Camden (over model {MODEL} = 25)",
        "audio = on from: force default",
        "recording_indicator = on from: built-in",
        "mount = head from: role armed (over borough Camden = shoulder)",
    ]
    other = services.profiles.explain("BWV-OTHER")  # another model, borough and role: only the default applies
    assert other.settings == CameraSettings(
        pre_record_s=30, resolution="1080p", frame_rate=30, audio=True, recording_indicator=True, mount="shoulder"
    )
    assert {r.source for r in other.explanation} == {"force default", "built-in"}


def test_changes_are_audited_with_the_values_before_and_after(services):
    services.profiles.set("role:armed", CameraSettings(mount="head"), "fm")
    services.profiles.set("role:armed", CameraSettings(mount="head"), "fm")  # no change: no record
    services.profiles.set("role:armed", CameraSettings(mount="head", audio=False), "fm")
    emptied = services.profiles.set("role:armed", CameraSettings(), "fm")
    assert emptied.settings == CameraSettings() and services.profiles.all() == []
    assert audit_actions(services, "camera_profile") == [
        ("profile-set", "role:armed", 'before {}; after {"mount":"head"}'),
        ("profile-set", "role:armed", 'before {"mount":"head"}; after {"audio":false,"mount":"head"}'),
        ("profile-remove", "role:armed", 'before {"audio":false,"mount":"head"}; after {}'),
    ]


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ("everyone", "a profile scope is default"),
        ("role:sniper", "not an officer role"),
        ("borough:", "not a valid borough"),
        ("model: Axon", "not a valid model"),
        ("colour:red", "a profile scope is default"),
    ],
)
def test_a_scope_out_of_shape_is_a_clear_400(services, scope, message):
    with pytest.raises(BadRequest, match=message):
        services.profiles.set(scope, CameraSettings(mount="head"), "fm")


SETTING_VALUES = {
    "pre_record_s": st.integers(0, 120),
    "resolution": st.sampled_from(["720p", "1080p", "1440p"]),
    "frame_rate": st.sampled_from([25, 30, 50, 60]),
    "audio": st.booleans(),
    "recording_indicator": st.booleans(),
    "mount": st.sampled_from(["shoulder", "head"]),
}
PARTIAL = st.fixed_dictionaries({}, optional=dict(SETTING_VALUES)).map(lambda d: msgspec.convert(d, CameraSettings))
NAMES = {"default": "", "model": MODEL, "borough": "Camden", "role": "armed"}


@given(st.dictionaries(st.sampled_from(PRECEDENCE), PARTIAL))
def test_resolution_takes_each_setting_from_the_most_specific_scope_setting_it(profiles):
    layers = [Layer(scope=ProfileScope(kind=k, name=NAMES[k]), settings=s) for k, s in profiles.items()]
    resolved = resolve(layers[::-1])  # the order they come in does not matter
    assert [r.setting for r in resolved] == list(SETTINGS)
    for r in resolved:
        setters = [k for k in PRECEDENCE if k in profiles and getattr(profiles[k], r.setting) is not None]
        if not setters:
            assert (r.value, r.source) == (getattr(BUILT_IN, r.setting), "built-in")
        else:
            winner = setters[-1]
            assert r.value == getattr(profiles[winner], r.setting)
            assert r.source == ProfileScope(kind=winner, name=NAMES[winner]).label
            assert len(r.overrides) == len(setters) - 1
    assert len(explain(resolved)) == len(SETTINGS)


def test_scopes_parse_and_print_alike():
    for text in ("default", f"model:{MODEL}", "borough:Kensington and Chelsea", "role:armed"):
        assert parse_scope(text).key == text


def test_the_profile_routes_end_to_end(tmp_path):
    with central_client(firmware_settings(tmp_path / "central", None), raise_server_exceptions=False) as c:
        c.post("/api/v1/officers/", headers=ADMIN, json=[{"officer_id": "PC1", "borough": "Camden", "role": "armed"}])
        c.post(
            "/api/v1/devices/",
            headers=ADMIN,
            json=[
                {"serial": "BWV-C1", "borough": "Camden", "model": MODEL, "assignment_mode": "personal"},
                {"serial": "BWV-B1", "borough": "Barnet", "model": MODEL, "assignment_mode": "personal"},
            ],
        ).raise_for_status()
        c.post("/api/v1/assignments", headers=ADMIN, json={"device_serial": "BWV-C1", "officer_id": "PC1"})
        put = c.put("/api/v1/profiles/role:armed", headers=ADMIN, json={"mount": "head"})
        assert put.status_code == 200 and put.json()["settings"] == {"mount": "head"}, put.text
        bad = c.put("/api/v1/profiles/role:armed", headers=ADMIN, json={"pre_record_s": 999})
        assert bad.status_code == 400 and bad.json()["error"] == "bad_request"
        unknown = c.put("/api/v1/profiles/role:armed", headers=ADMIN, json={"colour": "red"})
        assert unknown.status_code == 400
        assert c.put("/api/v1/profiles/role:sniper", headers=ADMIN, json={}).status_code == 400
        assert c.put("/api/v1/profiles/default", headers=CAMDEN, json={"mount": "head"}).status_code == 403
        assert [p["scope"] for p in c.get("/api/v1/profiles", headers=CAMDEN).json()] == ["role:armed"]
        assert c.get("/api/v1/profiles/borough:Camden", headers=CAMDEN).json()["settings"] == {}
        explained = c.get("/api/v1/devices/BWV-C1/profile", headers=CAMDEN)
        assert explained.status_code == 200, explained.text
        assert "mount = head from: role armed" in explained.json()["lines"]
        assert c.get("/api/v1/devices/BWV-B1/profile", headers=CAMDEN).status_code == 403  # another borough's
        assert c.get("/api/v1/devices/BWV-B1/profile", headers=BARNET).status_code == 200
        assert c.get("/api/v1/devices/BWV-NONE/profile", headers=ADMIN).status_code == 404


def test_a_pool_camera_checked_out_to_an_armed_officer_takes_no_role_profile(tmp_path):
    """Settings reach a camera at the dock; a pool camera goes to whoever comes next, so the role of
    the officer who has it out now must not decide them (docs/firmware.md, "Scopes and precedence")."""
    with central_client(firmware_settings(tmp_path / "central", None), raise_server_exceptions=False) as c:
        c.post("/api/v1/officers/", headers=ADMIN, json=[{"officer_id": "PC1", "borough": "Camden", "role": "armed"}])
        c.post(
            "/api/v1/devices/",
            headers=ADMIN,
            json=[{"serial": "BWV-P1", "borough": "Camden", "model": MODEL, "assignment_mode": "pool"}],
        ).raise_for_status()
        c.put("/api/v1/profiles/role:armed", headers=ADMIN, json={"mount": "head"}).raise_for_status()
        post(c, CAMDEN, [docked("BWV-P1"), out("BWV-P1", "PC1")])
        assert c.get("/api/v1/devices/BWV-P1", headers=ADMIN).json()["device"]["holder"] == "PC1"  # out now
        explained = c.get("/api/v1/devices/BWV-P1/profile", headers=ADMIN).json()
        assert explained["role"] is None and "mount = shoulder from: built-in" in explained["lines"]


# -- attack23: findings (failing tests; production code unchanged) ---------------------------------


@pytest.mark.parametrize("name", ["Cam%0Dden", "Cam%09den", "%E2%80%AEnedmaC"])
def test_finding3_a_borough_scope_with_control_or_bidi_characters_is_refused(tmp_path, name):
    with central_client(firmware_settings(tmp_path / "central", None), raise_server_exceptions=False) as c:
        answer = c.put(f"/api/v1/profiles/borough:{name}", headers=ADMIN, json={"recording_indicator": False})
        assert answer.status_code == 400, answer.text
        assert c.get("/api/v1/profiles", headers=ADMIN).json() == []
