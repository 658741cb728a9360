"""The public's requests to keep footage in the simulated month, and the wrongful deletions check.

After the month is checked, members of the public ask for footage to be kept at the rate a
force sees (about one request per ``CLIPS_PER_REQUEST`` clips), each through the public form
over HTTP from an address of its own (``X-Forwarded-For`` from loopback, a trusted proxy), about
a moment when a camera of that borough recorded something. An information manager then
narrows a third of them to some of their clips and closes a third; the rest stay open. Then the
retention job runs as if ``LATER`` had passed (and the recovery period after it), deleting what
nothing keeps. A **wrongful deletion** is a clip a request covered that was deleted while the
request was open, or a clip a narrowed request kept that was deleted. It must be 0. What a
request covers is worked out here from what the cameras recorded (the driver's own record),
not from central's answer.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from central.core.services import open_services
from central.evidence.keep_request_form import MARGIN
from fleet.config import CentralSettings, load_settings
from simulation.force.run import DockRecord
from simulation.force.usage import Station

CLIPS_PER_REQUEST = 2000
LATER = timedelta(days=40)
"""The retention job runs as if this long after the month: every routine clip of it is past its 31 days."""
LONDON = ZoneInfo("Europe/London")


@dataclass
class Asked:
    reference: str
    borough: str
    start: datetime
    end: datetime
    covered: set[str]
    """Clips its borough's cameras recorded in the window widened by the margin (the driver's count)."""
    decision: str = "open"
    kept: set[str] = field(default_factory=set)


def exercise(
    url: str, config: Path, records: list[DockRecord], stations: list[Station], month_end: datetime, seed: int
) -> dict:
    """Ask, decide, delete as if ``LATER`` had passed; the figures, with ``wrongful_deletions``."""
    rng = random.Random(seed)
    recorded = [
        (at, clip_id, stations[r.station].borough)
        for r in records
        for (clip_id, _, _), at in zip(r.clips, r.recorded_at, strict=True)
    ]
    wanted = max(1, round(len(recorded) / CLIPS_PER_REQUEST)) if recorded else 0
    asked: list[Asked] = []
    refused: list[str] = []
    with httpx.Client(base_url=url, timeout=60.0) as client:
        for number, (at, _, borough) in enumerate(rng.sample(recorded, wanted)):
            start = (at - timedelta(minutes=rng.randint(0, 30))).replace(second=0, microsecond=0)
            end = (at + timedelta(minutes=rng.randint(5, 60))).replace(second=0, microsecond=0)
            reference = _ask(client, number, borough, start, end)
            if reference is None:
                refused.append(f"{borough} {start:%Y-%m-%d %H:%M}")
                continue
            covered = {c for when, c, b in recorded if b == borough and start - MARGIN <= when < end + MARGIN}
            asked.append(Asked(reference, borough, start, end, covered))
    settings = load_settings(config, CentralSettings)
    with open_services(settings) as services:
        for number, request in enumerate(asked):
            if number % 3 == 0 and request.covered:
                _, clips = services.keep_requests.request(request.reference)
                at_central = sorted(c.clip_id for c in clips if c.purged_at is None)
                request.kept = set(rng.sample(at_central, max(1, len(at_central) // 2)))
                services.keep_requests.narrow(request.reference, sorted(request.kept), "simulated match", "sim.im")
                request.decision = "narrowed"
            elif number % 3 == 1:
                services.keep_requests.close(request.reference, "concluded", "simulated", "sim.im")
                request.decision = "closed"
        rules = services.retention.rules()
        first = services.retention.run(now=month_end + LATER)
        second = services.retention.run(now=month_end + LATER + timedelta(days=rules.recovery_days + 1))
        with services.store.writer.read() as db:
            deleted = {r[0] for r in db.execute("SELECT clip_id FROM clip_retention WHERE deleted_at IS NOT NULL")}
    wrongful = [
        (request.reference, clip)
        for request in asked
        for clip in sorted(
            request.covered if request.decision == "open" else request.kept if request.decision == "narrowed" else ()
        )
        if clip in deleted
    ]
    return {
        "clips_per_request": CLIPS_PER_REQUEST,
        "asked": wanted,
        "accepted": len(asked),
        "refused": refused[:10],
        "open": sum(a.decision == "open" for a in asked),
        "narrowed": sum(a.decision == "narrowed" for a in asked),
        "closed": sum(a.decision == "closed" for a in asked),
        "clips_covered_by_open": sum(len(a.covered) for a in asked if a.decision == "open"),
        "clips_kept_by_narrowed": sum(len(a.kept) for a in asked if a.decision == "narrowed"),
        "retention_ran_as_of": (month_end + LATER).isoformat(),
        "soft_deleted": first.soft_deleted + second.soft_deleted,
        "purged": first.purged + second.purged,
        "held_back": second.held_back,
        "wrongful_deletions": len(wrongful),
        "examples": [f"clip {c} of request {r} deleted" for r, c in wrongful[:10]],
    }


def _ask(client: httpx.Client, number: int, borough: str, start: datetime, end: datetime) -> str | None:
    """The public form, as a browser fills it (its CSRF cookie sent back by hand: it is Secure, and
    this is plain HTTP on loopback); the reference, or None when refused."""
    address = {"X-Forwarded-For": f"198.18.{number // 250}.{number % 250 + 1}"}  # a benchmark network's addresses
    form = client.get("/public/keep-footage", headers=address)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    if form.status_code != 200 or token is None:
        return None
    local_start, local_end = start.astimezone(LONDON), end.astimezone(LONDON)
    sent = client.post(
        "/public/keep-footage",
        headers={**address, "Cookie": f"bwv_public_csrf={token.group(1)}"},
        data={
            "csrf_token": token.group(1),
            "borough": borough,
            "place": f"simulated request {number}",
            "date": local_start.date().isoformat(),
            "time_from": f"{local_start:%H:%M}",
            "time_to": f"{local_end:%H:%M}",
            "contact": f"requester{number}@example.org",
        },
        follow_redirects=False,
    )
    found = re.search(r"reference=(KF-[0-9A-Z-]+)", sent.headers.get("location", ""))
    return found.group(1) if sent.status_code == 303 and found else None
