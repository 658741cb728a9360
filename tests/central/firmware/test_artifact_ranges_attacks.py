"""A stolen station token against the artifact route's Range support (docs/firmware.md): a withdrawn
release stays 410 to a station whatever it asks for, ranges out of shape are 416 (never a 5xx), and
the token reads nothing but releases."""

from __future__ import annotations

import os

import pytest

from tests.central.apps import central_client
from tests.central.conftest import ADMIN, BARNET, CAMDEN
from tests.central.firmware.conftest import MODEL, firmware_settings, sign

ARTIFACT = os.urandom(5000)
URL = "/api/v1/firmware/releases"


@pytest.fixture
def central(tmp_path, vendor):
    with central_client(firmware_settings(tmp_path / "central", vendor), raise_server_exceptions=False) as c:
        for version in ("2.0.0", "2.0.1"):
            query = {"model": MODEL, "version": version, "signature": sign(vendor, ARTIFACT, version=version)}
            assert c.post(URL, params=query, content=ARTIFACT, headers=ADMIN).status_code == 201
        yield c


@pytest.mark.parametrize(
    "header", [None, "bytes=0-", "bytes=100-199", "bytes=-10", "bytes=999999-", "bytes=0-1, 5-6", "garbage"]
)
def test_a_withdrawn_releases_artifact_is_410_to_a_station_for_every_range(central, header):
    [newer, older] = central.get(URL, headers=ADMIN).json()
    assert central.post(f"{URL}/{older['id']}/withdraw", json={"reason": "recalled"}, headers=ADMIN).status_code == 200
    headers = {**CAMDEN, **({"Range": header} if header else {})}
    gone = central.get(f"{URL}/{older['id']}/artifact", headers=headers)
    assert gone.status_code == 410 and gone.json()["error"] == "gone" and gone.content.find(ARTIFACT[:64]) == -1
    assert "content-range" not in gone.headers
    # Every station reads the force's current releases, from any borough (docs/firmware.md).
    assert (
        central.get(f"{URL}/{newer['id']}/artifact", headers={**BARNET, "Range": "bytes=0-9"}).content == ARTIFACT[:10]
    )


@pytest.mark.parametrize(
    "header",
    [
        "bytes=" + "9" * 19 + "-",
        "bytes=0-" + "9" * 19,
        "bytes=" + "9" * 40 + "-",
        "bytes=-" + "9" * 19,
        "bytes=-0",
        "bytes=٣-".encode(),  # a digit, but not an ASCII one (UTF-8 bytes on the wire)
        "bytes=0-\n",
        "bytes=1-0",
    ],
)
def test_ranges_out_of_shape_are_416_or_clipped_never_a_5xx(central, header):
    [release, _] = central.get(URL, headers=ADMIN).json()
    answer = central.get(f"{URL}/{release['id']}/artifact", headers={**CAMDEN, "Range": header})
    assert answer.status_code in (206, 416), (header, answer.status_code, answer.text[:200])
    if answer.status_code == 206:
        start, _, end = answer.headers["content-range"].removeprefix("bytes ").partition("/")[0].partition("-")
        assert answer.content == ARTIFACT[int(start) : int(end) + 1]


def test_a_station_token_cannot_withdraw_add_or_read_past_the_releases(central):
    [release, _] = central.get(URL, headers=ADMIN).json()
    assert central.post(f"{URL}/{release['id']}/withdraw", json={"reason": "x"}, headers=CAMDEN).status_code == 403
    assert central.get(f"{URL}/0/artifact", headers=CAMDEN).status_code in (400, 404)
    assert central.get(f"{URL}/{2**63}/artifact", headers=CAMDEN).status_code in (400, 404)
    assert central.get(f"{URL}/999/artifact", headers={**CAMDEN, "Range": "bytes=0-"}).status_code == 404
    assert central.get(f"{URL}/{release['id']}/artifact", headers={"Range": "bytes=0-"}).status_code == 401
