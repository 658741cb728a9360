"""Every step of a clip's life is in the audit chain, and its chain of custody can be printed."""

import os

from central.core.providers import services
from tests.central.conftest import ADMIN, CAMDEN
from tests.central.evidence.test_clips import upload
from tests.central.fleetdata import ingested, post


def test_dock_to_central_to_every_access_is_in_the_custody_report(client):
    data = os.urandom(2000)
    clip_id = upload(client, data)
    post(client, CAMDEN, [ingested("BWV-000123", 0, clip_id=clip_id, data=data)])
    assert client.get(f"/api/v1/clips/{clip_id}", headers=ADMIN).status_code == 200
    assert client.get(f"/api/v1/clips/{clip_id}/content", headers=ADMIN).content == data
    hold = client.post(
        "/api/v1/holds", json={"kind": "clip", "clip_id": clip_id, "reason": "complaint 42"}, headers=ADMIN
    )
    assert hold.status_code == 201, hold.text
    records = client.get(f"/api/v1/clips/{clip_id}/custody", headers=ADMIN).json()
    assert [(r["action"], r["place"]) for r in records] == [
        ("upload-verified", "central"),
        ("ingest", "camden"),
        ("view", "central"),
        ("download", "central"),
        ("hold", "central"),
    ]
    assert "sha256" in records[1]["detail"] and records[4]["actor"] == "admin"
    csv = client.get(f"/api/v1/clips/{clip_id}/custody.csv", headers=ADMIN)
    assert csv.text.splitlines()[0].startswith("at,actor,place,action,object_type,object_id,detail,id")
    assert len(csv.text.splitlines()) == 6
    page = client.get(f"/api/v1/clips/{clip_id}/custody.html", headers=ADMIN)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "hash chain intact" in page.text and "complaint 42" in page.text and clip_id in page.text
    assert client.get(f"/api/v1/clips/{clip_id}/custody", headers=CAMDEN).status_code == 403
    assert client.get("/api/v1/clips/nope/custody", headers=ADMIN).status_code == 404


def test_html_in_audit_details_is_escaped(client):
    clip_id = upload(client, os.urandom(100))
    client.post(
        "/api/v1/holds", json={"kind": "clip", "clip_id": clip_id, "reason": "<script>alert(1)</script>"}, headers=ADMIN
    )
    page = client.get(f"/api/v1/clips/{clip_id}/custody.html", headers=ADMIN).text
    assert "<script>alert" not in page and "&lt;script&gt;" in page


def test_a_deleted_clip_cannot_be_downloaded(client):
    clip_id = upload(client, os.urandom(100))
    store = services(client.app).store
    with store.writer.write() as db:
        db.execute("UPDATE clip_retention SET deleted_at = '2026-11-01T00:00:00.000000Z' WHERE clip_id = ?", [clip_id])
    response = client.get(f"/api/v1/clips/{clip_id}/content", headers=ADMIN)
    assert response.status_code == 410 and "can restore it" in response.json()["message"]


def test_the_page_of_a_clip_its_station_reported_but_not_yet_uploaded(client):
    from tests.central.conftest import CAMDEN
    from tests.central.fleetdata import docked, ingested, post

    clip = ingested("BWV-77", 2)
    post(client, CAMDEN, [docked("BWV-77", 3, clips=1), clip], hours=[3, 3])
    page = client.get(f"/api/v1/clips/{clip.clip_id}/custody.html", headers=ADMIN)
    assert page.status_code == 200
    assert "BWV-77" in page.text and "camden" in page.text and "not yet" in page.text
    # The station's word alone is no link in the chain: its ingest record waits for the verified upload.
    assert "copied from camera BWV-77 at the dock" not in page.text
