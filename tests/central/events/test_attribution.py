"""A clip belongs to whoever held the camera at recorded_at, however late the events arrive."""

from central.core.providers import services
from central.evidence import holds
from central.evidence.keep_request_form import NewRequest
from fleet.clock import to_iso
from tests.central.conftest import ADMIN, BARNET, CAMDEN, KENTISH
from tests.central.fleetdata import at, back, batch, docked, ingested, out, post


def owner(client, clip_id):
    return client.get(f"/api/v1/clips/{clip_id}/attribution", headers=ADMIN).json()["officer_id"]


def test_attribution_across_reassignments(client):
    clips = {h: ingested("A", h) for h in (1.5, 3.5, 5.5, 7.5)}
    post(
        client,
        CAMDEN,
        [docked("A"), out("A", "PC1"), back("A", "PC1"), out("A", "PC2"), docked("A", 7, clips=4), *clips.values()],
        hours=[0, 1, 3, 5, 7, 7, 7, 7, 7],
    )
    assert [owner(client, c.clip_id) for c in clips.values()] == ["PC1", None, "PC2", None]
    unattributed = client.get("/api/v1/unattributed", headers=ADMIN).json()
    assert {u["clip_id"] for u in unattributed} == {clips[3.5].clip_id, clips[7.5].clip_id}


def test_a_checkout_that_arrives_late_reattributes_clips(client):
    """Station B uploads the clip first; station A (offline) reports the checkout afterwards."""
    clip = ingested("A", 2)
    post(client, KENTISH, [docked("A", 6, clips=1), clip], hours=[6, 6])
    assert owner(client, clip.clip_id) is None
    post(client, CAMDEN, [out("A", "PC7")], hours=[1])
    assert owner(client, clip.clip_id) == "PC7"


def test_a_supervisor_attributes_by_hand_and_it_sticks(client):
    client.post("/api/v1/officers/", headers=ADMIN, json=[{"officer_id": "PC9", "borough": "Camden"}])
    clip = ingested("A", 2)
    post(client, CAMDEN, [docked("A", 3, clips=1), clip], hours=[3, 3])
    r = client.post(
        f"/api/v1/clips/{clip.clip_id}/attribution",
        headers=ADMIN,
        json={"officer_id": "PC9", "reason": "officer confirmed on the incident log"},
    )
    assert r.status_code == 200 and r.json()["resolved_by"] == "admin"
    post(client, KENTISH, [docked("A", 0.5), out("A", "PC1")], hours=[0.5, 1])  # a late checkout covering the clip
    assert owner(client, clip.clip_id) == "PC9"
    assert (
        client.post(
            f"/api/v1/clips/{clip.clip_id}/attribution", headers=ADMIN, json={"officer_id": "NOBODY", "reason": "x"}
        ).status_code
        == 404
    )


def test_a_verified_clip_no_station_reported_is_attributed_by_hand_and_a_report_after_takes_its_row(client):
    """A clip uploaded with no station's report (a person's upload, reports refused) had no attribution
    row: in no supervisor's queue, and its attribution by hand was a 404. It is made by hand now,
    naming no station; the station's report applied after takes the row, keeping the officer."""
    from tests.central.evidence.test_clips import upload

    client.post("/api/v1/officers/", headers=ADMIN, json=[{"officer_id": "PC9", "borough": "Camden"}])
    data = b"footage" * 100
    clip_id = upload(client, data)  # verified; Camden's report of it not yet applied
    assert client.get(f"/api/v1/clips/{clip_id}/attribution", headers=ADMIN).status_code == 404
    r = client.post(
        f"/api/v1/clips/{clip_id}/attribution", headers=ADMIN, json={"officer_id": "PC9", "reason": "duty log"}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["officer_id"], r.json()["station_id"], r.json()["resolved_by"]) == ("PC9", None, "admin")
    post(client, CAMDEN, [docked("BWV-000123", 1, clips=1), ingested("BWV-000123", 0, clip_id=clip_id, data=data)])
    taken = client.get(f"/api/v1/clips/{clip_id}/attribution", headers=ADMIN).json()
    assert (taken["officer_id"], taken["station_id"]) == ("PC9", "camden")
    custody = [c["action"] for c in client.get(f"/api/v1/clips/{clip_id}/custody", headers=ADMIN).json()]
    assert "ingest" in custody and "attribute" in custody
    missing = client.post(
        "/api/v1/clips/7d0e5a3c-0000-4000-8000-000000000000/attribution",
        headers=ADMIN,
        json={"officer_id": "PC9", "reason": "x"},
    )
    assert missing.status_code == 404 and "reported by a station or verified at central" in missing.text


