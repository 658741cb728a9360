"""The dashboard's clip search: newest first, keyset-paged, each clip with its officer."""

from __future__ import annotations

import pytest

from central.evidence import holds
from central.web.evidence_pages import PAGE, search_clips
from fleet.clock import to_iso
from tests.central.conftest import central_store

NO_FILTERS = {"officer": "", "device": "", "recorded_from": "", "recorded_to": "", "category": "", "state": ""}


@pytest.fixture
def store(tmp_path):
    """120 verified clips a minute apart on two cameras, attributed in turn to PC1, PC2 and nobody;
    every fourth one held."""
    store = central_store(tmp_path / "central")
    with store.writer.write() as db:
        for i in range(120):
            clip_id, at = f"clip-{i:03d}", f"2026-11-01T10:{i // 60:02d}:{i % 60:02d}.000000Z"
            db.execute(
                "INSERT INTO clips (clip_id, upload_id, sha256, size, state, station_id, device_serial, recorded_at, "
                "filename, verified_at) VALUES (?, ?, ?, 1, 'verified', 'camden', ?, ?, 'c.mp4', ?)",
                [clip_id, clip_id, "0" * 64, f"CAM-{i % 2}", at, at],
            )
            db.execute("INSERT INTO clip_retention (clip_id) VALUES (?)", [clip_id])  # as a verified upload has
            db.execute(
                "INSERT INTO attributions (clip_id, device_serial, recorded_at, station_id, officer_id) "
                "VALUES (?, ?, ?, 'camden', ?)",
                [clip_id, f"CAM-{i % 2}", at, ("PC1", "PC2", None)[i % 3]],
            )
            if i % 4 == 0:
                holds.place(db, "clip", "case", clip_id, None, None, None, None, "test", at)
    yield store
    store.close()


def pages(store, **filters) -> list[list]:
    """Every page of the search, following each page's last clip."""
    found, before = [], None
    while True:
        rows = search_clips(store, {**NO_FILTERS, **filters}, None, before)
        found.append(rows[:PAGE])
        if len(rows) <= PAGE:
            return found
        before = (to_iso(rows[PAGE - 1].recorded_at), rows[PAGE - 1].clip_id)


def test_every_clip_comes_once_newest_first_with_its_officer(store):
    found = [row for page in pages(store) for row in page]
    assert [r.clip_id for r in found] == [f"clip-{i:03d}" for i in reversed(range(120))]
    assert [r.officer_id for r in found] == [("PC1", "PC2", None)[i % 3] for i in reversed(range(120))]


def test_an_officers_clips_and_the_held_ones_page_alike(store):
    officer = [row for page in pages(store, officer="PC2") for row in page]
    assert [r.clip_id for r in officer] == [f"clip-{i:03d}" for i in reversed(range(120)) if i % 3 == 1]
    assert {r.officer_id for r in officer} == {"PC2"}
    held = pages(store, state="held")
    assert [len(p) for p in held] == [30]
    assert [r.clip_id for r in held[0]] == [f"clip-{i:03d}" for i in reversed(range(120)) if i % 4 == 0]
    assert [r.officer_id for r in held[0]] == [("PC1", "PC2", None)[i % 3] for i in reversed(range(120)) if i % 4 == 0]
