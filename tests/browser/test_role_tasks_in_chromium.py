"""The tasks each role comes to the dashboard for, done in a real browser as the user would do
them and counted in steps (``Task``): a change that makes a task longer fails its count.

The fleet manager finds the cameras to replace this month and exports them; the planner
reviews an allocation and commits it; the information-management officer finds a clip from a
complaint (an officer and a time), holds it and prints its chain of custody. Each test also
checks the outcome where it lands: the CSV's rows, the API's proposal and cameras, the hold.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from fleet.clock import LONDON, from_iso, utc_now
from fleet.protocol import Battery
from simulation.camera import SimClip, dock_camera
from tests.browser.conftest import Task, add_user
from tests.browser.test_dashboard_in_chromium import base
from tests.e2e.harness import wait_until

SOH_THRESHOLD = 80.0
"""``[fleet] replace_below_soh_pct``'s default: a pack below it is due for replacement."""


@dataclass(frozen=True)
class Force:
    """What the tasks find: the complaint's clip among others, the proposal to commit."""

    complaint_clip: SimClip
    other_clips: list[SimClip]
    proposal_id: int


def month_after(moment: datetime) -> datetime:
    first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


def fading(now: datetime, reaches_threshold_at: datetime) -> list[tuple[datetime, Battery]]:
    """Four dockings over a month of a pack fading at a steady 0.25 %/day to reach the threshold at
    ``reaches_threshold_at`` (below it already when that is past)."""
    readings = []
    for days_ago in (30, 20, 10, 0):
        at = now - timedelta(days=days_ago, minutes=1)
        soh = SOH_THRESHOLD + 0.25 * (reaches_threshold_at - at).total_seconds() / 86_400
        readings.append(
            (
                at,
                Battery(
                    level_pct=50, temperature_c=25, cycle_count=300, full_charge_mah=round(soh * 30), design_mah=3000
                ),
            )
        )
    return readings


@pytest.fixture(scope="module")
def force(fleet):
    """The fleet fixture's central and station, with what the three tasks need, made the way
    operators make it: a planner and a Camden information manager (``add-user``); cameras whose
    packs are due for replacement this month (worn out already), next month, and never; clips
    recorded yesterday and attributed to PC3 and PC4; an allocation proposed for Camden."""
    cluster, _clip = fleet
    add_user(cluster, "p.lanner", "planner")
    add_user(cluster, "i.manager", "information_manager", borough="Camden")
    with cluster.admin() as admin:
        admin.post(
            "/api/v1/officers/",
            json=[{"officer_id": f"PC{i}", "borough": "Camden", "role": "response"} for i in (3, 4)],
        ).raise_for_status()
        admin.post(
            "/api/v1/devices/",
            json=[
                {"serial": f"BWV-00001{i}", "model": "Axon Body 2", "borough": "Camden", "assignment_mode": "personal"}
                for i in (1, 2, 3)
            ]
            + [{"serial": f"NEW-00000{i}", "model": "Axon Body 2"} for i in (1, 2)],  # in stock: to allocate
        ).raise_for_status()
    now = utc_now()
    next_month = month_after(now)
    dock = cluster.dock_dir("camden")
    for serial, reaches in (("BWV-000011", now - timedelta(days=5)), ("BWV-000012", next_month + timedelta(days=14))):
        for at, battery in fading(now, reaches):
            dock_camera(dock, serial, [], docked_at=at, battery=battery)
    yesterday = (now - timedelta(days=1)).date()
    complaint = SimClip(size=48_000, recorded_at=datetime.combine(yesterday, time(14, 20), LONDON).astimezone(UTC))
    later = SimClip(size=48_000, recorded_at=datetime.combine(yesterday, time(16, 40), LONDON).astimezone(UTC))
    colleague = SimClip(size=48_000, recorded_at=datetime.combine(yesterday, time(14, 25), LONDON).astimezone(UTC))
    healthy = Battery(level_pct=60, temperature_c=25, cycle_count=40, full_charge_mah=2990, design_mah=3000)
    dock_camera(dock, "BWV-000013", [complaint, later, colleague], docked_at=now - timedelta(hours=2), battery=healthy)
    clips = {complaint.clip_id: None, later.clip_id: None, colleague.clip_id: None}
    wait_until(lambda: cluster.verified(clips), 60, "yesterday's clips verified at central", check=cluster.check_alive)
    with cluster.admin() as admin:
        for clip, officer in ((complaint, "PC3"), (later, "PC3"), (colleague, "PC4")):  # the shift's log, afterwards
            admin.post(
                f"/api/v1/clips/{clip.clip_id}/attribution", json={"officer_id": officer, "reason": "duty roster"}
            ).raise_for_status()

        def forecast(serial: str) -> str | None:
            return admin.get(f"/api/v1/devices/{serial}").json()["device"]["replace_by"]

        wait_until(
            lambda: all(forecast(s) for s in ("BWV-000001", "BWV-000011", "BWV-000012")),
            60,
            "the fleet health job's battery forecasts",
        )
        proposal = admin.post("/api/v1/rollout/proposals", json={"boroughs": ["Camden"], "count": 2})
        assert proposal.status_code == 201, proposal.text
    return Force(complaint_clip=complaint, other_clips=[later, colleague], proposal_id=proposal.json()["id"])


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def nav(task: Task):
    return task.page.get_by_role("navigation", name="Main")


