"""The Deployments pages (a deployment's phases, progress and failures; decisions posted as forms)
and a camera's firmware and deployments on its page."""

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central.core.providers import services
from tests.central.apps import central_client
from tests.central.firmware.conftest import firmware_settings
from tests.central.firmware.test_deployments import Central, cameras, create, fleet, release, results, send
from tests.central.fleetdata import docked
from tests.central.web.test_dashboard import PASSWORD, csrf_of, log_in


class Serving(Central):
    deployment: int
    canary: list[str]
    """The canary's cameras: the first updated, the second failed, the third not heard of yet."""


@pytest.fixture
def central(tmp_path, vendor):
    """30 cameras on 1.4.2, a deployment of 1.5.0 whose canary (3 cameras) had one failure; a fleet
    manager and a viewer."""
    settings = firmware_settings(tmp_path / "central", vendor)
    options = {"base_url": "https://central.test", "raise_server_exceptions": False}
    with central_client(settings, Serving, **options) as c:
        c.vendor, c.seq = vendor, {"camden": 0, "barnet": 0}
        fleet(c)
        s = services(c.app)
        s.users.add("f.leet", "fleet_manager", "test", password=PASSWORD)
        s.users.add("v.iewer", "viewer", "test", password=PASSWORD)
        d = create(c, release_id=release(c), phases=[{"share_pct": 10}, {"share_pct": 100}])
        canary = sorted(cameras(c, d["id"], state="offered"))
        results(c, d["id"], {canary[0]: True, canary[1]: False})
        c.deployment, c.canary = d["id"], canary
        yield c


def test_the_deployments_page_lists_each_with_its_state_phase_and_figures(central):
    log_in(central, "f.leet")
    page = central.get("/deployments")
    assert page.status_code == 200
    row = re.search(r'<a href="/deployments/1">1</a>.*?</tr>', page.text, re.S).group(0)
    assert "Axon Body 2 1.5.0" in row and "running</span>" in row and "1 of 2" in row
    cells = re.findall(r'<td class="num">([\d,]+)</td>', row)
    assert cells == ["30", "1", "1", "29"]  # cameras, updated, failed, outstanding
    assert "by admin" in row
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', page.text, re.S).group(1)
    assert 'href="/deployments"' in nav
    assert "No deployment paused" in central.get("/deployments?state=paused").text
    assert central.get("/deployments?state=sideways").status_code == 400


def test_a_deployments_page_shows_each_phase_its_bar_and_its_failures_with_the_cameras_error(central):
    log_in(central, "f.leet")
    text = central.get(f"/deployments/{central.deployment}").text
    phases = re.search(r'<table class="phases">.*?</table>', text, re.S).group(0)
    first = re.search(r"<th scope=\"row\">1: 10 %</th>.*?</tr>", phases, re.S).group(0)
    assert re.findall(r'<td class="num">([\d,]+)</td>', first) == ["3", "1", "1", "0", "0", "2"]
    # The bar: an SVG whose parts are attributes (no inline style under the CSP), a third updated.
    bar = re.search(r'<svg class="progress".*?</svg>', first, re.S).group(0)
    assert 'aria-label="1 updated, 2 outstanding"' in bar and 'class="updated" x="0.0" y="0" width="33.333"' in bar
    assert "style=" not in text and "<script" not in text
    failures = re.search(r'<table class="cameras">.*?</table>', text, re.S).group(0)
    assert central.canary[1] in failures and "flash verify failed" in failures and central.canary[0] not in failures
    updated = central.get(f"/deployments/{central.deployment}?state=updated").text
    assert central.canary[0] in re.search(r'<table class="cameras">.*?</table>', updated, re.S).group(0)
    assert central.get("/deployments/99").status_code == 404


def test_a_fleet_manager_pauses_resumes_and_aborts_from_the_page_with_a_reason(central):
    log_in(central, "f.leet")
    url = f"/deployments/{central.deployment}"
    page = central.get(url).text
    token = csrf_of(page)
    assert f'action="{url}/pause"' in page and f'action="{url}/resume"' not in page
    assert central.post(f"{url}/pause", data={"reason": "x", "csrf_token": "forged"}).status_code == 403
    refused = central.post(f"{url}/pause", data={"reason": "  ", "csrf_token": token})
    assert refused.status_code == 400 and "say why" in refused.text
    paused = central.post(f"{url}/pause", data={"reason": "one failed\nlook first", "csrf_token": token})
    assert paused.status_code == 200 and "deployment paused" in paused.text
    assert services(central.app).deployments.deployment(central.deployment).decision == "paused: one failed look first"
    assert central.post(f"{url}/pause", data={"reason": "again", "csrf_token": token}).status_code == 409
    page = central.get(url).text
    assert f'action="{url}/resume"' in page and f'action="{url}/rollback"' in page
    central.post(f"{url}/resume", data={"reason": "a bad dock, not the build", "csrf_token": token})
    central.post(f"{url}/abort", data={"reason": "wrong build", "csrf_token": token})
    d = services(central.app).deployments.deployment(central.deployment)
    assert d.state == "aborted" and d.decided_by == "f.leet"
    with services(central.app).store.writer.read() as db:
        actions = db.execute(
            "SELECT action, actor, detail FROM audit WHERE object_type = 'deployment' AND actor = 'f.leet' ORDER BY id"
        ).fetchall()
    assert [tuple(a) for a in actions] == [
        ("deployment-pause", "f.leet", "one failed look first"),
        ("deployment-resume", "f.leet", "a bad dock, not the build"),
        ("deployment-abort", "f.leet", "wrong build"),
    ]
    assert central.post(f"{url}/explode", data={"reason": "x", "csrf_token": token}).status_code == 400


def test_viewers_see_no_deployments_but_a_cameras_firmware(central):
    log_in(central, "v.iewer")
    assert central.get("/deployments").status_code == 403
    assert central.get(f"/deployments/{central.deployment}").status_code == 403
    device = central.get(f"/devices/{central.canary[1]}").text
    assert 'class="camera-deployments"' not in device and 'class="firmware-history"' in device


def test_a_cameras_page_shows_its_firmware_over_time_and_the_deployments_that_targeted_it(central):
    serial = central.canary[0]
    send(central, "camden" if serial.startswith("BWV-C") else "barnet", [docked(serial, 5, firmware="1.5.0")])
    log_in(central, "f.leet")
    page = central.get(f"/devices/{serial}").text
    history = re.search(r'<table class="firmware-history">.*?</table>', page, re.S).group(0)
    assert re.findall(r'<th scope="row">([^<]+)</th>', history) == ["1.5.0", "1.4.2"]
    targeted = re.search(r'<table class="camera-deployments">.*?</table>', page, re.S).group(0)
    assert f'<a href="/deployments/{central.deployment}">' in targeted and "updated" in targeted
    assert "1.4.2 → 1.5.0" in targeted
    failed = central.get(f"/devices/{central.canary[1]}").text
    row = re.search(r'<table class="camera-deployments">.*?</table>', failed, re.S).group(0)
    assert "flash verify failed" in row and "failed <span" in row
    assert '<ul id="profile">' in page  # its explained settings, as before


@pytest.fixture
def vendor() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()  # a TEST key, made for this test alone