def test_another_boroughs_supervisor_cannot_attribute_a_clip_no_station_reported(client):
    """The clip's borough is its camera's, row or no row: Barnet's supervisor may not make Camden's."""
    from tests.central.evidence.test_clips import upload

    users = services(client.app).users
    users.add("s.barnet", "supervisor", "test", borough="Barnet", password=None)
    barnet = {"Authorization": f"Bearer {users.create_token('s.barnet', 'test', 'test').token}"}
    client.post("/api/v1/devices/", headers=ADMIN, json=[{"serial": "BWV-000123", "borough": "Camden"}])
    client.post("/api/v1/officers/", headers=ADMIN, json=[{"officer_id": "PB1", "borough": "Barnet"}])
    clip_id = upload(client, b"camden footage" * 50)
    r = client.post(f"/api/v1/clips/{clip_id}/attribution", headers=barnet, json={"officer_id": "PB1", "reason": "x"})
    assert r.status_code in (403, 404), r.text
    assert client.get(f"/api/v1/clips/{clip_id}/attribution", headers=ADMIN).status_code == 404  # nothing made


def test_a_late_checkin_moves_back_the_end_a_later_docking_gave_the_checkout(client):
    """Station A (offline) checked the camera out at 1 h and in by hand at 3 h; it docked at B at 8 h,
    and B's events are applied first."""
    during, after = ingested("A", 2), ingested("A", 5)
    post(client, KENTISH, [docked("A", 8, clips=2), during, after], hours=[8, 8, 8])
    post(client, CAMDEN, [docked("A"), out("A", "PC1"), back("A", "PC1")], hours=[0, 1, 3])
    [a] = client.get("/api/v1/assignments", params={"device_serial": "A"}, headers=ADMIN).json()
    assert a["ended_at"].startswith(at(3).isoformat()[:16]) and a["end_reason"] == "manual"
    assert (owner(client, during.clip_id), owner(client, after.clip_id)) == ("PC1", None)
    trail = client.get("/api/v1/devices/A", headers=ADMIN).json()["audit"]
    assert [(t["action"], t["place"]) for t in trail][:2] == [("check-in", "camden"), ("check-out", "camden")]


def _holds_in_feed(client, borough="Camden"):
    return [
        (c.item.clip_id, c.item.held)
        for c in services(client.app).changes.page(borough, 0).changes
        if c.item.__struct_config__.tag == "clip_hold"
    ]


def _hold_pc1(client) -> None:
    """A complaint's officer hold on PC1 (of Camden), from 0 h to 4 h."""
    client.post("/api/v1/officers/", headers=ADMIN, json=[{"officer_id": "PC1", "borough": "Camden"}])
    placed = client.post(
        "/api/v1/holds",
        headers=ADMIN,
        json={
            "kind": "officer",
            "officer_id": "PC1",
            "window_from": at(0).isoformat(),
            "window_to": at(4).isoformat(),
            "reason": "complaint",
        },
    )
    assert placed.status_code == 201, placed.text