def test_a_fleet_manager_exports_the_cameras_to_replace_this_month(chromium, fleet, force):
    cluster, _clip = fleet
    task = Task(chromium.new_page(viewport={"width": 1280, "height": 900}), base(fleet))
    task.log_in("f.manager")
    task.click("link", "Devices", within=nav(task))
    task.click("link", "to replace this month")
    exported = task.download("link", "Export these cameras as CSV")
    # 1-4 open the dashboard and log in; 5 Devices; 6 "to replace this month"; 7 export as CSV
    assert task.steps == 7, str(task)

    end_of_month = month_after(utc_now())
    with cluster.admin() as admin:
        every = admin.get("/api/v1/devices/", params={"limit": 1000}).json()["items"]
    due = {d["serial"] for d in every if d["replace_by"] and from_iso(d["replace_by"]) < end_of_month}
    assert "BWV-000011" in due and "BWV-000012" not in due  # worn out already; due next month
    rows = rows_of(exported)
    assert {r["serial"] for r in rows} == due and len(rows) == len(due)
    assert all(r["replace_by"] for r in rows)
    listed = task.page.locator("#devices tbody tr th a").all_inner_texts()
    assert set(listed) == due  # the page showed what was exported
    task.page.close()


def test_a_planner_reviews_and_commits_an_allocation(chromium, fleet, force):
    cluster, _clip = fleet
    task = Task(chromium.new_page(viewport={"width": 1280, "height": 900}), base(fleet))
    task.log_in("p.lanner")
    task.click("link", "Roll-out", within=nav(task))
    proposal = task.page.locator("section", has=task.page.get_by_role("heading", name=f"Proposal {force.proposal_id}:"))
    assert "Camden: 2 cameras (pool)" in proposal.inner_text()  # Camden's cameras are pooled at its stations
    items = rows_of(task.download("link", "items as CSV", within=proposal))  # which camera goes to whom
    task.click("button", "Commit", within=proposal)
    # 1-4 open the dashboard and log in; 5 Roll-out; 6 review the items (CSV); 7 commit
    assert task.steps == 7, str(task)

    assert task.page.get_by_role("status").inner_text() == "proposal committed"
    committed = task.page.locator("#committed").inner_text()
    assert f"Proposal {force.proposal_id}:" in committed and "committed by p.lanner" in committed
    assert task.page.locator("section", has_text=f"Proposal {force.proposal_id}:").count() == 0  # none left to review
    assert len(items) == 2 and {r["mode"] for r in items} == {"pool"}
    with cluster.admin() as admin:
        decided = admin.get(f"/api/v1/rollout/proposals/{force.proposal_id}").json()
        assert (decided["state"], decided["decided_by"]) == ("committed", "p.lanner")
        for item in items:
            camera = admin.get(f"/api/v1/devices/{item['device_serial']}").json()["device"]
            placed = (camera["lifecycle"], camera["borough"], camera["home_station"])
            assert placed == ("allocated", "Camden", item["station_id"])
    task.page.close()


def test_an_information_manager_holds_a_complaints_clip_and_prints_its_custody(chromium, fleet, force):
    cluster, _clip = fleet
    clip = force.complaint_clip
    complaint_day = f"{clip.recorded_at:%Y-%m-%d}"
    task = Task(chromium.new_page(viewport={"width": 1280, "height": 900}), base(fleet))
    task.log_in("i.manager")
    task.click("link", "Clips", within=nav(task))
    task.fill("Officer", "PC3")  # the complaint: PC3, yesterday at about half past two
    task.fill("Recorded from (London time)", f"{complaint_day}T14:00")
    task.fill("until (London time)", f"{complaint_day}T15:00")
    task.click("button", "Search")
    found = task.page.locator("#clips tbody tr")
    assert found.count() == 1 and "PC3" in found.first.inner_text()  # not PC3's 16:40 clip, not PC4's 14:25
    task.click("link", re.compile(clip.clip_id[:13]), within=found.first)
    assert task.page.locator("video").count() == 0  # a clip's record and its holds, never its footage
    task.fill("Reason", "complaint CMP-4410")
    task.click("button", "Place a hold")
    assert task.page.get_by_role("status").inner_text() == "held"
    task.click("link", "Printable report")
    printed = task.print()
    # 1-4 open the dashboard and log in; 5 Clips; 6-8 officer, from, until; 9 search; 10 the clip;
    # 11 the hold's reason; 12 place the hold; 13 the custody report; 14 print it
    assert task.steps == 14, str(task)

    assert printed.startswith(b"%PDF")
    report = task.page.locator("body").inner_text()
    with cluster.admin() as admin:
        sha256 = admin.get(f"/api/v1/clips/{clip.clip_id}").json()["sha256"]
        held_by = admin.get(f"/api/v1/clips/{clip.clip_id}/retention").json()["held_by"]
        holds = admin.get("/api/v1/holds").json()
        others = [admin.get(f"/api/v1/clips/{c.clip_id}/retention").json()["held_by"] for c in force.other_clips]
    hold = next(h for h in holds if h["id"] in held_by)
    assert (hold["kind"], hold["clip_id"], hold["reason"]) == ("clip", clip.clip_id, "complaint CMP-4410")
    assert hold["created_by"] == "i.manager"
    assert others == [[], []]  # only the complaint's clip is held
    assert clip.clip_id in report and sha256 in report
    assert re.search(r"hold\s.*complaint CMP-4410", report) and "i.manager" in report
    task.page.close()
