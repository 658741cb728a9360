"""The case pages: a supervisor exports a case's package and makes share links from the dashboard."""

import os

from central.core.providers import services
from fleet import bundle
from tests.central.conftest import ADMIN
from tests.central.evidence.test_clips import upload
from tests.central.web.test_dashboard import PASSWORD, browser, csrf_of, log_in  # noqa: F401 (fixture)


def test_a_supervisor_exports_the_package_and_shares_the_case_from_its_page(browser, tmp_path):  # noqa: F811
    services(browser.app).users.add("s.uper", "supervisor", "test", password=PASSWORD)
    data = os.urandom(4000)
    clip_id = upload(browser, data)
    browser.post("/api/v1/holds", headers=ADMIN, json={"kind": "case", "case_ref": "OP-7", "reason": "op 7"})
    browser.post("/api/v1/cases/OP-7/clips", headers=ADMIN, json={"clip_ids": [clip_id], "reason": "op 7"})
    log_in(browser, "s.uper")
    assert "OP-7" in browser.get("/cases").text
    page = browser.get("/cases/OP-7")
    assert page.status_code == 200 and clip_id[:8] in page.text
    csrf = csrf_of(page.text)

    refused = browser.post("/cases/OP-7/disclosure", data={"prepared_for": "CPS", "reason": "r"})
    assert refused.status_code == 403  # no CSRF token: a page elsewhere cannot export footage
    exported = browser.post("/cases/OP-7/disclosure", data={"prepared_for": "CPS", "reason": "r", "csrf_token": csrf})
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
    (tmp_path / "p.zip").write_bytes(exported.content)
    keys = [k["public_key"] for k in browser.get("/api/v1/disclosure/keys").json()]
    assert bundle.verify(tmp_path / "p.zip", keys).ok

    missing = browser.post("/cases/OP-7/disclosure", data={"prepared_for": "", "reason": "r", "csrf_token": csrf})
    assert missing.status_code == 400 and "who the package is for" in missing.text

    made = browser.post("/cases/OP-7/shares", data={"recipient": "IOPC", "days": "7", "csrf_token": csrf})
    assert made.status_code == 201 and "/shared/" in made.text
    assert (
        browser.post("/cases/OP-7/shares", data={"recipient": "IOPC", "days": "400", "csrf_token": csrf}).status_code
        == 400
    )
    withdrawn = browser.post("/cases/OP-7/shares/1/withdraw", data={"csrf_token": csrf}, follow_redirects=False)
    assert withdrawn.status_code == 303 and withdrawn.headers["location"] == "/cases/OP-7?done=withdrawn"
    assert "withdrawn" in browser.get("/cases/OP-7").text
    assert browser.get("/cases/OP-8").status_code == 404
