import hashlib
import os
import re
import uuid
from datetime import timedelta

import pytest

from central.core.providers import services
from central.core.ranges import parse_range
from central.evidence.retention_rules import Category, RetentionRules
from fleet.errors import RangeNotSatisfiable
from fleet.protocol import UploadMetadata, encode_upload_metadata
from tests.central.conftest import ADMIN, BARNET, CAMDEN, TUS, patch
from tests.station.conftest import RECORDED


def upload(client, data: bytes, headers=CAMDEN, hours=0, serial="BWV-000123", evidential=False, finish=True, **extra):
    meta = UploadMetadata(
        clip_id=uuid.uuid4(),
        sha256=hashlib.sha256(data).hexdigest(),
        device_serial=serial,
        recorded_at=RECORDED + timedelta(hours=hours),
        filename="c.mp4",
        evidential=evidential,
        tags=["stop_and_search"] if evidential else [],
        **extra,
    )
    r = client.post(
        "/api/v1/uploads/",
        headers={**headers, **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": encode_upload_metadata(meta)},
    )
    if finish:
        patch(client, r.headers["Location"], 0, data, headers=headers)
    return str(meta.clip_id)


def test_the_pre_record_buffer_is_kept_with_the_clip_and_said_on_its_page(client):
    from tests.central.web.test_dashboard import log_in

    buffered = upload(client, os.urandom(500), duration_s=95, pre_record_s=30)
    plain = upload(client, os.urandom(500), duration_s=40)
    assert client.get(f"/api/v1/clips/{buffered}", headers=ADMIN).json()["pre_record_s"] == 30
    assert client.get(f"/api/v1/clips/{plain}", headers=ADMIN).json()["pre_record_s"] == 0
    services(client.app).users.add("s.uper", "supervisor", "test", password="correct horse battery")
    client.base_url = "https://central.test"  # session cookies are Secure
    log_in(client, "s.uper")
    page = client.get(f"/clips/{buffered}").text
    length = re.search(r'<dd id="length">(.*?)</dd>', page, re.S)
    assert length and length[1].startswith("95 s, of which the first 30 s are the camera's pre-record buffer")
    assert "pre-record" not in client.get(f"/clips/{plain}").text


def test_one_clip_has_the_contract_fields(client):
    data = os.urandom(5000)
    clip_id = upload(client, data, evidential=True)
    body = client.get(f"/api/v1/clips/{clip_id}", headers=ADMIN).json()
    assert body["clip_id"] == clip_id and body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["size"] == 5000 and body["state"] == "verified" and body["station_id"] == "camden"
    assert body["device_serial"] == "BWV-000123" and body["recorded_at"].startswith("2026-11-20T14:00:00")
    assert body["evidential"] is True and body["tags"] == ["stop_and_search"]


def test_a_clip_being_received_is_listed_as_receiving(client):
    clip_id = upload(client, os.urandom(100), finish=False)
    assert client.get(f"/api/v1/clips/{clip_id}", headers=ADMIN).json()["state"] == "receiving"
    assert client.get(f"/api/v1/clips/{clip_id}/content", headers=ADMIN).status_code == 404


def test_list_paginates_with_a_cursor_and_filters(client):
    ids = [
        upload(client, os.urandom(100), headers=CAMDEN if i % 2 else BARNET, hours=i, serial=f"BWV-00000{i % 3}")
        for i in range(7)
    ]
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/clips", params=params, headers=ADMIN).json()
        seen += [c["clip_id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids  # recording order, each once
    camden = client.get("/api/v1/clips", params={"station_id": "camden"}, headers=ADMIN).json()["items"]
    assert [c["clip_id"] for c in camden] == ids[1::2]
    window = client.get(
        "/api/v1/clips",
        headers=ADMIN,
        params={
            "recorded_from": (RECORDED + timedelta(hours=2)).isoformat(),
            "recorded_to": (RECORDED + timedelta(hours=4)).isoformat(),
        },
    ).json()["items"]
    assert [c["clip_id"] for c in window] == ids[2:4]
    device = client.get("/api/v1/clips", params={"device_serial": "BWV-000001"}, headers=ADMIN).json()["items"]
    assert [c["clip_id"] for c in device] == [ids[1], ids[4]]
    assert client.get("/api/v1/clips", params={"state": "receiving"}, headers=ADMIN).json()["items"] == []


def test_bad_list_parameters_are_400(client):
    for params in (
        {"limit": 0},
        {"limit": 5000},
        {"cursor": "!!"},
        {"state": "lost"},
        {"recorded_from": "yesterday"},
        {"recorded_from": "2026-11-20T14:00:00"},
    ):
        r = client.get("/api/v1/clips", params=params, headers=ADMIN)
        assert r.status_code == 400, (params, r.text)


@pytest.mark.parametrize(
    "header",
    ["bytes=" + "9" * 20 + "-", "bytes=-" + "1" * 5000, "bytes=\u0661-", "bytes=0-1, 5-6", "items=0-1"],
)
def test_a_range_this_server_does_not_read_is_416_naming_the_size(header):
    with pytest.raises(RangeNotSatisfiable) as refused:
        parse_range(header, 3000)
    assert refused.value.headers == {"Content-Range": "bytes */3000"}


def test_a_range_of_19_digits_is_read_as_a_number():
    assert parse_range("bytes=0-" + "9" * 19, 3000) == (0, 3000)
    assert parse_range("bytes=-" + "9" * 19, 3000) == (0, 3000)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=" + "9" * 19 + "-", 3000)


def test_content_streams_with_ranges_and_is_logged(client, settings):
    data = os.urandom(3_000_000)
    clip_id = upload(client, data)
    whole = client.get(f"/api/v1/clips/{clip_id}/content", headers=ADMIN)
    assert whole.status_code == 200 and whole.content == data and whole.headers["Accept-Ranges"] == "bytes"
    part = client.get(f"/api/v1/clips/{clip_id}/content", headers={**ADMIN, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    tail = client.get(f"/api/v1/clips/{clip_id}/content", headers={**ADMIN, "Range": "bytes=-10"})
    assert tail.content == data[-10:]
    for bad_range in (f"bytes={len(data)}-", "bytes=" + "9" * 5000 + "-"):
        bad = client.get(f"/api/v1/clips/{clip_id}/content", headers={**ADMIN, "Range": bad_range})
        assert bad.status_code == 416 and bad.headers["Content-Range"] == f"bytes */{len(data)}"
    from central.core.store import CentralStore
    from central.evidence.clip_records import ClipRecords

    store = CentralStore.open(settings)
    log = ClipRecords(store.writer).access_log()
    store.close()
    assert [(row[1], row[2], row[3]) for row in log] == [("admin", "download", clip_id)] * 3


def test_unknown_clip_is_404(client):
    assert client.get(f"/api/v1/clips/{uuid.uuid4()}", headers=ADMIN).status_code == 404


def test_a_missing_blob_is_a_clear_404_not_a_crash(client, settings):
    from pathlib import Path

    clip_id = upload(client, os.urandom(1000))
    for blob in (Path(settings.data_dir) / "blobs").rglob("*"):
        if blob.is_file():
            blob.unlink()
    r = client.get(f"/api/v1/clips/{clip_id}/content", headers=ADMIN)
    assert r.status_code == 404 and "missing from the blob store" in r.json()["message"]


def test_a_clip_is_assessed_for_retention_when_it_is_verified(client):
    """'Kept until' is known from the first minute, under the rules in force when the clip lands."""
    plain = upload(client, os.urandom(700))
    evidential = upload(client, os.urandom(700), hours=1, evidential=True)
    first = client.get(f"/api/v1/clips/{plain}/retention", headers=ADMIN).json()
    assert first["categories"] == [] and first["retain_until"].startswith("2026-12-21T14:00:00")
    kept = client.get(f"/api/v1/clips/{evidential}/retention", headers=ADMIN).json()
    assert kept["categories"] == ["evidential"] and kept["review"] is True
    assert kept["retain_until"].startswith("2032-11-20T15:00:00")
    retention = services(client.app).retention
    longer = RetentionRules(default_days=60, categories={"evidential": Category(years=6, review=True)})
    assert retention.apply_rules(longer, "test").applied
    later = upload(client, os.urandom(700), hours=2)
    assert (
        client.get(f"/api/v1/clips/{later}/retention", headers=ADMIN)
        .json()["retain_until"]
        .startswith("2027-01-19T16:00:00")
    )
    assert retention.run().assessed == 0  # nothing was left for the job


def test_a_clip_verified_before_any_rules_waits_for_the_job_and_no_badge_says_kept(client):
    """The job stays the safety net; until it has run, the pages say the clip is not assessed."""
    from tests.central.web.test_dashboard import log_in

    retention = services(client.app).retention
    with retention.writer.write() as db:
        db.execute("DELETE FROM retention_rules")
    clip_id = upload(client, os.urandom(700))
    assert client.get(f"/api/v1/clips/{clip_id}/retention", headers=ADMIN).json()["retain_until"] is None
    services(client.app).users.add("s.uper", "supervisor", "test", password="correct horse battery")
    client.base_url = "https://central.test"  # session cookies are Secure
    log_in(client, "s.uper")
    for page in (client.get(f"/clips/{clip_id}").text, client.get("/clips").text):
        assert "not assessed" in page and 'class="tag ok">kept' not in page
    assert retention.run().assessed == 1
    assert (
        client.get(f"/api/v1/clips/{clip_id}/retention", headers=ADMIN).json()["retain_until"].startswith("2026-12-21")
    )
    assert 'class="tag ok">kept' in client.get(f"/clips/{clip_id}").text
