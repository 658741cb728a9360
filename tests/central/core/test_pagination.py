"""Lists that return a bare array page with ``?cursor=`` and the ``X-Next-Cursor`` header."""

import pytest

from fleet.events import Event
from tests.central.conftest import ADMIN, CAMDEN
from tests.central.fleetdata import back, docked, ingested, out, post


def walk(client, path: str, limit: int) -> list[dict]:
    rows, cursor, pages = [], None, 0
    while True:
        response = client.get(path, params={"limit": limit, **({"cursor": cursor} if cursor else {})}, headers=ADMIN)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page) <= limit
        rows += page
        pages += 1
        cursor = response.headers.get("x-next-cursor")
        if cursor is None:
            return rows
        assert pages < 50


def test_assignments_page_newest_first_without_gaps_or_repeats(client):
    events: list[Event] = [docked("A")]
    hours = [0]
    for i in range(5):
        events += [out("A", f"PC{i}"), back("A", f"PC{i}")]
        hours += [1 + 2 * i, 2 + 2 * i]
    post(client, CAMDEN, events, hours=hours)
    everything = client.get("/api/v1/assignments", params={"limit": 100}, headers=ADMIN).json()
    assert len(everything) == 5
    assert walk(client, "/api/v1/assignments", 2) == everything
    assert [a["officer_id"] for a in everything] == ["PC4", "PC3", "PC2", "PC1", "PC0"]


def test_unattributed_pages_oldest_first(client):
    clips = [ingested("B", h) for h in (1, 2, 3, 4, 5)]
    post(client, CAMDEN, [docked("B", 6, clips=5), *clips], hours=[6] * 6)
    rows = walk(client, "/api/v1/unattributed", 2)
    assert [r["clip_id"] for r in rows] == [c.clip_id for c in clips]


@pytest.mark.parametrize("path", ["/api/v1/assignments", "/api/v1/unattributed", "/api/v1/conflicts"])
@pytest.mark.parametrize("cursor", ["not-base64!", "eA==", "MTIzfGFiYw=="])
def test_a_cursor_we_did_not_give_out_is_a_400(client, path, cursor):
    response = client.get(path, params={"cursor": cursor}, headers=ADMIN)
    assert response.status_code == 400 and "cursor" in response.json()["message"]


@pytest.mark.parametrize("key", ["²", "9" * 20, "١٢"])  # a superscript, past 64 bits, Arabic-Indic digits
def test_a_cursor_whose_row_id_is_not_a_plain_number_is_a_400(client, key):
    from central.core.pagination import encode_cursor

    for path, cursor in (
        ("/api/v1/assignments", encode_cursor("2026-01-01T00:00:00.000000Z", key)),
        ("/api/v1/conflicts", encode_cursor(key)),
    ):
        response = client.get(path, params={"cursor": cursor}, headers=ADMIN)
        assert response.status_code == 400 and "cursor" in response.json()["message"], (path, response.text)