def test_a_clip_that_reaches_central_after_an_officer_hold_is_held_at_its_station_too(client):
    """The complaint came first; the officer's camera docked afterwards."""
    _hold_pc1(client)
    inside, outside = ingested("A", 2), ingested("A", 6)
    post(
        client, CAMDEN, [docked("A"), out("A", "PC1"), docked("A", 8, clips=2), inside, outside], hours=[0, 1, 8, 8, 8]
    )
    assert owner(client, inside.clip_id) == "PC1"
    assert _holds_in_feed(client) == [(inside.clip_id, True)]


def test_clips_held_on_arrival_are_all_announced_however_many_lookups_they_take(client, monkeypatch):
    monkeypatch.setattr(holds, "HOLDS_CHUNK", 2)  # five clips: three lookups
    _hold_pc1(client)
    inside = [ingested("A", h) for h in (1.5, 2, 2.5, 3, 3.5)]
    post(client, CAMDEN, [docked("A"), out("A", "PC1"), docked("A", 8, clips=6), *inside, ingested("A", 6)])
    assert sorted(_holds_in_feed(client)) == sorted((c.clip_id, True) for c in inside)


def test_a_late_checkout_that_moves_a_clip_out_of_an_officer_hold_tells_the_station(client):
    _hold_pc1(client)
    clip = ingested("A", 2)
    post(client, CAMDEN, [docked("A", 3, clips=1), clip], hours=[3, 3])
    assert owner(client, clip.clip_id) is None and _holds_in_feed(client) == [(clip.clip_id, True)]  # maybe PC1's
    post(client, KENTISH, [docked("A", 0.5), out("A", "PC7")], hours=[0.5, 1])  # reported late: it was PC7's
    assert owner(client, clip.clip_id) == "PC7"
    assert _holds_in_feed(client) == [(clip.clip_id, True), (clip.clip_id, False)]


def test_a_clip_moved_out_of_a_hold_in_the_transaction_that_brought_it_is_not_held_at_its_station(
    applied_by_the_test,
):
    """Its ingest and the late checkout that makes it PC7's are applied together: the station's last
    word about the clip is that nothing holds it (new clips' holds are looked up at the end)."""
    client = applied_by_the_test
    _hold_pc1(client)
    clip = ingested("A", 2)
    for headers, events, hours in (
        (CAMDEN, [docked("A", 3, clips=1), clip], [3.0, 3.0]),
        (KENTISH, [docked("A", 0.5), out("A", "PC7")], [0.5, 1.0]),
    ):
        sent = client.post(
            "/api/v1/events/",
            content=batch(events, 1, hours=hours),
            headers={**headers, "Content-Type": "application/json"},
        )
        assert sent.status_code == 200
    assert services(client.app).events.apply_pending() == 4  # one transaction
    assert owner(client, clip.clip_id) == "PC7"
    assert [held for clip_id, held in _holds_in_feed(client) if clip_id == clip.clip_id][-1:] in ([], [False])


