"""The Firmware, Profiles and Models pages, and a camera's explained settings on its page."""

from __future__ import annotations

import html
import os
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central.core.providers import services
from central.registry.devices import DeviceRegistration
from fleet.firmware import public_key_hex
from fleet.profiles import CameraSettings
from tests.central.apps import central_client
from tests.central.conftest import make_settings
from tests.central.firmware.conftest import sign
from tests.central.web.test_dashboard import PASSWORD, log_in

MODEL = "Axon Body 2"


@pytest.fixture
def central(tmp_path):
    """A release of each of two versions (one withdrawn), two profiles, and a withdrawn model whose
    camera PC1 holds."""
    vendor = Ed25519PrivateKey.generate()  # a TEST key, made for this test alone
    settings = make_settings(
        tmp_path / "central",
        firmware={"release_keys": [public_key_hex(vendor.public_key())]},
        fleet={"assignment_modes": {"Camden": "personal"}},
    )
    with central_client(settings, base_url="https://central.test", raise_server_exceptions=False) as c:
        s = services(c.app)
        s.users.add("v.iewer", "viewer", "test", password=PASSWORD)
        s.users.add("f.leet", "fleet_manager", "test", password=PASSWORD)
        for version in ("1.0.0", "1.1.0"):
            data = os.urandom(3000)
            path = tmp_path / f"{version}.bin"
            path.write_bytes(data)
            s.releases.add(
                s.releases.stage_file(path),
                model=MODEL,
                version=version,
                signature=sign(vendor, data, version=version),
                actor="f.leet",
            )
        s.releases.withdraw(1, "bricks cameras on a cold dock", "f.leet")
        s.profiles.set("default", CameraSettings(pre_record_s=30), "f.leet")
        s.profiles.set("role:armed", CameraSettings(mount="head", pre_record_s=60), "f.leet")
        c.post(
            "/api/v1/officers/",
            json=[{"officer_id": "PC1", "borough": "Camden", "role": "armed"}],
            headers={"Authorization": "Bearer admin-test-token"},
        ).raise_for_status()
        s.devices.register(
            [
                DeviceRegistration(serial="BWV-1", model=MODEL, borough="Camden", assignment_mode="personal"),
                DeviceRegistration(serial="BWV-2", model="Axon Body 3"),
            ],
            "test",
        )
        c.post(
            "/api/v1/assignments",
            json={"device_serial": "BWV-1", "officer_id": "PC1"},
            headers={"Authorization": "Bearer admin-test-token"},
        ).raise_for_status()
        s.replacements.withdraw(MODEL, "mounts fail", "f.leet")
        yield c


def test_the_firmware_page_lists_releases_by_model_for_fleet_managers(central):
    log_in(central, "f.leet")
    page = central.get("/firmware")
    assert page.status_code == 200
    text = page.text
    releases = services(central.app).releases.releases()
    assert f'<h2 id="m1">{MODEL}</h2>' in text
    for r in releases:
        # The hash shortened, the whole of it one click away (as text one click selects).
        assert f'<code title="{r.sha256}">{r.sha256[:12]}…</code>' in text
        assert f'<code class="whole">{r.sha256}</code>' in text
        assert f"<code>{r.signed_by}</code>" in text and f"{r.size:,}" in text
    assert "withdrawn</span>" in text and "bricks cameras on a cold dock" in text
    assert re.search(r'<nav aria-label="Main">.*href="/firmware"', text, re.S)


def test_a_viewer_sees_profiles_and_models_but_not_firmware(central):
    log_in(central, "v.iewer")
    overview = central.get("/").text
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', overview, re.S).group(1)
    assert 'href="/models"' in nav and 'href="/profiles"' in nav and 'href="/firmware"' not in nav
    assert central.get("/firmware").status_code == 403
    profiles = central.get("/profiles").text
    rows = {m.group(1): m.group(2) for m in re.finditer(r'<tr><th scope="row">([^<]+)</th>(.*?)</tr>', profiles)}
    assert set(rows) == {"default", "role:armed"}
    assert ">head<" in rows["role:armed"] and ">60<" in rows["role:armed"] and ">30<" in rows["default"]


def test_the_models_pages_show_the_swap_by_borough_and_each_camera_with_its_holder(central):
    log_in(central, "v.iewer")
    models = central.get("/models").text
    assert "withdrawn</span>" in models and "mounts fail" in models and "1 to return" in models
    swap = re.search(r'<table class="swap">.*?</table>', models, re.S).group(0)
    camden = re.search(r'<th scope="row">Camden</th>(.*?)</tr>', swap).group(1)
    cells = [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', camden)]
    assert cells == [1, 0, 0, 1, 0, 0, 0, 0]  # one camera, its replacement proposed (BWV-2, from stock)
    detail = central.get("/models/Axon%20Body%202")
    assert detail.status_code == 200
    row = re.search(r'<a href="/devices/BWV-1">BWV-1</a>.*?</tr>', detail.text, re.S).group(0)
    assert "PC1 (personal issue)" in row and "<td>proposed</td>" in row and ">BWV-2</a> (proposal 1)" in row
    assert central.get("/models/Axon%20Body%203").status_code == 404


def test_a_cameras_page_explains_its_settings(central):
    log_in(central, "v.iewer")
    page = central.get("/devices/BWV-1").text
    lines = [html.unescape(x) for x in re.findall(r"<li><code>(.*?)</code></li>", page)]
    assert "mount = head from: role armed" in lines
    assert "pre_record_s = 60 from: role armed (over force default = 30)" in lines
    assert "issued to PC1, armed" in page
