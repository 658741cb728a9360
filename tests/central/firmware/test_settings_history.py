"""A camera's settings over time: a version each time its effective profile changed, where it came
from, and whether the camera confirmed carrying it (docs/firmware.md, "A camera's settings over time")."""

from __future__ import annotations

import pytest

from central.core.providers import services
from central.registry.devices import LifecycleRequest
from fleet.events import CameraUpdateOffered, CameraUpdateResult, Officer
from fleet.profiles import CameraSettings
from tests.central.conftest import ADMIN, BARNET, CAMDEN
from tests.central.firmware.test_deployments import create, fleet, offers, send, serving
from tests.central.firmware.test_profiles import camera
from tests.central.fleetdata import docked


@pytest.fixture
def client(tmp_path, vendor):
    with serving(tmp_path / "central", vendor) as c:
        fleet(c)
        yield c


def history(c, serial: str, headers=ADMIN, **params) -> dict:
    answer = c.get(f"/api/v1/devices/{serial}/settings", headers=headers, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def applied(c, station: str, serial: str, deployment_id: int, ok: bool = True, attempt: int = 1, **report) -> None:
    """A camera's report of the profile applied, as its station posts it."""
    send(
        c,
        station,
        [
            CameraUpdateOffered(serial=serial, deployment_id=deployment_id, attempt=attempt),
            CameraUpdateResult(
                serial=serial,
                deployment_id=deployment_id,
                attempt=attempt,
                ok=ok,
                version=report.get("version", "1.4.2"),
                error=report.get("error"),
            ),
        ],
    )


def test_each_change_of_a_cameras_effective_profile_is_a_version_with_its_cause_and_sources(services):
    camera(services, "BWV-C1", "Camden", ("PC1", "response"))
    camera(services, "BWV-B1", "Barnet")
    services.profiles.set("borough:Camden", _settings(mount="head"), "fm")
    services.profiles.set("borough:Camden", _settings(mount="head"), "fm")  # the same: nothing new
    services.profiles.set("role:armed", _settings(pre_record_s=60), "fm")  # nobody armed yet: nothing new
    services.officers.upsert([Officer(officer_id="PC1", borough="Camden", role="armed")], "hr")

    page = services.profiles.history("BWV-C1")
    causes = [v.cause for v in page.items]
    # Issued to a response officer, whose role no profile sets: the settings did not change.
    assert causes == ["its holder's role changed", "profile borough:Camden set", "registered"]
    newest = page.items[0]
    assert newest.settings.pre_record_s == 60 and newest.settings.mount == "head"
    assert newest.source == "from: role armed, borough Camden, built-in"
    assert "mount = head from: borough Camden" in newest.lines
    assert newest.actor == "hr" and newest.status == "pending" and page.carried is None
    assert [v.status for v in page.items[1:]] == ["superseded"] * 2
    barnet = services.profiles.history("BWV-B1")
    assert [v.cause for v in barnet.items] == ["registered"]  # Camden's profile is not Barnet's


def _settings(**values) -> CameraSettings:
    return CameraSettings(**values)


def test_a_camera_moved_to_another_borough_takes_that_boroughs_settings(services):
    camera(services, "BWV-C1", "Camden")
    services.profiles.set("borough:Barnet", _settings(frame_rate=50), "fm")
    services.devices.change_lifecycle("BWV-C1", LifecycleRequest(state="in_stock", reason="back to stores"), "fm")
    services.devices.change_lifecycle(
        "BWV-C1", LifecycleRequest(state="allocated", borough="Barnet", reason="sent to Barnet"), "fm"
    )
    newest = services.profiles.history("BWV-C1").items[0]
    assert newest.cause == "moved to borough Barnet" and newest.settings.frame_rate == 50
    assert newest.source == "from: borough Barnet, built-in"
    # In stores it had no borough, so the same settings as when registered: no version for the trip.
    assert [v.cause for v in services.profiles.history("BWV-C1").items] == ["moved to borough Barnet", "registered"]


def test_a_profile_deployment_reported_applied_confirms_the_version_it_offered(client):
    client.put("/api/v1/profiles/borough:Camden", json={"mount": "head"}, headers=ADMIN).raise_for_status()
    d = create(client, profiles=True, target={"serials": ["BWV-C001", "BWV-C002"]}, phases=[{"share_pct": 100}])
    assert offers(client, CAMDEN)["BWV-C001"]["profile"]["mount"] == "head"
    # The profile changes after the offer, before the camera reports: the camera carries what it was
    # offered (confirmed), the newer version stays pending for the next deployment.
    client.put("/api/v1/profiles/borough:Camden", json={"mount": "head", "audio": False}, headers=ADMIN)
    applied(client, "camden", "BWV-C001", d["id"])
    applied(client, "camden", "BWV-C001", d["id"])  # a repeat changes nothing
    applied(client, "camden", "BWV-C002", d["id"], ok=False, error="settings rejected")

    page = history(client, "BWV-C001")
    [pending, confirmed, *_] = page["items"]
    assert pending["status"] == "pending" and pending["settings"]["audio"] is False
    assert confirmed["status"] == "confirmed" and confirmed["settings"]["mount"] == "head"
    assert confirmed["deployment_id"] == d["id"] and confirmed["station_id"] == "camden"
    assert confirmed["cause"] == "profile borough:Camden set" and confirmed["confirmed_at"]
    assert page["carried"]["id"] == confirmed["id"]
    failed = history(client, "BWV-C002")
    assert failed["carried"] is None and {v["status"] for v in failed["items"]} <= {"pending", "superseded"}

    html = client.get("/devices/BWV-C001", headers=ADMIN)
    assert html.status_code == 200, html.text
    assert 'class="settings-history"' in html.text and f"deployment {d['id']}" in html.text
    assert '<span class="tag warn">pending</span>' in html.text and '<span class="tag ok">confirmed</span>' in html.text

    # Set back to what the camera carries: the new version is confirmed already, by that report.
    client.put("/api/v1/profiles/borough:Camden", json={"mount": "head"}, headers=ADMIN)
    back = history(client, "BWV-C001")["items"][0]
    assert back["status"] == "confirmed" and back["deployment_id"] == d["id"]


def test_a_version_no_row_holds_is_added_confirmed_and_the_current_one_after_it(client):
    """A camera known before the history began: its first report still shows what it carries."""
    d = create(client, profiles=True, target={"serials": ["BWV-C003"]}, phases=[{"share_pct": 100}])
    with services(client.app).store.writer.write() as db:
        db.execute("DELETE FROM camera_settings WHERE serial = 'BWV-C003'")
    applied(client, "camden", "BWV-C003", d["id"])
    [version] = history(client, "BWV-C003")["items"]
    assert version["status"] == "confirmed" and version["source"] == f"from: deployment {d['id']}'s offer"
    assert version["actor"] == "dock:camden"


def test_the_history_is_paged_newest_first(client):
    for n in range(5):
        client.put("/api/v1/profiles/default", json={"pre_record_s": 10 + n}, headers=ADMIN).raise_for_status()
    seen, cursor = [], None
    while True:
        page = history(client, "BWV-B001", limit=2, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= 2
        seen += [v["settings"]["pre_record_s"] for v in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert seen == [14, 13, 12, 11, 10, 30]
    after = history(client, "BWV-B001", limit=5)["next_cursor"]
    older = client.get("/devices/BWV-B001", headers=ADMIN, params={"settings_after": after}).text
    assert "pre_record_s = 30 from: built-in" in older and "pre_record_s = 14" not in older.split("settings-history")[1]


@pytest.mark.parametrize(
    ("params", "status"),
    [({"limit": 0}, 400), ({"limit": 201}, 400), ({"cursor": "bm90IGEgbnVtYmVy"}, 400), ({"cursor": "a/b"}, 400)],
)
def test_a_page_out_of_shape_is_a_clear_400(client, params, status):
    answer = client.get("/api/v1/devices/BWV-C001/settings", headers=ADMIN, params=params)
    assert answer.status_code == status and answer.json()["message"], answer.text


def test_a_borough_user_reads_only_its_own_boroughs_cameras_history_and_stations_none(client):
    users = services(client.app).users
    users.add("s.camden", "supervisor", "test", borough="Camden")
    token = {"Authorization": f"Bearer {users.create_token('s.camden', 'history', 'test').token}"}
    assert client.get("/api/v1/devices/BWV-C001/settings", headers=token).status_code == 200
    assert client.get("/api/v1/devices/BWV-B001/settings", headers=token).status_code == 403
    assert client.get("/devices/BWV-B001", headers=token).status_code == 403
    for station in (CAMDEN, BARNET):  # a station has no business with a camera's history
        assert client.get("/api/v1/devices/BWV-C001/settings", headers=station).status_code == 403
    assert client.get("/api/v1/devices/BWV-NONE/settings", headers=ADMIN).status_code == 404


def test_a_hostile_reason_becomes_one_printable_line_of_its_cause_and_is_escaped_on_the_page(client):
    client.put("/api/v1/profiles/role:armed", json={"mount": "head"}, headers=ADMIN).raise_for_status()
    client.post("/api/v1/officers/", headers=ADMIN, json=[{"officer_id": "PC9", "borough": "Camden", "role": "armed"}])
    camera = {"serial": "BWV-P1", "model": "Axon Body 2", "borough": "Camden", "assignment_mode": "personal"}
    client.post("/api/v1/devices/", headers=ADMIN, json=[camera]).raise_for_status()
    issued = client.post("/api/v1/assignments", headers=ADMIN, json={"device_serial": "BWV-P1", "officer_id": "PC9"})
    assert issued.status_code == 201, issued.text
    reason = "done\nfleet: forged line\x1b[2J\u202e<script>alert(1)</script>"
    ended = client.post("/api/v1/assignments/BWV-P1/end", headers=ADMIN, json={"reason": reason})
    assert ended.status_code == 200, ended.text
    cause = history(client, "BWV-P1")["items"][0]["cause"]
    assert cause.isprintable() and "\\n" in cause and "\\u202e" in cause and cause.startswith("issue to PC9 ended")
    page = client.get("/devices/BWV-P1", headers=ADMIN).text
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page


def test_a_camera_registered_without_model_or_borough_takes_them_from_its_first_docking_as_a_version(client):
    """Its first docking gives it the station's borough and its own model: its profile changes."""
    client.put("/api/v1/profiles/borough:Camden", json={"mount": "head"}, headers=ADMIN).raise_for_status()
    client.put("/api/v1/profiles/model:Axon Body 2", json={"frame_rate": 50}, headers=ADMIN).raise_for_status()
    client.post("/api/v1/devices/", headers=ADMIN, json=[{"serial": "BWV-N1"}]).raise_for_status()
    send(client, "camden", [docked("BWV-N1", 2)])
    effective = client.get("/api/v1/devices/BWV-N1/profile", headers=ADMIN).json()["settings"]
    assert effective["mount"] == "head" and effective["frame_rate"] == 50
    newest = history(client, "BWV-N1")["items"][0]
    assert newest["settings"] == effective and newest["cause"] == "first docking"