def _send(client, headers, events, first_seq: int, hours: list[float]) -> None:
    sent = client.post(
        "/api/v1/events/",
        content=batch(events, first_seq, hours=hours),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert sent.status_code == 200


def test_a_clip_moved_into_a_hold_in_the_transaction_that_brought_it_is_held_at_its_station(applied_by_the_test):
    """PC7's when it arrives, PC1's (held) by a late check-in and checkout applied with it: the
    station's last word about the clip is that it is held."""
    client = applied_by_the_test
    _hold_pc1(client)
    _send(client, KENTISH, [docked("A", 0.5), out("A", "PC7")], 1, [0.5, 1.0])
    assert services(client.app).events.apply_pending() == 2
    clip = ingested("A", 2)
    _send(client, CAMDEN, [docked("A", 3, clips=1), clip], 1, [3.0, 3.0])
    _send(client, KENTISH, [back("A", "PC7"), out("A", "PC1")], 3, [1.2, 1.5])
    assert services(client.app).events.apply_pending() == 4  # one transaction
    assert owner(client, clip.clip_id) == "PC1"
    assert [held for clip_id, held in _holds_in_feed(client) if clip_id == clip.clip_id][-1:] == [True]


def test_a_held_clip_new_to_central_is_announced_once_when_its_transaction_is_applied_again_in_parts(
    applied_by_the_test, monkeypatch
):
    """The announcement at the end of the transaction fails once: the stations' events are applied again
    station by station, and the clip is announced once, by its own station's part."""
    client = applied_by_the_test
    _hold_pc1(client)
    announce = holds.announce_holds
    failed: list[int] = []

    def fails_once(db, changes, clip_ids, *, held_only=False):
        if held_only and clip_ids and not failed:
            failed.append(len(clip_ids))
            raise RuntimeError("the feed failed")
        announce(db, changes, clip_ids, held_only=held_only)

    monkeypatch.setattr(holds, "announce_holds", fails_once)
    clip = ingested("A", 2)
    _send(client, CAMDEN, [docked("A", 0.5), out("A", "PC1"), docked("A", 3, clips=1), clip], 1, [0.5, 1, 3, 3])
    _send(client, KENTISH, [docked("K", 6, clips=1), ingested("K", 5)], 1, [6.0, 6.0])  # in no hold
    assert services(client.app).events.apply_pending() == 6  # one transaction, applied again in parts
    assert failed == [2]
    assert owner(client, clip.clip_id) == "PC1"
    assert _holds_in_feed(client) == [(clip.clip_id, True)]


def test_clips_a_keep_request_covers_are_announced_held_when_they_arrive_with_others_in_one_transaction(
    applied_by_the_test, monkeypatch
):
    """An open public request in Camden before the clips came: those recorded in its window, of two
    stations of the borough in one transaction, more than a lookup takes, are held at their
    station; Barnet's in the same window and Camden's outside it are not."""
    client = applied_by_the_test
    monkeypatch.setattr(holds, "HOLDS_CHUNK", 2)
    services(client.app).keep_requests.submit(
        NewRequest(
            borough="Camden",
            place="outside 12 High Street",
            happened_from=at(2),
            happened_to=at(2.5),
            contact="someone@example.org",
        ),
        "browser:p1",
    )
    with services(client.app).store.writer.read() as db:
        hold_from, hold_to = db.execute("SELECT hold_from, hold_to FROM keep_requests").fetchone()
    hours = [0.25 * i for i in range(1, 24)]  # 0.25 h to 5.75 h
    camden = [ingested("A", h) for h in hours[::2]]
    kentish = [ingested("K", h) for h in hours[1::2]]
    barnet = [ingested("B", h) for h in hours]
    _send(client, CAMDEN, [docked("A", 6, clips=len(camden)), *camden], 1, [6.0] * (len(camden) + 1))
    _send(client, KENTISH, [docked("K", 6, clips=len(kentish)), *kentish], 1, [6.0] * (len(kentish) + 1))
    _send(client, BARNET, [docked("B", 6, clips=len(barnet)), *barnet], 1, [6.0] * (len(barnet) + 1))
    assert services(client.app).events.apply_pending() == len(camden) + len(kentish) + len(barnet) + 3
    inside = [c.clip_id for c in camden + kentish if hold_from <= to_iso(c.recorded_at) < hold_to]
    assert 2 < len(inside) < len(camden + kentish)
    assert sorted(_holds_in_feed(client)) == sorted((clip_id, True) for clip_id in inside)
    assert _holds_in_feed(client, "Barnet") == []


def test_a_checkout_past_the_battery_gate_is_audited_with_the_supervisors_reason(client):
    from fleet.events import CheckedOut

    past_gate = CheckedOut(device_serial="A", officer_id="PC1", battery_pct=95, by="sgt", override="last camera left")
    post(client, CAMDEN, [docked("A"), past_gate], hours=[0, 1])
    trail = client.get("/api/v1/devices/A", headers=ADMIN).json()["audit"]
    [checkout] = [t for t in trail if t["action"] == "check-out"]
    assert checkout["detail"].endswith("; handed out past the battery gate: last camera left")
    assert checkout["actor"] == "sgt@camden"
