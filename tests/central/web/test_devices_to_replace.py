"""The cameras to replace by a month's end: the Devices page's filter, its one-click link for this
month, and the CSV export of what the page lists (the API's list and export take the same filters)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from central.core.providers import services
from central.registry.devices import month_after
from fleet.clock import to_iso, utc_now
from fleet.errors import BadRequest
from tests.central.conftest import ADMIN, CAMDEN
from tests.central.web.test_dashboard import browser, log_in  # noqa: F401 (fixture)

CAMERAS = {"DUE-PAST": -40, "DUE-SOON": 0, "DUE-LATER": 62, "BARNET-DUE": 0, "NEVER": None}
"""Each camera's replacement date, in days from the first of this month (None: no forecast)."""


@pytest.fixture
def fleet_to_replace(browser):  # noqa: F811
    """Cameras due for replacement last month, this month, in two months and never; one in Barnet."""
    first = utc_now().replace(day=1, hour=12, minute=0, second=0, microsecond=0)
    browser.post(
        "/api/v1/devices/",
        headers=ADMIN,
        json=[
            {"serial": serial, "borough": "Barnet" if serial.startswith("BARNET") else "Camden"} for serial in CAMERAS
        ],
    ).raise_for_status()
    with services(browser.app).store.writer.write() as db:  # what the fleet health job's forecast writes
        for serial, days in CAMERAS.items():
            if days is not None:
                db.execute(
                    "UPDATE devices SET replace_by = ? WHERE serial = ?", [to_iso(first + timedelta(days=days)), serial]
                )
    return browser


def serials(csv_text: str) -> list[str]:
    return [row["serial"] for row in csv.DictReader(io.StringIO(csv_text))]


def test_a_month_ends_where_the_next_begins():
    assert month_after("2026-12") == datetime(2027, 1, 1, tzinfo=UTC)
    assert month_after("2026-02") == datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(BadRequest, match="not a month"):
        month_after("2026-13")


def test_this_months_cameras_are_one_click_away_and_export_as_listed(fleet_to_replace):
    client = fleet_to_replace
    log_in(client)
    this_month = f"{utc_now():%Y-%m}"
    devices = client.get("/devices").text
    assert f'href="/devices?replace_by={this_month}"' in devices
    assert 'href="/api/v1/devices/export.csv"' in devices  # no filter: every camera
    page = client.get("/devices", params={"replace_by": this_month}).text
    listed = [s for s in CAMERAS if f">{s}</a>" in page]
    assert listed == ["DUE-PAST", "DUE-SOON", "BARNET-DUE"]  # overdue ones too: still to replace
    export = f"/api/v1/devices/export.csv?replace_by={this_month}"
    assert f'href="{export}"' in page
    exported = client.get(export)  # the browser follows the link with its session
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert serials(exported.text) == ["BARNET-DUE", "DUE-PAST", "DUE-SOON"]
    api = client.get("/api/v1/devices/", params={"replace_by": this_month}, headers=ADMIN).json()
    assert [d["serial"] for d in api["items"]] == serials(exported.text)


def test_the_export_takes_the_lists_filters_and_a_scoped_caller_gets_its_borough(fleet_to_replace):
    client = fleet_to_replace
    later = f"{utc_now().replace(day=1) + timedelta(days=70):%Y-%m}"
    in_camden = client.get(
        "/api/v1/devices/export.csv", params={"replace_by": later, "borough": "Camden"}, headers=ADMIN
    ).text
    assert serials(in_camden) == ["DUE-LATER", "DUE-PAST", "DUE-SOON"]
    assert serials(client.get("/api/v1/devices/export.csv", params={"q": "never"}, headers=ADMIN).text) == ["NEVER"]
    station = client.get("/api/v1/devices/export.csv", params={"replace_by": later}, headers=CAMDEN).text
    assert "BARNET-DUE" not in serials(station)  # a station reads its own borough's cameras


@pytest.mark.parametrize("month", ["0000-01", "0000-12", "9999-12", "\u0662\u0660\u0662\u0666-12"])
def test_a_month_no_date_can_hold_is_a_clear_400_not_a_500(fleet_to_replace, month):
    """Four digits, a dash and 01-12 is not enough: there is no year 0, the month after December
    9999 is past what a date holds, and digits are ASCII ones (another script's digits are no month)."""
    client = fleet_to_replace
    for path in ("/api/v1/devices/", "/api/v1/devices/export.csv"):
        refused = client.get(path, params={"replace_by": month}, headers=ADMIN)
        assert refused.status_code == 400 and "replace" in refused.text, (path, refused.text)
    log_in(client)
    page = client.get("/devices", params={"replace_by": month})
    assert page.status_code == 400 and "is not a month (YYYY-MM)" in page.text


@pytest.mark.parametrize("month", ["2026-13", "december", "2026-12-01"])
def test_a_month_that_is_no_month_is_a_clear_400(fleet_to_replace, month):
    client = fleet_to_replace
    for path in ("/api/v1/devices/", "/api/v1/devices/export.csv"):
        refused = client.get(path, params={"replace_by": month}, headers=ADMIN)
        assert refused.status_code == 400 and "replace_by" in refused.text, (path, refused.text)
    log_in(client)
    page = client.get("/devices", params={"replace_by": month})
    assert page.status_code == 400 and "is not a month (YYYY-MM)" in page.text
